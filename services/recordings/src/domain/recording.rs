//! A recording's metadata rules: the upload header, the list filter and
//! the retention decision. Pure: no database, no object store.

use chrono::{DateTime, Duration, Utc};

use crate::error::{Error, Result};

/// The built-in `default` class: kept at least 180 days...
pub const DEFAULT_MIN_DAYS: i64 = 180;
/// ...and deleted after three years.
pub const DEFAULT_DELETE_AFTER_DAYS: i64 = 3 * 365;
/// Consent records are kept four years; recordings that carry one as long.
pub const CONSENT_RETENTION_DAYS: i64 = 4 * 365;

/// What an upload's first message says.
#[derive(Clone, Debug, Default)]
pub struct Header {
    /// Tenant.
    pub tenant: String,
    /// Telephony call id.
    pub call_id: String,
    /// Lead.
    pub lead_id: String,
    /// Agent (the lead's owner for scope).
    pub agent_id: String,
    /// Team of the lead's owner.
    pub team_id: String,
    /// Caller line.
    pub caller_line: String,
    /// Call start.
    pub started_at: DateTime<Utc>,
    /// Duration.
    pub duration_seconds: u32,
    /// Codec or container.
    pub format: String,
    /// Spoken-consent segment (offset, length) in ms.
    pub consent: Option<(u64, u64)>,
    /// Retention class; `default` when empty.
    pub retention_class: String,
}

impl Header {
    /// Every field within its bounds, the consent segment inside the call.
    pub fn validate(&self) -> Result<()> {
        for (field, v) in [
            ("header.tenant_id", &self.tenant),
            ("header.call_id", &self.call_id),
            ("header.lead_id", &self.lead_id),
            ("header.agent_id", &self.agent_id),
            ("header.format", &self.format),
        ] {
            if v.is_empty() || v.len() > 128 {
                return Err(Error::invalid(field, "required, at most 128 characters"));
            }
        }
        if let Some((offset, len)) = self.consent
            && (len == 0 || offset + len > u64::from(self.duration_seconds) * 1000)
        {
            return Err(Error::invalid("header.consent_offset_ms", "the consent segment must lie within the call"));
        }
        Ok(())
    }

    /// The retention class named, `default` when none is.
    pub fn class(&self) -> &str {
        if self.retention_class.is_empty() { "default" } else { &self.retention_class }
    }

    /// Until when a recording stored at `stored_at` under a class that
    /// deletes after `delete_after_days` is kept: a recording that holds
    /// spoken consent is kept as long as the consent record.
    pub fn retain_until(&self, stored_at: DateTime<Utc>, delete_after_days: i64) -> DateTime<Utc> {
        let retain = stored_at + Duration::days(delete_after_days);
        match self.consent {
            Some(_) => retain.max(self.started_at + Duration::days(CONSENT_RETENTION_DAYS)),
            None => retain,
        }
    }
}

/// A retention class's definition, checked.
pub fn validate_class(name: &str, min_days: u32, delete_after_days: u32) -> Result<()> {
    let valid_name = !name.is_empty()
        && name.len() <= 48
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !valid_name {
        return Err(Error::invalid("class.name", "use 1-48 characters of a-z, 0-9 and '_'"));
    }
    if min_days == 0 {
        return Err(Error::invalid("class.min_days", "must be at least 1"));
    }
    if delete_after_days < min_days {
        return Err(Error::invalid("class.delete_after_days", "must not be shorter than min_days"));
    }
    Ok(())
}

/// What retention does with one stored recording at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Not due yet.
    Keep,
    /// Past its class's date, kept because it holds spoken consent.
    KeepForConsent,
    /// Due, but under legal hold.
    Held,
    /// Due: delete it.
    Purge,
}

/// The retention decision at `as_of` for a recording its class would delete
/// at `class_due`, kept until `retain_until` (later, when it holds spoken
/// consent).
pub fn retention(
    class_due: DateTime<Utc>,
    retain_until: DateTime<Utc>,
    holds_consent: bool,
    legal_hold: bool,
    as_of: DateTime<Utc>,
) -> Retention {
    if retain_until > as_of {
        return if class_due <= as_of && holds_consent { Retention::KeepForConsent } else { Retention::Keep };
    }
    if legal_hold { Retention::Held } else { Retention::Purge }
}

/// Filters of a listing; `owners`/`teams` restrict to the caller's scope.
#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    /// By lead.
    pub lead: Option<String>,
    /// By agent.
    pub agent: Option<String>,
    /// By call.
    pub call: Option<String>,
    /// Started at or after.
    pub from: Option<DateTime<Utc>>,
    /// Started before.
    pub to: Option<DateTime<Utc>>,
    /// Page: ids below this.
    pub before: Option<String>,
    /// Scope: only these owners.
    pub owners: Option<Vec<String>>,
    /// Scope: only these teams.
    pub teams: Option<Vec<String>>,
}

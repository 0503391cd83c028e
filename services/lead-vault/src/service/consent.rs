//! The consent ledger: what a lead agreed to, through which channel, with
//! which evidence. Withdrawal takes effect at once for the dialer. Records
//! keep the lead's blind index and the evidence hashes, never PII, so they
//! outlive the lead's erasure.

use chrono::{DateTime, Duration, Utc};
use guardline_audit_client::EventBuilder;
use guardline_authz::{Resource, Scope, Subject, decide, widest_scope};

use crate::error::{Error, Result};
use crate::service::Vault;
use crate::store::consent;

/// Channels consent can be given through.
pub const CHANNELS: &[&str] = &["web_form", "call_recording", "sms", "paper", "email", "in_person"];

/// A consent to record.
#[derive(Clone, Debug, Default)]
pub struct NewConsent {
    /// Purpose, e.g. `marketing`.
    pub purpose: String,
    /// Channel, one of [`CHANNELS`].
    pub channel: String,
    /// SHA-256 of the form snapshot.
    pub form_sha256: Vec<u8>,
    /// Disclosure text version.
    pub disclosure_version: String,
    /// Page URL.
    pub page_url: String,
    /// Recording holding a spoken consent, with offset and length in ms.
    pub recording: Option<(String, u64, u64)>,
    /// When it was given.
    pub granted_at: DateTime<Utc>,
    /// When it lapses.
    pub expires_at: Option<DateTime<Utc>>,
}

impl NewConsent {
    fn validate(&self, now: DateTime<Utc>) -> Result<()> {
        let ident = |s: &str| !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        if !ident(&self.purpose) {
            return Err(Error::invalid("purpose", "a lowercase name such as marketing or service"));
        }
        if !CHANNELS.contains(&self.channel.as_str()) {
            return Err(Error::invalid("channel", format!("one of {}", CHANNELS.join(", "))));
        }
        if !self.form_sha256.is_empty() && self.form_sha256.len() != 32 {
            return Err(Error::invalid("evidence.form_sha256", "a SHA-256 is 32 bytes"));
        }
        if self.channel == "call_recording" && self.recording.as_ref().is_none_or(|r| r.0.is_empty() || r.2 == 0) {
            return Err(Error::invalid(
                "evidence.recording_id",
                "spoken consent needs the recording, offset and length",
            ));
        }
        if self.form_sha256.is_empty() && self.recording.is_none() && self.disclosure_version.is_empty() {
            return Err(Error::invalid("evidence", "give the form hash, the disclosure version or the recording"));
        }
        if self.granted_at > now + Duration::minutes(5) {
            return Err(Error::invalid("granted_at", "lies in the future"));
        }
        if self.expires_at.is_some_and(|e| e <= self.granted_at) {
            return Err(Error::invalid("expires_at", "must be after granted_at"));
        }
        Ok(())
    }
}

fn active_at(c: &consent::Model, at: DateTime<Utc>) -> bool {
    c.granted_at <= at && c.expires_at.is_none_or(|e| e > at) && c.withdrawn_at.is_none_or(|w| w > at)
}

impl Vault {
    /// The lead if `who` holds `action` on it (and may read it), else NOT_FOUND.
    async fn lead_for(
        &self,
        who: &Subject,
        tenant: &str,
        lead: &str,
        action: &str,
    ) -> Result<crate::store::lead::Model> {
        let view = self.get(who, tenant, lead).await?;
        let res = Resource {
            tenant: tenant.into(),
            owner: Some(view.row.owner_id.clone()),
            team: Some(view.row.team_id.clone()),
        };
        let d = decide(who, action, &res);
        if !d.allowed {
            return Err(Error::PermissionDenied(d.rule));
        }
        Ok(view.row)
    }

    /// Records a consent (`consent.manage`, lead in scope).
    pub async fn record_consent(
        &self,
        who: &Subject,
        tenant: &str,
        lead: &str,
        c: NewConsent,
    ) -> Result<consent::Model> {
        let row = self.lead_for(who, tenant, lead, "consent.manage").await?;
        c.validate(self.clock.now())?;
        let bi = self.store.primary_blind_index(tenant, &row.id).await?.unwrap_or_default();
        let (rec_id, off, len) = c.recording.clone().unwrap_or_default();
        let model = consent::Model {
            id: format!("consent-{}", uuid::Uuid::now_v7().simple()),
            tenant_id: tenant.into(),
            lead_id: row.id.clone(),
            blind_index: bi,
            purpose: c.purpose.clone(),
            channel: c.channel.clone(),
            form_sha256: c.form_sha256.clone(),
            disclosure_version: c.disclosure_version.clone(),
            page_url: c.page_url.clone(),
            recording_id: rec_id,
            recording_offset_ms: off as i64,
            recording_length_ms: len as i64,
            granted_at: c.granted_at,
            expires_at: c.expires_at,
            withdrawn_at: None,
        };
        let event = EventBuilder::new(tenant, "consent.record")
            .actor(&who.user, "")
            .resource("lead", &row.id)
            .detail("consent", &model.id)
            .detail("purpose", &model.purpose)
            .detail("channel", &model.channel);
        self.store.insert_consent(&model, event).await?;
        Ok(model)
    }

    /// Withdraws a consent at once (`consent.manage`, lead in scope).
    pub async fn withdraw_consent(&self, who: &Subject, tenant: &str, id: &str) -> Result<consent::Model> {
        let c = self.store.consent(id).await?.filter(|c| c.tenant_id == tenant).ok_or(Error::NotFound)?;
        self.lead_for(who, tenant, &c.lead_id, "consent.manage").await?;
        if c.withdrawn_at.is_some() {
            return Ok(c);
        }
        let now = self.clock.now();
        let event = EventBuilder::new(tenant, "consent.withdraw")
            .actor(&who.user, "")
            .resource("lead", &c.lead_id)
            .detail("consent", id);
        self.store.withdraw_consent(id, now, event).await?;
        Ok(consent::Model { withdrawn_at: Some(now), ..c })
    }

    /// A lead's consents, oldest first (lead in `lead.read` scope). After the
    /// lead's erasure the records stay readable, as evidence, to tenant-wide
    /// readers (the compliance officer, the admin): the lead has no owner or
    /// team left to scope them by.
    pub async fn consent_history(&self, who: &Subject, tenant: &str, lead: &str) -> Result<Vec<consent::Model>> {
        match self.get(who, tenant, lead).await {
            Ok(_) => {}
            Err(Error::NotFound)
                if widest_scope(who, "lead.read") == Some(Scope::Tenant) && self.erased(tenant, lead).await? => {}
            Err(e) => return Err(e),
        }
        self.store.consents(tenant, lead, None).await
    }

    /// Whether `lead` was erased (a done erasure case, no lead row).
    async fn erased(&self, tenant: &str, lead: &str) -> Result<bool> {
        Ok(self.store.erasure_done(tenant, lead).await? && self.store.lead(lead).await?.is_none())
    }

    /// Whether a lead has active consent for `purpose` at `at` (for the dialer).
    pub async fn check_consent(
        &self,
        tenant: &str,
        lead: &str,
        purpose: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<(String, DateTime<Utc>)>> {
        let rows = self.store.consents(tenant, lead, Some(purpose)).await?;
        Ok(rows.into_iter().find(|c| active_at(c, at)).map(|c| (c.id, c.granted_at)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c() -> NewConsent {
        NewConsent {
            purpose: "marketing".into(),
            channel: "web_form".into(),
            form_sha256: vec![1; 32],
            granted_at: Utc::now(),
            ..Default::default()
        }
    }

    #[test]
    fn validation_names_the_field() {
        let now = Utc::now();
        assert!(c().validate(now).is_ok());
        let field = |n: NewConsent| match n.validate(now) {
            Err(Error::InvalidArgument { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(NewConsent { channel: "carrier_pigeon".into(), ..c() }), "channel");
        assert_eq!(field(NewConsent { purpose: "Marketing!".into(), ..c() }), "purpose");
        assert_eq!(field(NewConsent { channel: "call_recording".into(), ..c() }), "evidence.recording_id");
        assert_eq!(field(NewConsent { form_sha256: vec![1; 5], ..c() }), "evidence.form_sha256");
        assert_eq!(field(NewConsent { granted_at: now + Duration::hours(1), ..c() }), "granted_at");
        assert_eq!(field(NewConsent { expires_at: Some(now - Duration::days(1)), ..c() }), "expires_at");
    }

    #[test]
    fn activity_window() {
        let now = Utc::now();
        let m = consent::Model {
            granted_at: now - Duration::days(10),
            expires_at: Some(now + Duration::days(10)),
            withdrawn_at: Some(now + Duration::days(1)),
            ..Default::default()
        };
        assert!(active_at(&m, now));
        assert!(!active_at(&m, now + Duration::days(2)), "withdrawn");
        assert!(!active_at(&m, now - Duration::days(11)), "not yet granted");
    }
}

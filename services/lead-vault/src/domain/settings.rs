//! A tenant's vault settings: the erasure deadline and the consent
//! retention, with their legal bounds.

use crate::error::{Error, Result};

/// Erasure deadline when the tenant set none (PIPL and GDPR: about a month).
pub const DEFAULT_ERASURE_DEADLINE_DAYS: u32 = 30;
/// The longest erasure deadline a tenant may set.
pub const MAX_ERASURE_DEADLINE_DAYS: u32 = 90;
/// Consent retention when the tenant set none: four years.
pub const DEFAULT_CONSENT_RETENTION_DAYS: u32 = 4 * 365 + 1;
/// Consent evidence is never kept shorter than three years.
pub const MIN_CONSENT_RETENTION_DAYS: u32 = 3 * 365 + 1;
/// The longest consent retention a tenant may set: twenty years.
pub const MAX_CONSENT_RETENTION_DAYS: u32 = 20 * 366;

/// One tenant's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VaultSettings {
    /// Days from an erasure request to its deadline.
    pub erasure_deadline_days: u32,
    /// Days a consent record is kept after it ended.
    pub consent_retention_days: u32,
}

impl Default for VaultSettings {
    fn default() -> Self {
        Self {
            erasure_deadline_days: DEFAULT_ERASURE_DEADLINE_DAYS,
            consent_retention_days: DEFAULT_CONSENT_RETENTION_DAYS,
        }
    }
}

/// A change of settings; `None` keeps the current value.
#[derive(Clone, Copy, Debug, Default)]
pub struct SettingsChange {
    /// New erasure deadline in days.
    pub erasure_deadline_days: Option<u32>,
    /// New consent retention in days.
    pub consent_retention_days: Option<u32>,
}

impl SettingsChange {
    /// The settings after this change, each new value within its bounds.
    pub fn apply(self, mut s: VaultSettings) -> Result<VaultSettings> {
        if let Some(d) = self.erasure_deadline_days {
            if !(1..=MAX_ERASURE_DEADLINE_DAYS).contains(&d) {
                return Err(Error::invalid(
                    "erasure_deadline_days",
                    format!("between 1 and {MAX_ERASURE_DEADLINE_DAYS} days"),
                ));
            }
            s.erasure_deadline_days = d;
        }
        if let Some(d) = self.consent_retention_days {
            if !(MIN_CONSENT_RETENTION_DAYS..=MAX_CONSENT_RETENTION_DAYS).contains(&d) {
                return Err(Error::invalid(
                    "consent_retention_days",
                    format!("between {MIN_CONSENT_RETENTION_DAYS} (three years) and {MAX_CONSENT_RETENTION_DAYS} days"),
                ));
            }
            s.consent_retention_days = d;
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked_field_by_field() {
        let field = |c: SettingsChange| match c.apply(VaultSettings::default()) {
            Err(Error::InvalidArgument { field, .. }) => field,
            other => panic!("expected a refusal, got {other:?}"),
        };
        assert_eq!(
            field(SettingsChange { erasure_deadline_days: Some(0), ..Default::default() }),
            "erasure_deadline_days"
        );
        assert_eq!(
            field(SettingsChange { erasure_deadline_days: Some(91), ..Default::default() }),
            "erasure_deadline_days"
        );
        let below_three_years = SettingsChange { consent_retention_days: Some(3 * 365), ..Default::default() };
        assert_eq!(field(below_three_years), "consent_retention_days");
        let ok = SettingsChange {
            erasure_deadline_days: Some(90),
            consent_retention_days: Some(MIN_CONSENT_RETENTION_DAYS),
        };
        let s = ok.apply(VaultSettings::default()).expect("at the limits");
        assert_eq!((s.erasure_deadline_days, s.consent_retention_days), (90, 1096));
        let keep = SettingsChange::default().apply(s).expect("nothing changes");
        assert_eq!(keep, s);
    }
}

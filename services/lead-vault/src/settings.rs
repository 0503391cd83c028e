//! A tenant's vault settings (the erasure deadline and the consent
//! retention) and the consent retention sweep that reads them.

use chrono::Duration;
use guardline_audit_client::EventBuilder;
use guardline_authz::{Resource, Subject, decide};
use sea_orm::{ActiveValue, ColumnTrait, Condition, EntityTrait, QueryFilter};

use crate::error::{Error, Result};
use crate::service::Vault;
use crate::store::{consent, tenant_settings};

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

impl From<&tenant_settings::Model> for VaultSettings {
    fn from(r: &tenant_settings::Model) -> Self {
        Self {
            erasure_deadline_days: r.erasure_deadline_days.max(0) as u32,
            consent_retention_days: r.consent_retention_days.max(0) as u32,
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
    fn apply(self, mut s: VaultSettings) -> Result<VaultSettings> {
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

fn require_policy(who: &Subject, tenant: &str) -> Result<()> {
    let d = decide(who, "policy.manage", &Resource { tenant: tenant.into(), ..Default::default() });
    if d.allowed { Ok(()) } else { Err(Error::PermissionDenied(d.rule)) }
}

impl Vault {
    /// The settings in force for `tenant` (the defaults without a row).
    pub async fn settings(&self, tenant: &str) -> Result<VaultSettings> {
        Ok(tenant_settings::Entity::find_by_id(tenant)
            .one(&self.db)
            .await?
            .as_ref()
            .map_or_else(VaultSettings::default, From::from))
    }

    /// The tenant's settings, for a user with `policy.manage`.
    pub async fn get_settings(&self, who: &Subject, tenant: &str) -> Result<VaultSettings> {
        require_policy(who, tenant)?;
        self.settings(tenant).await
    }

    /// Changes the tenant's settings; the old and new values are audited
    /// (numbers, never PII).
    pub async fn update_settings(&self, who: &Subject, tenant: &str, change: SettingsChange) -> Result<VaultSettings> {
        require_policy(who, tenant)?;
        let txn = guardline_runtime::storage::write_txn(&self.db).await?;
        let existing = tenant_settings::Entity::find_by_id(tenant).one(&txn).await?;
        let old = existing.as_ref().map_or_else(VaultSettings::default, From::from);
        let new = change.apply(old)?;
        let row = tenant_settings::ActiveModel {
            tenant_id: ActiveValue::Set(tenant.into()),
            erasure_deadline_days: ActiveValue::Set(new.erasure_deadline_days as i32),
            consent_retention_days: ActiveValue::Set(new.consent_retention_days as i32),
            updated_at: ActiveValue::Set(self.clock.now()),
        };
        if existing.is_some() {
            tenant_settings::Entity::update(row).exec(&txn).await?;
        } else {
            tenant_settings::Entity::insert(row).exec(&txn).await?;
        }
        let event = EventBuilder::new(tenant, "vault.settings.update")
            .actor(&who.user, "")
            .resource("tenant", tenant)
            .detail("erasure_deadline_days", format!("{} -> {}", old.erasure_deadline_days, new.erasure_deadline_days))
            .detail(
                "consent_retention_days",
                format!("{} -> {}", old.consent_retention_days, new.consent_retention_days),
            );
        guardline_audit_client::enqueue(&txn, &event.build()).await?;
        txn.commit().await?;
        Ok(new)
    }

    /// Deletes the tenant's consent records that ended (withdrawn or
    /// expired) longer ago than its consent retention. Active consent is
    /// never deleted, whether or not the lead still exists. `actor` is
    /// (user id, service identity) for the audit event.
    pub async fn prune_consent(&self, tenant: &str, actor: (&str, &str)) -> Result<u64> {
        if tenant.is_empty() {
            return Err(Error::invalid("tenant_id", "required"));
        }
        let settings = self.settings(tenant).await?;
        let cutoff = self.clock.now() - Duration::days(i64::from(settings.consent_retention_days));
        let ended_before_cutoff =
            Condition::any().add(consent::Column::WithdrawnAt.lt(cutoff)).add(consent::Column::ExpiresAt.lt(cutoff));
        let txn = guardline_runtime::storage::write_txn(&self.db).await?;
        let pruned = consent::Entity::delete_many()
            .filter(consent::Column::TenantId.eq(tenant))
            .filter(ended_before_cutoff)
            .exec(&txn)
            .await?
            .rows_affected;
        if pruned > 0 {
            let event = EventBuilder::new(tenant, "consent.prune")
                .actor(actor.0, actor.1)
                .resource("tenant", tenant)
                .detail("pruned", pruned.to_string())
                .detail("retention_days", settings.consent_retention_days.to_string());
            guardline_audit_client::enqueue(&txn, &event.build()).await?;
        }
        txn.commit().await?;
        Ok(pruned)
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

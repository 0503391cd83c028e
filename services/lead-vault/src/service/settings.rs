//! A tenant's vault settings (the erasure deadline and the consent
//! retention) and the consent retention sweep that reads them.

use chrono::Duration;
use guardline_audit_client::EventBuilder;
use guardline_authz::{Resource, Subject, decide};

pub use crate::domain::settings::*;
use crate::error::{Error, Result};
use crate::service::{Actor, Vault};

fn require_policy(who: &Subject, tenant: &str) -> Result<()> {
    let d = decide(who, "policy.manage", &Resource { tenant: tenant.into(), ..Default::default() });
    if d.allowed { Ok(()) } else { Err(Error::PermissionDenied(d.rule)) }
}

impl Vault {
    /// The settings in force for `tenant` (the defaults without a row).
    pub async fn settings(&self, tenant: &str) -> Result<VaultSettings> {
        Ok(self.store.settings(tenant).await?.unwrap_or_default())
    }

    /// The tenant's settings, for a user with `policy.manage`.
    pub async fn get_settings(&self, who: &Subject, tenant: &str) -> Result<VaultSettings> {
        require_policy(who, tenant)?;
        self.settings(tenant).await
    }

    /// Changes the tenant's settings; the old and new values are audited
    /// (numbers, never PII).
    pub async fn update_settings(
        &self,
        who: &Actor<'_>,
        tenant: &str,
        change: SettingsChange,
    ) -> Result<VaultSettings> {
        who.require("policy.manage", tenant)?;
        let event = |old: VaultSettings, new: VaultSettings| {
            EventBuilder::new(tenant, "vault.settings.update")
                .actor(who.user(), who.service())
                .resource("tenant", tenant)
                .detail(
                    "erasure_deadline_days",
                    format!("{} -> {}", old.erasure_deadline_days, new.erasure_deadline_days),
                )
                .detail(
                    "consent_retention_days",
                    format!("{} -> {}", old.consent_retention_days, new.consent_retention_days),
                )
        };
        self.store.update_settings(tenant, |old| change.apply(old), self.clock.now(), event).await
    }

    /// Deletes the tenant's consent records that ended (withdrawn or
    /// expired) longer ago than its consent retention. Active consent is
    /// never deleted, whether or not the lead still exists. `actor` is
    /// (user id, service identity) for the audit event.
    pub async fn prune_consent(&self, tenant: &str, run: (u32, bool), actor: (&str, &str)) -> Result<(u64, bool)> {
        if tenant.is_empty() {
            return Err(Error::invalid("tenant_id", "required"));
        }
        let settings = self.settings(tenant).await?;
        let cutoff = self.clock.now() - Duration::days(i64::from(settings.consent_retention_days));
        let event = EventBuilder::new(tenant, "consent.prune")
            .actor(actor.0, actor.1)
            .resource("tenant", tenant)
            .detail("retention_days", settings.consent_retention_days.to_string());
        self.store.prune_consent(tenant, cutoff, run, event).await
    }
}

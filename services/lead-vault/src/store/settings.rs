//! Tenant settings and the consent retention sweep's deletion.

use chrono::{DateTime, Utc};
use guardline_audit_client::{Conn, EventBuilder};
use sea_orm::{ActiveValue, ColumnTrait, Condition, EntityTrait, QueryFilter};

use super::{Store, consent, tenant_settings};
use crate::domain::settings::VaultSettings;
use crate::error::Result;

impl From<&tenant_settings::Model> for VaultSettings {
    fn from(r: &tenant_settings::Model) -> Self {
        Self {
            erasure_deadline_days: r.erasure_deadline_days.max(0) as u32,
            consent_retention_days: r.consent_retention_days.max(0) as u32,
        }
    }
}

impl Store {
    /// The settings a tenant set, if it set any.
    pub async fn settings(&self, tenant: &str) -> Result<Option<VaultSettings>> {
        Ok(tenant_settings::Entity::find_by_id(tenant).one(self.db.conn()).await?.as_ref().map(From::from))
    }

    /// Applies `change` to the tenant's settings in one transaction and
    /// audits (old, new) with `event`; returns the new settings.
    pub async fn update_settings(
        &self,
        tenant: &str,
        change: impl FnOnce(VaultSettings) -> Result<VaultSettings>,
        now: DateTime<Utc>,
        event: impl FnOnce(VaultSettings, VaultSettings) -> EventBuilder,
    ) -> Result<VaultSettings> {
        let tx = self.db.begin().await?;
        let txn = tx.conn();
        let existing = tenant_settings::Entity::find_by_id(tenant).one(txn).await?;
        let old = existing.as_ref().map_or_else(VaultSettings::default, From::from);
        let new = change(old)?;
        let row = tenant_settings::ActiveModel {
            tenant_id: ActiveValue::Set(tenant.into()),
            erasure_deadline_days: ActiveValue::Set(new.erasure_deadline_days as i32),
            consent_retention_days: ActiveValue::Set(new.consent_retention_days as i32),
            updated_at: ActiveValue::Set(now),
        };
        if existing.is_some() {
            tenant_settings::Entity::update(row).exec(txn).await?;
        } else {
            tenant_settings::Entity::insert(row).exec(txn).await?;
        }
        self.db.commit(tx, [event(old, new)]).await?;
        Ok(new)
    }

    /// Deletes the tenant's consent records that ended (withdrawn or
    /// expired) before `cutoff`; audited with the count when any went.
    pub async fn prune_consent(&self, tenant: &str, cutoff: DateTime<Utc>, event: EventBuilder) -> Result<u64> {
        let ended_before_cutoff =
            Condition::any().add(consent::Column::WithdrawnAt.lt(cutoff)).add(consent::Column::ExpiresAt.lt(cutoff));
        let tx = self.db.begin().await?;
        let txn = tx.conn();
        let pruned = consent::Entity::delete_many()
            .filter(consent::Column::TenantId.eq(tenant))
            .filter(ended_before_cutoff)
            .exec(txn)
            .await?
            .rows_affected;
        let events = (pruned > 0).then(|| event.detail("pruned", pruned.to_string()));
        self.db.commit(tx, events).await?;
        Ok(pruned)
    }
}

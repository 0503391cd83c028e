//! Tenant settings and the consent retention sweep's deletion.

use chrono::{DateTime, Utc};
use guardline_audit_client::{Conn, EventBuilder};
use sea_orm::{ActiveValue, ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

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
    /// expired) before `cutoff`, at most `limit` (0: all), or with `dry_run`
    /// only counts them; audited with the count when any went. Returns
    /// (deleted or counted, whether more remain beyond the limit).
    pub async fn prune_consent(
        &self,
        tenant: &str,
        cutoff: DateTime<Utc>,
        (limit, dry_run): (u32, bool),
        event: EventBuilder,
    ) -> Result<(u64, bool)> {
        let ended_before_cutoff =
            Condition::any().add(consent::Column::WithdrawnAt.lt(cutoff)).add(consent::Column::ExpiresAt.lt(cutoff));
        let tx = self.db.begin().await?;
        let txn = tx.conn();
        let mut due = consent::Entity::find()
            .select_only()
            .column(consent::Column::Id)
            .filter(consent::Column::TenantId.eq(tenant))
            .filter(ended_before_cutoff)
            .order_by_asc(consent::Column::Id);
        if limit > 0 {
            // One more than the limit tells whether any remain.
            due = due.limit(u64::from(limit) + 1);
        }
        let mut ids: Vec<String> = due.into_tuple().all(txn).await?;
        let more = limit > 0 && ids.len() > limit as usize;
        ids.truncate(if limit > 0 { limit as usize } else { ids.len() });
        if dry_run || ids.is_empty() {
            return Ok((ids.len() as u64, more));
        }
        let pruned =
            consent::Entity::delete_many().filter(consent::Column::Id.is_in(ids)).exec(txn).await?.rows_affected;
        self.db.commit(tx, Some(event.detail("pruned", pruned.to_string()))).await?;
        Ok((pruned, more))
    }
}

//! Alerts, each tenant's alert settings (thresholds, sealed webhooks) and
//! the durable webhook deliveries.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::log::Store;
use super::{alert, alert_setting, delivery};
use crate::error::Result;

impl Store {
    /// A tenant's settings as stored: (thresholds JSON, webhooks JSON).
    pub async fn alert_settings(&self, tenant: &str) -> Result<Option<(String, String)>> {
        let row = alert_setting::Entity::find_by_id(tenant.to_owned()).one(self.db()).await?;
        Ok(row.map(|s| (s.thresholds, s.webhooks)))
    }

    /// Every tenant's thresholds as stored (JSON), in one read.
    pub async fn all_thresholds(&self) -> Result<Vec<(String, String)>> {
        Ok(alert_setting::Entity::find()
            .select_only()
            .columns([alert_setting::Column::TenantId, alert_setting::Column::Thresholds])
            .into_tuple()
            .all(self.db())
            .await?)
    }

    /// Replaces a tenant's settings.
    pub async fn put_alert_settings(&self, tenant: &str, thresholds: String, webhooks: String) -> Result<()> {
        let row = alert_setting::ActiveModel {
            tenant_id: Set(tenant.to_owned()),
            thresholds: Set(thresholds),
            webhooks: Set(webhooks),
        };
        if alert_setting::Entity::find_by_id(tenant.to_owned()).one(self.db()).await?.is_some() {
            row.update(self.db()).await?;
        } else {
            alert_setting::Entity::insert(row).exec(self.db()).await?;
        }
        Ok(())
    }

    /// Stores a raised alert and its pending deliveries.
    pub async fn insert_alert(&self, row: &alert::Model, deliveries: Vec<delivery::Model>) -> Result<()> {
        let txn = guardline_runtime::storage::write_txn(self.db()).await?;
        alert::Entity::insert(alert::ActiveModel::from(row.clone())).exec(&txn).await?;
        for d in deliveries {
            delivery::Entity::insert(delivery::ActiveModel::from(d)).exec(&txn).await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// A tenant's alerts, newest first.
    pub async fn alerts(
        &self,
        tenant: &str,
        state: Option<&str>,
        before: Option<&str>,
        limit: u64,
    ) -> Result<Vec<alert::Model>> {
        let mut q = alert::Entity::find().filter(alert::Column::TenantId.eq(tenant)).order_by_desc(alert::Column::Id);
        if let Some(s) = state {
            q = q.filter(alert::Column::State.eq(s));
        }
        if let Some(b) = before {
            q = q.filter(alert::Column::Id.lt(b));
        }
        Ok(q.limit(limit.clamp(1, 1000)).all(self.db()).await?)
    }

    /// An alert by id, whatever its tenant (the caller checks).
    pub async fn alert(&self, id: &str) -> Result<Option<alert::Model>> {
        Ok(alert::Entity::find_by_id(id.to_owned()).one(self.db()).await?)
    }

    /// Moves an alert to `state`, recording who and when.
    pub async fn set_alert_state(
        &self,
        row: alert::Model,
        state: &str,
        by: &str,
        at: DateTime<Utc>,
    ) -> Result<alert::Model> {
        let mut active: alert::ActiveModel = row.into();
        active.state = Set(state.into());
        active.updated_by = Set(by.into());
        active.updated_at = Set(Some(at));
        Ok(active.update(self.db()).await?)
    }

    /// Up to 100 undelivered deliveries due at `now`, oldest first.
    pub async fn due_deliveries(&self, now: DateTime<Utc>) -> Result<Vec<delivery::Model>> {
        Ok(delivery::Entity::find()
            .filter(delivery::Column::DeliveredAt.is_null())
            .filter(delivery::Column::NextAttemptAt.lte(now))
            .order_by_asc(delivery::Column::Id)
            .limit(100)
            .all(self.db())
            .await?)
    }

    /// Drops a delivery that can never be made.
    pub async fn drop_delivery(&self, id: &str) -> Result<()> {
        delivery::Entity::delete_by_id(id.to_owned()).exec(self.db()).await?;
        Ok(())
    }

    /// Marks a delivery made at `at`.
    pub async fn delivered(&self, id: &str, at: DateTime<Utc>) -> Result<()> {
        delivery::Entity::update_many()
            .col_expr(delivery::Column::DeliveredAt, Expr::value(at))
            .filter(delivery::Column::Id.eq(id))
            .exec(self.db())
            .await?;
        Ok(())
    }

    /// Counts a failed attempt at delivery `id` and postpones it, and every
    /// other pending delivery to the same webhook due before `next`, to
    /// `next`, in one transaction.
    pub async fn retry_delivery(&self, id: &str, tenant: &str, url: &str, next: DateTime<Utc>) -> Result<()> {
        let txn = guardline_runtime::storage::write_txn(self.db()).await?;
        delivery::Entity::update_many()
            .col_expr(delivery::Column::Attempts, Expr::col(delivery::Column::Attempts).add(1))
            .filter(delivery::Column::Id.eq(id))
            .exec(&txn)
            .await?;
        delivery::Entity::update_many()
            .col_expr(delivery::Column::NextAttemptAt, Expr::value(next))
            .filter(delivery::Column::TenantId.eq(tenant))
            .filter(delivery::Column::Url.eq(url))
            .filter(delivery::Column::DeliveredAt.is_null())
            .filter(delivery::Column::NextAttemptAt.lt(next))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(())
    }
}

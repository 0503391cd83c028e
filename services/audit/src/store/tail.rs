//! What alerting reads of the shared log, whichever replica appended it:
//! each tenant's committed size, how far the detector has read it (a
//! cursor per tenant, so a replica that takes detection over goes on where
//! the last one stopped), and alerts in the order they were raised (ids
//! are UUIDv7), which every replica relays to its own watchers.

use std::collections::HashMap;

use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, string};

use super::alert;
use super::log::Store;
use super::tree::sequencer;
use crate::error::Result;

/// The detector's place in each tenant's log.
pub mod cursor {
    use sea_orm::entity::prelude::*;
    /// The next index of a tenant's log the detector will read.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_alert_cursors")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        pub next_idx: i64,
    }
    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
    impl ActiveModelBehavior for ActiveModel {}
}

impl Store {
    /// Every tenant's committed tree size.
    pub async fn tree_sizes(&self) -> Result<Vec<(String, u64)>> {
        let rows: Vec<(String, i64)> = sequencer::Entity::find()
            .select_only()
            .columns([sequencer::Column::TenantId, sequencer::Column::Size])
            .into_tuple()
            .all(self.db())
            .await?;
        Ok(rows.into_iter().map(|(t, s)| (t, s as u64)).collect())
    }

    /// The detector's cursors, by tenant.
    pub async fn alert_cursors(&self) -> Result<HashMap<String, u64>> {
        let rows = cursor::Entity::find().all(self.db()).await?;
        Ok(rows.into_iter().map(|c| (c.tenant_id, c.next_idx as u64)).collect())
    }

    /// Moves a tenant's cursor to `next`.
    pub async fn set_alert_cursor(&self, tenant: &str, next: u64) -> Result<()> {
        let row = cursor::ActiveModel { tenant_id: Set(tenant.to_owned()), next_idx: Set(next as i64) };
        cursor::Entity::insert(row)
            .on_conflict(
                sea_orm::sea_query::OnConflict::column(cursor::Column::TenantId)
                    .update_column(cursor::Column::NextIdx)
                    .to_owned(),
            )
            .exec(self.db())
            .await?;
        Ok(())
    }

    /// Up to `limit` alerts raised after the alert `after` (all, if None), oldest first.
    pub async fn alerts_after(&self, after: Option<&str>, limit: u64) -> Result<Vec<alert::Model>> {
        let mut q = alert::Entity::find().order_by_asc(alert::Column::Id).limit(limit);
        if let Some(a) = after {
            q = q.filter(alert::Column::Id.gt(a));
        }
        Ok(q.all(self.db()).await?)
    }

    /// The newest alert's id.
    pub async fn newest_alert(&self) -> Result<Option<String>> {
        Ok(alert::Entity::find()
            .select_only()
            .column(alert::Column::Id)
            .order_by_desc(alert::Column::Id)
            .into_tuple()
            .one(self.db())
            .await?)
    }
}

/// Creates the cursors, each where its log ends now: detection goes on
/// from here, as it did from each append before.
#[derive(Debug)]
pub(super) struct CreateAlertCursors;

impl MigrationName for CreateAlertCursors {
    fn name(&self) -> &str {
        "m20261208_000400_audit_alert_cursors"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateAlertCursors {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Alias::new("audit_alert_cursors"))
                .if_not_exists()
                .col(string(Alias::new("tenant_id")).primary_key())
                .col(big_integer(Alias::new("next_idx")))
                .to_owned(),
        )
        .await?;
        m.get_connection()
            .execute_unprepared(
                "INSERT INTO audit_alert_cursors (tenant_id, next_idx) \
                 SELECT tenant_id, MAX(idx) + 1 FROM audit_events GROUP BY tenant_id",
            )
            .await?;
        Ok(())
    }
}

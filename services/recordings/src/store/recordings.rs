//! Recordings' queries and transactions: the only code that reads or
//! writes recording rows. Each change commits with its audit event.

use guardline_audit_client::{AuditedDb, Conn, EventBuilder};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::{recording, retention_class, state, upload};
use crate::domain::recording::ListFilter;
use crate::error::Result;

/// The recordings database.
#[derive(Clone)]
pub struct Store {
    db: AuditedDb,
}

impl Store {
    /// The store over `db`.
    pub fn new(db: AuditedDb) -> Self {
        Self { db }
    }

    /// Records an event with no other change.
    pub async fn audit(&self, event: EventBuilder) -> Result<()> {
        self.db.audit(event).await
    }

    /// Uploads in flight (state `uploading`), each with the replica receiving
    /// it (None: begun by a version that recorded none).
    pub async fn uploading(&self) -> Result<Vec<(recording::Model, Option<String>)>> {
        let rows =
            recording::Entity::find().filter(recording::Column::State.eq(state::UPLOADING)).all(self.db.conn()).await?;
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let holders: std::collections::HashMap<String, String> = upload::Entity::find()
            .filter(upload::Column::RecordingId.is_in(ids))
            .all(self.db.conn())
            .await?
            .into_iter()
            .map(|u| (u.recording_id, u.holder))
            .collect();
        Ok(rows.into_iter().map(|r| (holders.get(&r.id).cloned(), r)).map(|(holder, r)| (r, holder)).collect())
    }

    /// Adds the row of an upload that begins in the replica `holder`.
    pub async fn insert(&self, row: recording::Model, holder: &str) -> Result<()> {
        let tx = self.db.begin().await?;
        let up = upload::ActiveModel { recording_id: Set(row.id.clone()), holder: Set(holder.to_owned()) };
        recording::Entity::insert(recording::ActiveModel::from(row)).exec(tx.conn()).await?;
        upload::Entity::insert(up).exec(tx.conn()).await?;
        self.db.commit(tx, []).await
    }

    /// Removes a row (an upload that failed or died with its replica).
    pub async fn delete(&self, id: &str) -> Result<()> {
        let tx = self.db.begin().await?;
        upload::Entity::delete_by_id(id.to_owned()).exec(tx.conn()).await?;
        recording::Entity::delete_by_id(id.to_owned()).exec(tx.conn()).await?;
        self.db.commit(tx, []).await
    }

    /// Whether one process owns this database (SQLite: the embedded
    /// store is one process's file), so that at its start every upload in
    /// flight is a dead process's.
    pub fn single_process(&self) -> bool {
        sea_orm::ConnectionTrait::get_database_backend(self.db.conn()) == sea_orm::DatabaseBackend::Sqlite
    }

    /// Leases on this database.
    pub fn leases(&self, clock: guardline_runtime::clock::Clock) -> guardline_runtime::lease::Leases {
        guardline_runtime::lease::Leases::new(self.db.conn().clone(), clock)
    }

    /// Writes a complete upload as stored: `row` holds its size, hash,
    /// dates, state and MAC.
    pub async fn mark_stored(&self, row: recording::Model, event: EventBuilder) -> Result<recording::Model> {
        let id = row.id.clone();
        let active = recording::ActiveModel::from(row).reset_all();
        let tx = self.db.begin().await?;
        upload::Entity::delete_by_id(id).exec(tx.conn()).await?;
        let written = active.update(tx.conn()).await?;
        self.db.commit(tx, [event]).await?;
        Ok(written)
    }

    /// Writes every column of `row`, with its event.
    async fn write(&self, row: recording::Model, event: EventBuilder) -> Result<recording::Model> {
        let active = recording::ActiveModel::from(row).reset_all();
        let tx = self.db.begin().await?;
        let written = active.update(tx.conn()).await?;
        self.db.commit(tx, [event]).await?;
        Ok(written)
    }

    /// Stored rows after `after` (by id, every tenant) with no MAC yet, at
    /// most `limit`.
    pub async fn unmaced(&self, after: &str, limit: u64) -> Result<Vec<recording::Model>> {
        Ok(recording::Entity::find()
            .filter(recording::Column::Id.gt(after))
            .filter(recording::Column::State.eq(state::STORED))
            .filter(recording::Column::Mac.is_null())
            .order_by_asc(recording::Column::Id)
            .limit(limit)
            .all(self.db.conn())
            .await?)
    }

    /// Gives a row its first MAC, unless it got one meanwhile.
    pub async fn set_first_mac(&self, id: &str, mac: Vec<u8>) -> Result<()> {
        recording::Entity::update_many()
            .col_expr(recording::Column::Mac, Expr::value(mac))
            .filter(recording::Column::Id.eq(id))
            .filter(recording::Column::Mac.is_null())
            .exec(self.db.conn())
            .await?;
        Ok(())
    }

    /// A tenant's class as (min days, delete-after days), if defined.
    pub async fn retention_class(&self, tenant: &str, name: &str) -> Result<Option<(i64, i64)>> {
        let row = retention_class::Entity::find_by_id((tenant.to_owned(), name.to_owned())).one(self.db.conn()).await?;
        Ok(row.map(|c| (i64::from(c.min_days), i64::from(c.delete_after_days))))
    }

    /// Defines or changes a class.
    pub async fn put_retention_class(
        &self,
        (tenant, name): (&str, &str),
        (min_days, delete_after_days): (u32, u32),
        event: EventBuilder,
    ) -> Result<()> {
        let row = retention_class::ActiveModel {
            tenant_id: Set(tenant.to_owned()),
            name: Set(name.to_owned()),
            min_days: Set(min_days as i32),
            delete_after_days: Set(delete_after_days as i32),
        };
        let tx = self.db.begin().await?;
        let txn = tx.conn();
        if retention_class::Entity::find_by_id((tenant.to_owned(), name.to_owned())).one(txn).await?.is_some() {
            row.update(txn).await?;
        } else {
            retention_class::Entity::insert(row).exec(txn).await?;
        }
        self.db.commit(tx, [event]).await
    }

    /// A row by id, in any state.
    pub async fn find(&self, id: &str) -> Result<Option<recording::Model>> {
        Ok(recording::Entity::find_by_id(id.to_owned()).one(self.db.conn()).await?)
    }

    /// Stored recordings of a tenant matching `filter`, newest first.
    pub async fn list(&self, tenant: &str, filter: &ListFilter, limit: u64) -> Result<Vec<recording::Model>> {
        let mut q = recording::Entity::find()
            .filter(recording::Column::TenantId.eq(tenant))
            .filter(recording::Column::State.eq(state::STORED))
            .order_by_desc(recording::Column::Id);
        for (col, v) in [
            (recording::Column::LeadId, &filter.lead),
            (recording::Column::AgentId, &filter.agent),
            (recording::Column::CallId, &filter.call),
        ] {
            if let Some(v) = v {
                q = q.filter(col.eq(v.clone()));
            }
        }
        if let Some(owners) = &filter.owners {
            q = q.filter(recording::Column::AgentId.is_in(owners.clone()));
        }
        if let Some(teams) = &filter.teams {
            q = q.filter(recording::Column::TeamId.is_in(teams.clone()));
        }
        if let Some(f) = filter.from {
            q = q.filter(recording::Column::StartedAt.gte(f));
        }
        if let Some(t) = filter.to {
            q = q.filter(recording::Column::StartedAt.lt(t));
        }
        if let Some(b) = &filter.before {
            q = q.filter(recording::Column::Id.lt(b.clone()));
        }
        Ok(q.limit(limit.clamp(1, 1000)).all(self.db.conn()).await?)
    }

    /// Stored recordings of a tenant, or of one of its leads.
    pub async fn stored(&self, tenant: &str, lead: Option<&str>) -> Result<Vec<recording::Model>> {
        let mut q = recording::Entity::find()
            .filter(recording::Column::TenantId.eq(tenant))
            .filter(recording::Column::State.eq(state::STORED));
        if let Some(lead) = lead {
            q = q.filter(recording::Column::LeadId.eq(lead));
        }
        Ok(q.all(self.db.conn()).await?)
    }

    /// Writes a hold placed or cleared: `row` holds the hold, its reason
    /// and the new MAC.
    pub async fn set_hold(&self, row: recording::Model, event: EventBuilder) -> Result<recording::Model> {
        self.write(row, event).await
    }

    /// Destroys a row's key and leaves it as a tombstone in `new_state`.
    pub async fn tombstone(&self, row: recording::Model, new_state: &str, event: EventBuilder) -> Result<()> {
        let mut active: recording::ActiveModel = row.into();
        active.key_sealed = Set(None);
        active.state = Set(new_state.into());
        // Nothing of the audio stays: its plaintext hash would let anyone
        // holding the audio confirm it was stored. Without the key the MAC
        // cannot be checked again either.
        active.sha256 = Set(None);
        active.mac = Set(None);
        let tx = self.db.begin().await?;
        let txn = tx.conn();
        active.update(txn).await?;
        self.db.commit(tx, [event]).await
    }
}

//! The data-key rotation job and the rows it moves: leads whose record
//! key is wrapped by an older data key, and the tenant's secrets.

use guardline_audit_client::{Conn, EventBuilder};
use guardline_keys::store::{entity as dk, state};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect};

use super::{Store, lead, rotation, tenant_secret};
use crate::error::Result;

/// Rotation job states as stored.
pub mod job_state {
    /// Record keys are being re-wrapped.
    pub const RUNNING: &str = "running";
    /// Every record key and secret moved; old data keys retired.
    pub const DONE: &str = "done";
}

/// A tenant data key's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataKeyState {
    /// Wraps new record keys.
    Active,
    /// Still wraps some record keys.
    Retiring,
    /// Wraps nothing any more.
    Retired,
}

impl Store {
    /// The tenant's current or last rotation job.
    pub async fn rotation(&self, tenant: &str) -> Result<Option<rotation::Model>> {
        Ok(rotation::Entity::find_by_id(tenant.to_owned()).one(self.db.conn()).await?)
    }

    /// Running jobs, of every tenant.
    pub async fn running_rotations(&self) -> Result<Vec<rotation::Model>> {
        Ok(rotation::Entity::find().filter(rotation::Column::State.eq(job_state::RUNNING)).all(self.db.conn()).await?)
    }

    /// How many leads' record keys are not wrapped by `data_key`.
    pub async fn leads_not_under(&self, tenant: &str, data_key: &str) -> Result<u64> {
        Ok(lead::Entity::find()
            .filter(lead::Column::TenantId.eq(tenant))
            .filter(lead::Column::KeyDataKeyId.ne(data_key))
            .filter(lead::Column::KeySealed.is_not_null())
            .count(self.db.conn())
            .await?)
    }

    /// Up to `limit` leads whose record keys are not wrapped by `data_key`.
    pub async fn leads_batch_not_under(&self, tenant: &str, data_key: &str, limit: u64) -> Result<Vec<lead::Model>> {
        Ok(lead::Entity::find()
            .filter(lead::Column::TenantId.eq(tenant))
            .filter(lead::Column::KeyDataKeyId.ne(data_key))
            .filter(lead::Column::KeySealed.is_not_null())
            .limit(limit)
            .all(self.db.conn())
            .await?)
    }

    /// Replaces the tenant's job with a running one towards `new_data_key`.
    pub async fn start_rotation(
        &self,
        tenant: &str,
        new_data_key: String,
        total: u64,
        event: EventBuilder,
    ) -> Result<()> {
        let row = rotation::ActiveModel {
            tenant_id: Set(tenant.into()),
            new_data_key_id: Set(new_data_key),
            total: Set(total as i64),
            rewrapped: Set(0),
            state: Set(job_state::RUNNING.into()),
        };
        let tx = self.db.begin().await?;
        let txn = tx.conn();
        rotation::Entity::delete_by_id(tenant.to_owned()).exec(txn).await?;
        rotation::Entity::insert(row).exec(txn).await?;
        self.db.commit(tx, [event]).await
    }

    /// Stores re-wrapped record keys, each `(as read, re-wrapped)`, and adds
    /// them to the job's progress. A lead changed since it was read is left
    /// alone; the next batch picks it up again.
    pub async fn rewrapped(&self, tenant: &str, moved: &[(lead::Model, lead::Model)]) -> Result<()> {
        let tx = self.db.begin().await?;
        let txn = tx.conn();
        let mut moved_now = 0i64;
        for (row, next) in moved {
            let done = lead::Entity::update_many()
                .col_expr(lead::Column::KeyDataKeyId, Expr::value(next.key_data_key_id.clone()))
                .col_expr(lead::Column::KeySealed, Expr::value(next.key_sealed.clone()))
                .col_expr(lead::Column::Mac, Expr::value(next.mac.clone()))
                .filter(lead::Column::Id.eq(&row.id))
                .filter(lead::Column::Version.eq(row.version))
                .filter(lead::Column::KeyDataKeyId.eq(&row.key_data_key_id))
                .exec(txn)
                .await?;
            moved_now += done.rows_affected as i64;
        }
        rotation::Entity::update_many()
            .col_expr(rotation::Column::Rewrapped, Expr::col(rotation::Column::Rewrapped).add(moved_now))
            .filter(rotation::Column::TenantId.eq(tenant))
            .exec(txn)
            .await?;
        self.db.commit(tx, []).await?;
        Ok(())
    }

    /// The tenant's secrets not sealed under `data_key`.
    pub async fn secrets_not_under(&self, tenant: &str, data_key: &str) -> Result<Vec<tenant_secret::Model>> {
        Ok(tenant_secret::Entity::find()
            .filter(tenant_secret::Column::TenantId.eq(tenant))
            .filter(tenant_secret::Column::DataKeyId.ne(data_key))
            .all(self.db.conn())
            .await?)
    }

    /// Stores a secret sealed anew.
    pub async fn reseal_secret(&self, tenant: &str, kind: &str, data_key: String, sealed: Vec<u8>) -> Result<()> {
        tenant_secret::Entity::update_many()
            .col_expr(tenant_secret::Column::DataKeyId, Expr::value(data_key))
            .col_expr(tenant_secret::Column::Sealed, Expr::value(sealed))
            .filter(tenant_secret::Column::TenantId.eq(tenant))
            .filter(tenant_secret::Column::Kind.eq(kind))
            .exec(self.db.conn())
            .await?;
        Ok(())
    }

    /// Marks the tenant's job done.
    pub async fn finish_rotation(&self, tenant: &str) -> Result<()> {
        rotation::Entity::update_many()
            .col_expr(rotation::Column::State, Expr::value(job_state::DONE))
            .filter(rotation::Column::TenantId.eq(tenant))
            .exec(self.db.conn())
            .await?;
        Ok(())
    }

    /// The tenant's data keys and their states.
    pub async fn data_keys(&self, tenant: &str) -> Result<Vec<(String, DataKeyState)>> {
        let keys = dk::Entity::find().filter(dk::Column::TenantId.eq(tenant)).all(self.db.conn()).await?;
        Ok(keys
            .into_iter()
            .map(|k| {
                let s = match k.state.as_str() {
                    state::ACTIVE => DataKeyState::Active,
                    state::RETIRING => DataKeyState::Retiring,
                    _ => DataKeyState::Retired,
                };
                (k.id, s)
            })
            .collect())
    }
}

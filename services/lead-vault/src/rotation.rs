//! Tenant key operations. `rewrap_tenant_keys` follows a tenant-key rotation
//! in Vault: stored data keys are rewrapped, records untouched.
//! `rotate_data_key` makes a new tenant data key and re-wraps every record
//! key in batches in the background; the job is stored, so a restart resumes
//! it, and the old data key is retired only when no record uses it.

use std::sync::Arc;

use guardline_audit_client::EventBuilder;
use guardline_keys::SealedRecordKey;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect};

use crate::error::{Error, Result};
use crate::service::Vault;
use crate::store::{lead, rotation, tenant_secret};

const BATCH: u64 = 100;

/// Rotation job states as stored.
mod job_state {
    pub const RUNNING: &str = "running";
    pub const DONE: &str = "done";
}

/// Where a tenant's keys stand.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyStatus {
    /// Data key that wraps new record keys.
    pub active: String,
    /// Older data keys still wrapping some record key.
    pub retiring: Vec<String>,
    /// Record keys re-wrapped by the current or last rotation.
    pub rewrapped: u64,
    /// Record keys that rotation had to re-wrap.
    pub total: u64,
    /// Whether a rotation is running.
    pub in_progress: bool,
}

impl Vault {
    /// Rewraps the tenant's stored data keys under the latest tenant-key version.
    pub async fn rewrap_tenant_keys(&self, tenant: &str, actor: (&str, &str)) -> Result<(u64, u32)> {
        let n = self.envelope().rewrap_tenant_data_keys(tenant).await?;
        let version = self.envelope().provider().versions(tenant).await?.latest;
        let event = EventBuilder::new(tenant, "key.rewrap")
            .actor(actor.0, actor.1)
            .resource("tenant_key", tenant)
            .detail("rewrapped", n)
            .detail("version", version);
        let txn = guardline_runtime::storage::write_txn(&self.db).await?;
        guardline_audit_client::enqueue(&txn, &event.build()).await?;
        txn.commit().await?;
        self.outbox.notify_one();
        Ok((n, u32::try_from(version).unwrap_or(u32::MAX)))
    }

    /// Starts a data-key rotation (or returns the running one) and spawns its worker.
    pub async fn rotate_data_key(self: &Arc<Self>, tenant: &str, actor: (&str, &str)) -> Result<KeyStatus> {
        let running = rotation::Entity::find_by_id(tenant.to_owned())
            .one(&self.db)
            .await?
            .filter(|r| r.state == job_state::RUNNING);
        if running.is_none() {
            let new_dk = self.envelope().rotate_data_key(tenant).await?;
            let total = lead::Entity::find()
                .filter(lead::Column::TenantId.eq(tenant))
                .filter(lead::Column::KeyDataKeyId.ne(&new_dk))
                .filter(lead::Column::KeySealed.is_not_null())
                .count(&self.db)
                .await?;
            let row = rotation::ActiveModel {
                tenant_id: Set(tenant.into()),
                new_data_key_id: Set(new_dk),
                total: Set(total as i64),
                rewrapped: Set(0),
                state: Set(job_state::RUNNING.into()),
            };
            let txn = guardline_runtime::storage::write_txn(&self.db).await?;
            rotation::Entity::delete_by_id(tenant.to_owned()).exec(&txn).await?;
            rotation::Entity::insert(row).exec(&txn).await?;
            let event = EventBuilder::new(tenant, "key.rotate_data_key")
                .actor(actor.0, actor.1)
                .resource("tenant_key", tenant)
                .detail("records", total);
            guardline_audit_client::enqueue(&txn, &event.build()).await?;
            txn.commit().await?;
            self.outbox.notify_one();
            // Only the call that started the job runs it; a second call reports progress.
            self.spawn_rotation(tenant);
        }
        self.key_status(tenant).await
    }

    /// Resumes rotations a restart interrupted.
    pub async fn resume_rotations(self: &Arc<Self>) -> Result<usize> {
        let running =
            rotation::Entity::find().filter(rotation::Column::State.eq(job_state::RUNNING)).all(&self.db).await?;
        for r in &running {
            self.spawn_rotation(&r.tenant_id);
        }
        Ok(running.len())
    }

    fn spawn_rotation(self: &Arc<Self>, tenant: &str) {
        let (this, tenant) = (self.clone(), tenant.to_owned());
        tokio::spawn(async move {
            if let Err(error) = this.run_rotation(&tenant).await {
                tracing::error!(%error, "data key rotation stopped; it resumes at the next start");
            }
        });
    }

    async fn run_rotation(&self, tenant: &str) -> Result<()> {
        let job = rotation::Entity::find_by_id(tenant.to_owned()).one(&self.db).await?.ok_or(Error::NotFound)?;
        loop {
            // A newer rotation (two starts racing) supersedes this worker: its
            // own worker moves every record to the newer key.
            let current = rotation::Entity::find_by_id(tenant.to_owned()).one(&self.db).await?;
            let (active, _) = self.envelope().active_data_key(tenant).await?;
            if current.is_none_or(|c| c.new_data_key_id != job.new_data_key_id || c.state != job_state::RUNNING)
                || active != job.new_data_key_id
            {
                return Ok(());
            }
            let batch = lead::Entity::find()
                .filter(lead::Column::TenantId.eq(tenant))
                .filter(lead::Column::KeyDataKeyId.ne(&job.new_data_key_id))
                .filter(lead::Column::KeySealed.is_not_null())
                .limit(BATCH)
                .all(&self.db)
                .await?;
            if batch.is_empty() {
                break;
            }
            let txn = guardline_runtime::storage::write_txn(&self.db).await?;
            let mut moved_now = 0i64;
            for row in &batch {
                self.check_mac(row).await?;
                let sealed = SealedRecordKey {
                    data_key_id: row.key_data_key_id.clone(),
                    sealed: row.key_sealed.clone().ok_or(Error::NotFound)?,
                };
                let moved = self.envelope().rewrap_record_key(tenant, &row.id, &sealed).await?;
                let mut next = row.clone();
                next.key_data_key_id = moved.data_key_id;
                next.key_sealed = Some(moved.sealed);
                next.mac = self.mac(&next).await?;
                // Only if nobody changed the lead since it was read; a lead
                // updated meanwhile is picked up again by the next batch.
                let done = lead::Entity::update_many()
                    .col_expr(lead::Column::KeyDataKeyId, Expr::value(next.key_data_key_id.clone()))
                    .col_expr(lead::Column::KeySealed, Expr::value(next.key_sealed.clone()))
                    .col_expr(lead::Column::Mac, Expr::value(next.mac.clone()))
                    .filter(lead::Column::Id.eq(&row.id))
                    .filter(lead::Column::Version.eq(row.version))
                    .filter(lead::Column::KeyDataKeyId.eq(&row.key_data_key_id))
                    .exec(&txn)
                    .await?;
                moved_now += done.rows_affected as i64;
            }
            rotation::Entity::update_many()
                .col_expr(rotation::Column::Rewrapped, Expr::col(rotation::Column::Rewrapped).add(moved_now))
                .filter(rotation::Column::TenantId.eq(tenant))
                .exec(&txn)
                .await?;
            txn.commit().await?;
        }
        // The tenant's own secrets (blind-index and MAC keys) move too.
        let secrets = tenant_secret::Entity::find()
            .filter(tenant_secret::Column::TenantId.eq(tenant))
            .filter(tenant_secret::Column::DataKeyId.ne(&job.new_data_key_id))
            .all(&self.db)
            .await?;
        for sec in secrets {
            let clear = self.envelope().open_secret(tenant, &sec.kind, tenant, &sec.data_key_id, &sec.sealed).await?;
            let (dk, sealed) = self.envelope().seal_secret(tenant, &sec.kind, tenant, &clear).await?;
            tenant_secret::Entity::update_many()
                .col_expr(tenant_secret::Column::DataKeyId, Expr::value(dk))
                .col_expr(tenant_secret::Column::Sealed, Expr::value(sealed))
                .filter(tenant_secret::Column::TenantId.eq(tenant))
                .filter(tenant_secret::Column::Kind.eq(&sec.kind))
                .exec(&self.db)
                .await?;
        }
        // No record or secret uses an older data key any more: retire them.
        for old in self.key_status(tenant).await?.retiring {
            self.envelope().retire_data_key(tenant, &old).await?;
        }
        rotation::Entity::update_many()
            .col_expr(rotation::Column::State, Expr::value(job_state::DONE))
            .filter(rotation::Column::TenantId.eq(tenant))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// The tenant's key status.
    pub async fn key_status(&self, tenant: &str) -> Result<KeyStatus> {
        use guardline_keys::store::{entity as dk, state};
        // The job first: the worker retires the old keys and only then marks
        // the job done, so a done job read first implies retired keys below.
        // (Read the other way round, a status could say "done" and still list
        // a retiring key: seen once under load.)
        let job = rotation::Entity::find_by_id(tenant.to_owned()).one(&self.db).await?;
        let keys = dk::Entity::find().filter(dk::Column::TenantId.eq(tenant)).all(&self.db).await?;
        let active = keys.iter().find(|k| k.state == state::ACTIVE).map(|k| k.id.clone()).unwrap_or_default();
        let retiring = keys.iter().filter(|k| k.state == state::RETIRING).map(|k| k.id.clone()).collect();
        Ok(KeyStatus {
            active,
            retiring,
            rewrapped: job.as_ref().map_or(0, |j| j.rewrapped as u64),
            total: job.as_ref().map_or(0, |j| j.total as u64),
            in_progress: job.is_some_and(|j| j.state == job_state::RUNNING),
        })
    }
}

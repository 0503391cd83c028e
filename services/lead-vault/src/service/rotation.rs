//! Tenant key operations. `rewrap_tenant_keys` follows a tenant-key rotation
//! in Vault: stored data keys are rewrapped, records untouched.
//! `rotate_data_key` makes a new tenant data key and re-wraps every record
//! key in batches in the background; the job is stored, so a restart resumes
//! it, and the old data key is retired only when no record uses it. A job
//! runs under its tenant's lease, renewed every batch: one replica at a
//! time, and another takes it up when its holder dies.

use std::sync::Arc;

use guardline_audit_client::EventBuilder;
use guardline_keys::SealedRecordKey;

use crate::error::{Error, Result};
use crate::service::Vault;
use crate::store::{DataKeyState, job_state};

const BATCH: u64 = 100;

/// A rotation's lease term; renewed every batch.
pub const TERM: std::time::Duration = std::time::Duration::from_secs(60);
/// How often each replica looks for rotations to take up.
pub const RESUME_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

fn lease(tenant: &str) -> String {
    format!("lead-vault.rotation.{tenant}")
}

/// How a worker's run of a rotation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Run {
    /// Every record key moved, old keys retired (or a newer job took over).
    Done,
    /// Another replica (or worker) holds the job.
    HeldElsewhere,
    /// The lease was lost mid-job (another replica took it at its term).
    Lost,
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
        self.store.audit(event).await?;
        Ok((n, u32::try_from(version).unwrap_or(u32::MAX)))
    }

    /// Starts a data-key rotation (or returns the running one) and spawns its worker.
    pub async fn rotate_data_key(self: &Arc<Self>, tenant: &str, actor: (&str, &str)) -> Result<KeyStatus> {
        let running = self.store.rotation(tenant).await?.filter(|r| r.state == job_state::RUNNING);
        if running.is_none() {
            let new_dk = self.envelope().rotate_data_key(tenant).await?;
            let total = self.store.leads_not_under(tenant, &new_dk).await?;
            let event = EventBuilder::new(tenant, "key.rotate_data_key")
                .actor(actor.0, actor.1)
                .resource("tenant_key", tenant)
                .detail("records", total);
            self.store.start_rotation(tenant, new_dk, total, event).await?;
            // Only the call that started the job runs it; a second call reports progress.
            self.spawn_rotation(tenant);
        }
        self.key_status(tenant).await
    }

    /// Takes up every running rotation whose lease is free, each in its own
    /// worker; returns how many it started.
    pub async fn resume_rotations(self: &Arc<Self>) -> Result<usize> {
        let running = self.store.running_rotations().await?;
        for r in &running {
            self.spawn_rotation(&r.tenant_id);
        }
        Ok(running.len())
    }

    /// Runs every running rotation whose lease is free, in turn, to its end
    /// (what the workers do, awaited).
    pub async fn rotation_pass(&self) -> Result<Vec<(String, Run)>> {
        let mut out = Vec::new();
        for r in self.store.running_rotations().await? {
            let run = self.run_leased(&r.tenant_id).await?;
            out.push((r.tenant_id, run));
        }
        Ok(out)
    }

    fn spawn_rotation(self: &Arc<Self>, tenant: &str) {
        let (this, tenant) = (self.clone(), tenant.to_owned());
        tokio::spawn(async move {
            if let Err(error) = this.run_leased(&tenant).await {
                tracing::error!(%error, "data key rotation stopped; it is taken up again within a minute");
            }
        });
    }

    /// Runs the tenant's rotation if this process can take its lease.
    async fn run_leased(&self, tenant: &str) -> Result<Run> {
        let mine = self.rotating.lock().map(|mut r| r.insert(tenant.to_owned())).unwrap_or(false);
        if !mine {
            return Ok(Run::HeldElsewhere);
        }
        let name = lease(tenant);
        let run = match self.leases.acquire(&name, TERM).await {
            Ok(true) => self.run_rotation(tenant, &name).await,
            Ok(false) => Ok(Run::HeldElsewhere),
            Err(e) => Err(e),
        };
        if matches!(run, Ok(Run::Done)) {
            let _ = self.leases.release(&name).await;
        }
        if let Ok(mut r) = self.rotating.lock() {
            r.remove(tenant);
        }
        run
    }

    async fn run_rotation(&self, tenant: &str, lease: &str) -> Result<Run> {
        let job = self.store.rotation(tenant).await?.ok_or(Error::NotFound)?;
        loop {
            if !self.leases.renew(lease, TERM).await? {
                return Ok(Run::Lost);
            }
            // A newer rotation (two starts racing) supersedes this worker: its
            // own worker moves every record to the newer key.
            let current = self.store.rotation(tenant).await?;
            let (active, _) = self.envelope().active_data_key(tenant).await?;
            if current.is_none_or(|c| c.new_data_key_id != job.new_data_key_id || c.state != job_state::RUNNING)
                || active != job.new_data_key_id
            {
                return Ok(Run::Done);
            }
            let batch = self.store.leads_batch_not_under(tenant, &job.new_data_key_id, BATCH).await?;
            if batch.is_empty() {
                break;
            }
            let mut moved = Vec::with_capacity(batch.len());
            for row in batch {
                self.check_mac(&row).await?;
                let sealed = SealedRecordKey {
                    data_key_id: row.key_data_key_id.clone(),
                    sealed: row.key_sealed.clone().ok_or(Error::NotFound)?,
                };
                let rewrapped = self.envelope().rewrap_record_key(tenant, &row.id, &sealed).await?;
                let mut next = row.clone();
                next.key_data_key_id = rewrapped.data_key_id;
                next.key_sealed = Some(rewrapped.sealed);
                next.mac = self.mac(&next).await?;
                moved.push((row, next));
            }
            self.store.rewrapped(tenant, &moved).await?;
        }
        // The tenant's own secrets (blind-index and MAC keys) move too.
        for sec in self.store.secrets_not_under(tenant, &job.new_data_key_id).await? {
            let clear = self.envelope().open_secret(tenant, &sec.kind, tenant, &sec.data_key_id, &sec.sealed).await?;
            let (dk, sealed) = self.envelope().seal_secret(tenant, &sec.kind, tenant, &clear).await?;
            self.store.reseal_secret(tenant, &sec.kind, dk, sealed).await?;
        }
        // No record or secret uses an older data key any more: retire them.
        for old in self.key_status(tenant).await?.retiring {
            self.envelope().retire_data_key(tenant, &old).await?;
        }
        if !self.leases.renew(lease, TERM).await? {
            return Ok(Run::Lost);
        }
        self.store.finish_rotation(tenant).await?;
        Ok(Run::Done)
    }

    /// The tenant's key status.
    pub async fn key_status(&self, tenant: &str) -> Result<KeyStatus> {
        // The job first: the worker retires the old keys and only then marks
        // the job done, so a done job read first implies retired keys below.
        // (Read the other way round, a status could say "done" and still list
        // a retiring key: seen once under load.)
        let job = self.store.rotation(tenant).await?;
        let keys = self.store.data_keys(tenant).await?;
        let active = keys.iter().find(|k| k.1 == DataKeyState::Active).map(|k| k.0.clone()).unwrap_or_default();
        let retiring = keys.iter().filter(|k| k.1 == DataKeyState::Retiring).map(|k| k.0.clone()).collect();
        Ok(KeyStatus {
            active,
            retiring,
            rewrapped: job.as_ref().map_or(0, |j| j.rewrapped as u64),
            total: job.as_ref().map_or(0, |j| j.total as u64),
            in_progress: job.is_some_and(|j| j.state == job_state::RUNNING),
        })
    }
}

//! The operator's port to what it drives for a tenant's rotation: Vault's
//! transit key (through `guardline-keys`, with a policy limited to reading,
//! rotating, configuring and trimming tenant keys) and the key RPCs of the
//! lead vault and recordings, called over mTLS as the `operator` identity.
//! The operator never sees key material: every call moves or retires keys
//! inside Vault or inside a service.

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use guardline_keys::KeyProvider;
use guardline_proto::audit::v1 as apb;
use guardline_proto::audit::v1::audit_service_client::AuditServiceClient;
use guardline_proto::common::v1::PageRequest;
use guardline_proto::identity::v1 as idpb;
use guardline_proto::identity::v1::identity_service_client::IdentityServiceClient;
use guardline_proto::recordings::v1 as rpb;
use guardline_proto::recordings::v1::recordings_service_client::RecordingsServiceClient;
use guardline_proto::vault::v1 as vpb;
use guardline_proto::vault::v1::lead_vault_service_client::LeadVaultServiceClient;
use guardline_runtime::GrpcChannel;

use crate::rotation::Observed;

/// A failed call, said without personal data (services never put any in
/// their statuses, Vault none in its errors).
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    /// Vault refused or could not be reached.
    #[error("vault: {0}")]
    Vault(#[from] guardline_keys::Error),
    /// A service refused or could not be reached.
    #[error("{service}: {code:?}: {message}")]
    Service {
        /// `identity`, `lead-vault` or `recordings`.
        service: &'static str,
        /// The gRPC code.
        code: tonic::Code,
        /// The status message.
        message: String,
    },
}

fn service(service: &'static str) -> impl Fn(tonic::Status) -> MeshError {
    move |s| MeshError::Service { service, code: s.code(), message: s.message().to_owned() }
}

/// The data key's background re-wrap, as the lead vault reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rewrap {
    /// Record keys re-wrapped.
    pub done: u64,
    /// Record keys in all.
    pub total: u64,
    /// Still running.
    pub running: bool,
}

/// Every tenant, as both controllers enumerate them.
pub trait Tenants: Send + Sync {
    /// Every tenant's id, from identity (`ListTenants`, open to the operator).
    fn list_tenants(&self) -> impl Future<Output = Result<Vec<String>, MeshError>> + Send;
}

/// What a rotation calls, one method per idempotent step.
pub trait KeyMesh: Tenants {
    /// Vault's view of the tenant key and the lead vault's re-wrap.
    fn observe(
        &self,
        tenant: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(Observed, Rewrap), MeshError>> + Send;
    /// Rotates the tenant key in Vault; returns the new latest version.
    fn rotate_tenant_key(&self, tenant: &str) -> impl Future<Output = Result<u64, MeshError>> + Send;
    /// The lead vault and recordings rewrap what older versions wrap;
    /// returns the version the lead vault wrapped under and how many data
    /// keys each rewrapped.
    fn rewrap(&self, tenant: &str) -> impl Future<Output = Result<(u64, u64, u64), MeshError>> + Send;
    /// A new tenant data key in the lead vault.
    fn rotate_data_key(&self, tenant: &str) -> impl Future<Output = Result<Rewrap, MeshError>> + Send;
    /// Vault's `min_decryption_version` to `to`.
    fn raise_minimum(&self, tenant: &str, to: u64) -> impl Future<Output = Result<(), MeshError>> + Send;
    /// Deletes the versions below `to` in Vault.
    fn trim(&self, tenant: &str, to: u64) -> impl Future<Output = Result<(), MeshError>> + Send;
}

/// A tenant's retention periods, as a `RetentionPolicy` sets them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Periods {
    /// Days a recording is kept (the `default` retention class).
    pub recordings_days: u32,
    /// Days consent evidence is kept after the consent ends.
    pub consent_days: u32,
    /// Days audit entries are kept.
    pub audit_days: u32,
}

/// What recordings' purge did, or would do in a dry run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Purged {
    /// Recordings deleted (counted, in a dry run).
    pub purged: u64,
    /// Due, kept under a legal hold.
    pub held: u64,
    /// Past their class, kept as consent evidence.
    pub kept_for_consent: u64,
    /// Due ones left by the limit.
    pub more: bool,
}

/// A signed tree head's size and root, as the operator checks them.
pub type Head = (u64, guardline_audit_log::merkle::Hash);

/// What a retention run calls: each service's own retention, which keeps
/// its legal floors and holds whatever the operator asks.
pub trait RetentionMesh: Tenants {
    /// Writes the periods into audit, the lead vault and recordings.
    fn write_periods(&self, tenant: &str, p: Periods) -> impl Future<Output = Result<(), MeshError>> + Send;
    /// Recordings' `PurgeExpired`, at most `limit` deletions.
    fn purge_recordings(
        &self,
        tenant: &str,
        limit: u32,
        dry_run: bool,
    ) -> impl Future<Output = Result<Purged, MeshError>> + Send;
    /// The lead vault's `PruneConsent`, at most `limit`; (pruned, more).
    fn prune_consent(
        &self,
        tenant: &str,
        limit: u32,
        dry_run: bool,
    ) -> impl Future<Output = Result<(u64, bool), MeshError>> + Send;
    /// Audit's current signed tree head.
    fn audit_head(&self, tenant: &str) -> impl Future<Output = Result<Head, MeshError>> + Send;
    /// Audit's consistency proof between two sizes.
    fn audit_consistency(
        &self,
        tenant: &str,
        first: u64,
        second: u64,
    ) -> impl Future<Output = Result<Vec<guardline_audit_log::merkle::Hash>, MeshError>> + Send;
    /// Audit's `Prune` at the tenant's retention; entries pruned.
    fn prune_audit(&self, tenant: &str, dry_run: bool) -> impl Future<Output = Result<u64, MeshError>> + Send;
    /// Erasure cases past their deadline.
    fn overdue_erasures(&self, tenant: &str) -> impl Future<Output = Result<u64, MeshError>> + Send;
    /// Tells audit that `count` erasure cases are overdue (which raises an
    /// `erasure_overdue` alert) at `at`; `id` makes a repeated report one event.
    fn report_overdue(
        &self,
        tenant: &str,
        count: u64,
        id: &str,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), MeshError>> + Send;
}

/// The real mesh: Vault and the two services.
#[derive(Clone)]
pub struct Mesh {
    /// Vault, as the operator's policy allows.
    pub keys: Arc<dyn KeyProvider>,
    /// Identity, as `operator`.
    pub identity: IdentityServiceClient<GrpcChannel>,
    /// The lead vault, as `operator`.
    pub vault: LeadVaultServiceClient<GrpcChannel>,
    /// Recordings, as `operator`.
    pub recordings: RecordingsServiceClient<GrpcChannel>,
    /// Audit, as `operator`.
    pub audit: AuditServiceClient<GrpcChannel>,
}

impl std::fmt::Debug for Mesh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mesh").finish_non_exhaustive()
    }
}

fn rewrap_of(s: &vpb::KeyStatus) -> Rewrap {
    Rewrap { done: s.rewrapped, total: s.total, running: s.in_progress }
}

impl Tenants for Mesh {
    async fn list_tenants(&self) -> Result<Vec<String>, MeshError> {
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let req = idpb::ListTenantsRequest { page: Some(PageRequest { page_size: 1000, page_token: token }) };
            let page = self.identity.clone().list_tenants(req).await.map_err(service("identity"))?.into_inner();
            out.extend(page.tenants.into_iter().map(|t| t.id));
            token = page.page.map(|p| p.next_page_token).unwrap_or_default();
            if token.is_empty() {
                return Ok(out);
            }
        }
    }
}

impl KeyMesh for Mesh {
    async fn observe(&self, tenant: &str, now: DateTime<Utc>) -> Result<(Observed, Rewrap), MeshError> {
        let v = self.keys.versions(tenant).await?;
        // A key store that keeps no creation time rotates on request only.
        let created = v.latest_created.and_then(|t| DateTime::from_timestamp(t as i64, 0)).unwrap_or(now);
        let req = vpb::GetKeyStatusRequest { tenant_id: tenant.into() };
        let status = self.vault.clone().get_key_status(req).await.map_err(service("lead-vault"))?.into_inner();
        let rewrap = rewrap_of(&status);
        let observed = Observed {
            latest_version: v.latest,
            latest_created: created,
            min_decryption_version: v.min_decryption,
            data_key_rewrap_running: rewrap.running,
        };
        Ok((observed, rewrap))
    }

    async fn rotate_tenant_key(&self, tenant: &str) -> Result<u64, MeshError> {
        Ok(self.keys.rotate(tenant).await?)
    }

    async fn rewrap(&self, tenant: &str) -> Result<(u64, u64, u64), MeshError> {
        let req = vpb::RewrapTenantKeysRequest { tenant_id: tenant.into() };
        let v = self.vault.clone().rewrap_tenant_keys(req).await.map_err(service("lead-vault"))?.into_inner();
        let req = rpb::RewrapTenantKeysRequest { tenant_id: tenant.into() };
        let r = self.recordings.clone().rewrap_tenant_keys(req).await.map_err(service("recordings"))?.into_inner();
        Ok((u64::from(v.tenant_key_version), v.rewrapped, r.rewrapped))
    }

    async fn rotate_data_key(&self, tenant: &str) -> Result<Rewrap, MeshError> {
        let req = vpb::RotateDataKeyRequest { tenant_id: tenant.into() };
        let s = self.vault.clone().rotate_data_key(req).await.map_err(service("lead-vault"))?.into_inner();
        Ok(rewrap_of(&s))
    }

    async fn raise_minimum(&self, tenant: &str, to: u64) -> Result<(), MeshError> {
        Ok(self.keys.set_min_decryption_version(tenant, to).await?)
    }

    async fn trim(&self, tenant: &str, to: u64) -> Result<(), MeshError> {
        Ok(self.keys.trim(tenant, to).await?)
    }
}

fn hash_of(bytes: &[u8]) -> Result<guardline_audit_log::merkle::Hash, MeshError> {
    bytes.try_into().map_err(|_| MeshError::Service {
        service: "audit",
        code: tonic::Code::DataLoss,
        message: format!("a hash of {} bytes, not 32", bytes.len()),
    })
}

impl RetentionMesh for Mesh {
    async fn write_periods(&self, tenant: &str, p: Periods) -> Result<(), MeshError> {
        let req = apb::SetRetentionRequest { tenant_id: tenant.into(), retention_days: p.audit_days };
        self.audit.clone().set_retention(req).await.map_err(service("audit"))?;
        let req = vpb::UpdateVaultSettingsRequest {
            tenant_id: tenant.into(),
            erasure_deadline_days: None,
            consent_retention_days: Some(p.consent_days),
        };
        self.vault.clone().update_vault_settings(req).await.map_err(service("lead-vault"))?;
        // Recordings stored from now on get the period; stored ones keep their dates.
        let class = rpb::RetentionClass {
            tenant_id: tenant.into(),
            name: "default".into(),
            min_days: p.recordings_days,
            delete_after_days: p.recordings_days,
        };
        let req = rpb::SetRetentionClassRequest { class: Some(class) };
        self.recordings.clone().set_retention_class(req).await.map_err(service("recordings"))?;
        Ok(())
    }

    async fn purge_recordings(&self, tenant: &str, limit: u32, dry_run: bool) -> Result<Purged, MeshError> {
        let req = rpb::PurgeExpiredRequest { tenant_id: tenant.into(), as_of: None, limit, dry_run };
        let r = self.recordings.clone().purge_expired(req).await.map_err(service("recordings"))?.into_inner();
        Ok(Purged { purged: r.purged, held: r.held, kept_for_consent: r.kept_for_consent, more: r.more })
    }

    async fn prune_consent(&self, tenant: &str, limit: u32, dry_run: bool) -> Result<(u64, bool), MeshError> {
        let req = vpb::PruneConsentRequest { tenant_id: tenant.into(), limit, dry_run };
        let r = self.vault.clone().prune_consent(req).await.map_err(service("lead-vault"))?.into_inner();
        Ok((r.pruned, r.more))
    }

    async fn audit_head(&self, tenant: &str) -> Result<Head, MeshError> {
        let req = apb::GetSignedTreeHeadRequest { tenant_id: tenant.into() };
        let h = self.audit.clone().get_signed_tree_head(req).await.map_err(service("audit"))?.into_inner();
        Ok((h.tree_size, hash_of(&h.root_hash)?))
    }

    async fn audit_consistency(
        &self,
        tenant: &str,
        first: u64,
        second: u64,
    ) -> Result<Vec<guardline_audit_log::merkle::Hash>, MeshError> {
        let req = apb::GetConsistencyProofRequest { tenant_id: tenant.into(), first_size: first, second_size: second };
        let p = self.audit.clone().get_consistency_proof(req).await.map_err(service("audit"))?.into_inner();
        p.path.iter().map(|h| hash_of(h)).collect()
    }

    async fn prune_audit(&self, tenant: &str, dry_run: bool) -> Result<u64, MeshError> {
        let req = apb::PruneRequest { tenant_id: tenant.into(), as_of: None, dry_run };
        Ok(self.audit.clone().prune(req).await.map_err(service("audit"))?.into_inner().pruned)
    }

    async fn overdue_erasures(&self, tenant: &str) -> Result<u64, MeshError> {
        let req = vpb::ListErasureCasesRequest { tenant_id: tenant.into(), state: 0, overdue_only: true };
        let r = self.vault.clone().list_erasure_cases(req).await.map_err(service("lead-vault"))?.into_inner();
        Ok(r.cases.len() as u64)
    }

    async fn report_overdue(&self, tenant: &str, count: u64, id: &str, at: DateTime<Utc>) -> Result<(), MeshError> {
        use guardline_proto::common::v1::Outcome;
        let event = apb::AuditEvent {
            id: id.into(),
            tenant_id: tenant.into(),
            time: Some(prost_types::Timestamp { seconds: at.timestamp(), nanos: 0 }),
            actor: Some(apb::Actor { service_identity: "operator".into(), ..Default::default() }),
            action: "erasure.overdue".into(),
            resource: Some(apb::ResourceRef { r#type: "tenant".into(), id: tenant.into() }),
            outcome: Outcome::Allowed as i32,
            details: [("count".to_owned(), count.to_string())].into(),
            ..Default::default()
        };
        let req = apb::AppendRequest { events: vec![event] };
        self.audit.clone().append(req).await.map_err(service("audit"))?;
        Ok(())
    }
}

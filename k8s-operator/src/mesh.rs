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

/// What a rotation calls, one method per idempotent step.
pub trait KeyMesh: Send + Sync {
    /// Every tenant's id, from identity (`ListTenants`, open to the operator).
    fn list_tenants(&self) -> impl Future<Output = Result<Vec<String>, MeshError>> + Send;
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
}

impl std::fmt::Debug for Mesh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mesh").finish_non_exhaustive()
    }
}

fn rewrap_of(s: &vpb::KeyStatus) -> Rewrap {
    Rewrap { done: s.rewrapped, total: s.total, running: s.in_progress }
}

impl KeyMesh for Mesh {
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

//! The mesh the operator's tests drive: identity, audit, the lead vault and
//! recordings on PostgreSQL and OpenBao, and the operator's view of it; and
//! the mocked Kubernetes API (`api`). Each test binary uses part of it.
#![allow(dead_code)]

pub mod api;

use guardline_operator::mesh::Mesh;
use guardline_proto::audit::v1::audit_service_client::AuditServiceClient;
use guardline_proto::identity::v1::identity_service_client::IdentityServiceClient;
use guardline_proto::recordings::v1::recordings_service_client::RecordingsServiceClient;
use guardline_proto::vault::v1::lead_vault_service_client::LeadVaultServiceClient;
use guardline_testmesh::{Keys, TestMesh};

/// The services a rotation touches, started and serving.
pub async fn start() -> TestMesh {
    start_on(TestMesh::new(true, Keys::OpenBao, |_| {}).await).await
}

/// The services of `t`, started and serving.
pub async fn start_on(mut t: TestMesh) -> TestMesh {
    t.start_identity(t.identity_args()).await;
    t.start_audit(t.audit_args()).await;
    t.start_vault(t.vault_args()).await;
    t.start_recordings(t.recordings_args()).await;
    t.wait_serving("platform-admin").await;
    t
}

/// The operator's view of the mesh: OpenBao with the services' transit
/// mount, and the services as `operator`. A new one is a restarted operator.
pub async fn operator(t: &TestMesh) -> Mesh {
    Mesh {
        keys: t.keys().provider(false).await.expect("openbao"),
        identity: IdentityServiceClient::new(t.channel("identity", "operator")),
        vault: LeadVaultServiceClient::new(t.channel("lead-vault", "operator")),
        recordings: RecordingsServiceClient::new(t.channel("recordings", "operator")),
        audit: AuditServiceClient::new(t.channel("audit", "operator")),
    }
}

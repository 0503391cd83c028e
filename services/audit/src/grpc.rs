//! The gRPC face of audit: validates, converts proto to domain and back, and
//! calls the domain. Until the service's own issue lands, every RPC answers
//! UNIMPLEMENTED (the generated default); health and reflection serve.

use guardline_proto::audit::v1::audit_service_server::{AuditService, AuditServiceServer};
use guardline_runtime::args::MeshArgs;
use guardline_runtime::authz::AllowList;

/// The API.
#[derive(Debug, Default)]
pub struct Api;

#[tonic::async_trait]
impl AuditService for Api {}

/// The generated server with the message size limits applied.
pub fn server(api: Api, max_message_bytes: usize) -> AuditServiceServer<Api> {
    AuditServiceServer::new(api)
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes)
}

/// Which service identities may call which RPC.
pub fn allow_list(mesh: &MeshArgs) -> AllowList {
    AllowList::new().allow(
        "/guardline.audit.v1.AuditService/Append",
        [
            mesh.identity_of("identity"),
            mesh.identity_of("lead-vault"),
            mesh.identity_of("dialer-policy"),
            mesh.identity_of("recordings"),
        ],
    )
}

//! The gRPC face of identity: validates, converts proto to domain and back, and
//! calls the domain. Until the service's own issue lands, every RPC answers
//! UNIMPLEMENTED (the generated default); health and reflection serve.

use guardline_proto::identity::v1::identity_service_server::{IdentityService, IdentityServiceServer};
use guardline_runtime::args::MeshArgs;
use guardline_runtime::authz::AllowList;

/// The API.
#[derive(Debug, Default)]
pub struct Api;

#[tonic::async_trait]
impl IdentityService for Api {}

/// The generated server with the message size limits applied.
pub fn server(api: Api, max_message_bytes: usize) -> IdentityServiceServer<Api> {
    IdentityServiceServer::new(api)
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes)
}

/// Which service identities may call which RPC.
pub fn allow_list(_mesh: &MeshArgs) -> AllowList {
    AllowList::new()
}

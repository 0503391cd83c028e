//! The gRPC face of lead-vault: validates, converts proto to domain and back, and
//! calls the domain. Until the service's own issue lands, every RPC answers
//! UNIMPLEMENTED (the generated default); health and reflection serve.

use guardline_proto::vault::v1::lead_vault_service_server::{LeadVaultService, LeadVaultServiceServer};
use guardline_runtime::args::MeshArgs;
use guardline_runtime::authz::AllowList;

/// The API. Holds what the domain RPCs will need.
#[derive(Debug)]
pub struct Api {
    // Read by the RPCs the service's own issue adds; built now so that a bad
    // key configuration fails at start-up, not at the first request.
    #[expect(dead_code, reason = "the domain RPCs of this service land in its own issue")]
    pub(crate) envelope: std::sync::Arc<guardline_keys::Envelope>,
}

#[tonic::async_trait]
impl LeadVaultService for Api {}

/// The generated server with the message size limits applied.
pub fn server(api: Api, max_message_bytes: usize) -> LeadVaultServiceServer<Api> {
    LeadVaultServiceServer::new(api)
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes)
}

/// Which service identities may call which RPC.
pub fn allow_list(mesh: &MeshArgs) -> AllowList {
    AllowList::new()
        .allow("/guardline.vault.v1.LeadVaultService/CheckConsent", [mesh.identity_of("dialer-policy")])
        .allow("/guardline.vault.v1.LeadVaultService/GetDialTarget", [mesh.identity_of("dialer-policy")])
}

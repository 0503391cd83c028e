//! The gRPC face of recordings: validates, converts proto to domain and back, and
//! calls the domain. Until the service's own issue lands, every RPC answers
//! UNIMPLEMENTED (the generated default); health and reflection serve.

use guardline_proto::recordings::v1::recordings_service_server::{RecordingsService, RecordingsServiceServer};
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
impl RecordingsService for Api {}

/// The generated server with the message size limits applied.
pub fn server(api: Api, max_message_bytes: usize) -> RecordingsServiceServer<Api> {
    RecordingsServiceServer::new(api)
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes)
}

/// Which service identities may call which RPC.
pub fn allow_list(mesh: &MeshArgs) -> AllowList {
    AllowList::new().allow(
        "/guardline.recordings.v1.RecordingsService/EraseLeadRecordings",
        [mesh.identity_of("lead-vault"), mesh.identity_of("operator")],
    )
}

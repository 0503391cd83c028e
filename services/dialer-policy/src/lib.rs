//! The dialer policy: one explained pre-dial decision (do-not-call lists,
//! consent, calling windows, frequency caps, line health) and AXB privacy
//! numbers. It never hands an agent a callee's real number.

pub mod args;
pub mod domain;
pub mod grpc;
pub mod store;

use guardline_runtime::server::GrpcServer;
use guardline_service::Base;
use tokio_util::sync::CancellationToken;

pub use args::Args;

/// The service's name: its certificate name, health entry and log field.
pub const NAME: &str = "dialer-policy";

/// Runs the service until `shutdown` fires, on `listener` if given (tests,
/// `guardline up`) or else on `--listen`.
pub async fn run(
    args: Args,
    listener: Option<tokio::net::TcpListener>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let Args { common } = args;
    let base = Base::start::<store::Migrator>(&common, true, &shutdown).await?;
    let api = grpc::Api;
    let server = GrpcServer::new(NAME)
        .add_service(grpc::server(api, common.server.max_message_bytes))
        .allow_list(grpc::allow_list(&common.mesh));
    guardline_service::serve(server, &base, &common, listener, shutdown).await
}

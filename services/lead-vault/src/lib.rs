//! The lead vault: customer leads encrypted per tenant (envelope encryption),
//! masked by role, revealed only with a reason and a synchronous audit event,
//! exported under quota, with the consent ledger and erasure by
//! crypto-shredding. It never returns or logs a clear value outside
//! `RevealField` and a clear export.

pub mod args;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod service;
pub mod store;

use guardline_runtime::server::GrpcServer;
use guardline_service::Base;
use tokio_util::sync::CancellationToken;

pub use args::Args;

/// The service's name: its certificate name, health entry and log field.
pub const NAME: &str = "lead-vault";

/// Runs the service until `shutdown` fires, on `listener` if given (tests,
/// `guardline up`) or else on `--listen`.
pub async fn run(
    args: Args,
    listener: Option<tokio::net::TcpListener>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let Args { common, keys, reveal_quota, export_quota, lookup_rate } = args;
    let base = Base::start::<store::Migrator>(&common, true, &shutdown).await?;
    let envelope = base.envelope(&keys).await?;
    let mut vault = service::Vault::new(store::Store::new(base.audited()), envelope, base.audit.clone());
    vault.reveal_quota = reveal_quota;
    vault.export_quota = export_quota;
    vault.lookups = guardline_runtime::ratelimit::Budget::per_second(lookup_rate);
    vault.set_clock(common.clock.clone());
    let recordings = guardline_runtime::connect(&common.mesh.recordings_endpoint, base.tls.clone())?;
    vault.recordings = Some(std::sync::Arc::new(grpc::RecordingsClient::new(recordings)));
    let vault = std::sync::Arc::new(vault);
    // Rotations left running by a restart, or by a replica that died,
    // are taken up here under their lease, now and every minute.
    let resuming = vault.clone();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        loop {
            match resuming.resume_rotations().await {
                Ok(0) => {}
                Ok(resumed) => tracing::info!(resumed, "resuming data key rotations"),
                Err(e) => tracing::error!(error = %e, "looking for rotations to resume failed"),
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(service::rotation::RESUME_EVERY) => {}
            }
        }
    });
    // Rows of the first record-MAC format move to the second in the
    // background; both verify until the move is done.
    let upgrading = vault.clone();
    tokio::spawn(async move {
        match upgrading.upgrade_macs().await {
            Ok((0, 0)) => {}
            Ok((moved, refused)) => tracing::info!(moved, refused, "lead record MACs moved to format 2"),
            Err(e) => tracing::error!(error = %e, "lead record MAC upgrade failed; format 1 still verifies"),
        }
    });
    let verifier = base.verifier(&common)?;
    let audit = guardline_runtime::connect(&common.mesh.audit_endpoint, base.tls.clone())?;
    let api = grpc::Api::new(vault, verifier.clone(), audit);
    let server = GrpcServer::new(NAME)
        .add_service(grpc::server(api, common.server.max_message_bytes))
        .allow_list(grpc::allow_list(&common.mesh))
        .tokens(verifier);
    guardline_service::serve(server, &base, &common, listener, shutdown).await
}

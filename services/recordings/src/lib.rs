//! Recordings: call audio encrypted per recording in a STREAM construction,
//! stored through object_store, with retention classes, legal hold and
//! erasure. It never stores or logs audio in clear.

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
pub const NAME: &str = "recordings";

/// Runs the service until `shutdown` fires, on `listener` if given (tests,
/// `guardline up`) or else on `--listen`.
pub async fn run(
    args: Args,
    listener: Option<tokio::net::TcpListener>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let Args { common, keys, objects, upload_idle_timeout } = args;
    let base = Base::start::<store::Migrator>(&common, true, &shutdown).await?;
    let envelope = base.envelope(&keys).await?;
    let store = store::Store::new(base.audited());
    let mut recordings = service::Recordings::new(store, envelope, objects.build()?);
    if objects.s3_bucket.is_none()
        && let Some(dir) = &objects.recordings_dir
    {
        recordings = recordings.with_local_root(dir.clone());
    }
    let recordings = recordings.with_idle_timeout(upload_idle_timeout).with_clock(common.clock.clone());
    let recordings = std::sync::Arc::new(recordings);
    recordings.heartbeat().await?;
    recordings.sweep(true).await?;
    // Liveness: this replica's uploads are safe while it renews its lease;
    // those of a replica that died are swept once its lease runs out.
    let alive = recordings.clone();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(service::HEARTBEAT) => {}
            }
            if let Err(e) = alive.heartbeat().await {
                tracing::error!(error = %e, "renewing the liveness lease failed");
            }
            if let Err(e) = alive.sweep(false).await {
                tracing::error!(error = %e, "sweeping dead uploads failed");
            }
        }
    });
    // Rows stored before the metadata MAC get one in the background.
    let upgrading = recordings.clone();
    tokio::spawn(async move {
        match upgrading.upgrade_macs().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(recordings = n, "recording metadata MACed"),
            Err(e) => tracing::error!(error = %e, "recording MAC upgrade failed; rows without a MAC still pass"),
        }
    });
    let verifier = base.verifier(&common)?;
    let api = grpc::Api::new(recordings, verifier.clone());
    let server = GrpcServer::new(NAME)
        .add_service(grpc::server(api, common.server.max_message_bytes))
        .allow_list(grpc::allow_list(&common.mesh))
        .tokens(verifier);
    guardline_service::serve(server, &base, &common, listener, shutdown).await
}

//! The dialer policy: one explained pre-dial decision (do-not-call lists,
//! consent, calling windows, frequency caps, line health) and AXB privacy
//! numbers. It never hands an agent a callee's real number.

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
pub const NAME: &str = "dialer-policy";

/// Runs the service until `shutdown` fires, on `listener` if given (tests,
/// `guardline up`) or else on `--listen`.
pub async fn run(
    args: Args,
    listener: Option<tokio::net::TcpListener>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let Args { common, packs_dir, registry_dir, registry_admins, service_clients } = args;
    let mut trusted = service_clients;
    trusted.extend(registry_admins.iter().cloned());
    let packs = domain::window::Packs::load(packs_dir.as_deref())?;
    let base = Base::start::<store::Migrator>(&common, true, &shutdown).await?;
    let store = base.audited();
    let registry = service::registry::Registry::load(&store, registry_dir).await?;
    for (region, date, numbers, bytes) in registry.status() {
        tracing::info!(%region, %date, numbers, bytes, "national registry copy loaded");
    }
    // A copy imported through another replica is loaded here within REFRESH.
    let (watching, watched, stop) = (registry.clone(), store.clone(), shutdown.clone());
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(service::registry::REFRESH) => {}
            }
            match watching.refresh(&watched).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(copies = n, "national registry copies loaded from another replica's import"),
                Err(e) => tracing::error!(error = %e, "looking for new national registry copies failed"),
            }
        }
    });
    let vault = guardline_runtime::connect(&common.mesh.lead_vault_endpoint, base.tls.clone())?;
    let dialer = service::Dialer::new(
        store,
        packs,
        registry,
        std::sync::Arc::new(grpc::VaultClient::new(vault)),
        registry_admins,
    )
    .with_clock(common.clock.clone());
    let verifier = base.verifier(&common)?;
    let api = grpc::Api::new(std::sync::Arc::new(dialer), verifier.clone(), trusted);
    let server = GrpcServer::new(NAME)
        .add_service(grpc::server(api, common.server.max_message_bytes))
        .allow_list(grpc::allow_list(&common.mesh))
        .tokens(verifier);
    guardline_service::serve(server, &base, &common, listener, shutdown).await
}

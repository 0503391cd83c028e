//! The audit service: an RFC 9162 Merkle log per tenant of every data
//! operation, with signed tree heads, proofs, verifiable exports and anomaly
//! alerts. It accepts events only from the mesh's services and never lets
//! history change undetected.

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
pub const NAME: &str = "audit";

/// How often webhook deliveries and delivery gaps are checked.
pub const ALERT_TICK: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs the service until `shutdown` fires, on `listener` if given (tests,
/// `guardline up`) or else on `--listen`.
pub async fn run(
    args: Args,
    listener: Option<tokio::net::TcpListener>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let Args {
        common,
        keys,
        webhook_allow,
        webhook_allow_http,
        trusted_keys,
        pin_file,
        checkpoint_url,
        checkpoint_interval,
    } = args;
    let pins = match trusted_keys.is_empty() {
        true => None,
        false => Some(domain::pin::Pins::parse(&trusted_keys).map_err(|e| anyhow::anyhow!("--trusted-keys: {e}"))?),
    };
    let base = Base::start::<store::Migrator>(&common, false, &shutdown).await?;
    let envelope = base.envelope(&keys).await?;
    let store = store::log::Store::new(base.db.clone());
    let log = service::Log::open_on(store.clone(), envelope.clone(), common.clock.clone(), pins).await?;
    if let Some(path) = pin_file {
        let text = domain::pin::Pins::of(log.public_keys().values()).to_text();
        std::fs::write(&path, text).map_err(|e| anyhow::anyhow!("--pin-file {}: {e}", path.display()))?;
    }
    let log = std::sync::Arc::new(log);
    if let Some(url) = checkpoint_url {
        let (objects, prefix) = service::checkpoints::store_of(&url)?;
        let publisher = service::checkpoints::Publisher::new(log.clone(), objects, prefix, &common.mesh.trust_domain);
        tokio::spawn(publisher.run(checkpoint_interval, shutdown.clone()));
    }
    let identity = guardline_runtime::connect(&common.mesh.identity_endpoint, base.tls.clone())?;
    let verifier = base.verifier(&common)?;
    let hours: std::sync::Arc<dyn service::alerting::WorkingHours> =
        std::sync::Arc::new(grpc::IdentityHours::new(identity));
    let alerting = std::sync::Arc::new(
        service::alerting::Alerting::new(store, envelope, Some(hours))?
            .with_clock(common.clock.clone())
            .with_egress(crate::domain::egress::Egress { allow: webhook_allow, allow_http: webhook_allow_http })?,
    );
    tokio::spawn(alerting.clone().run(ALERT_TICK, shutdown.clone()));
    let api = grpc::Api::new(log, alerting, verifier.clone());
    let server = GrpcServer::new(NAME)
        .add_service(grpc::server(api, common.server.max_message_bytes))
        .allow_list(grpc::allow_list(&common.mesh))
        .tokens(verifier);
    guardline_service::serve(server, &base, &common, listener, shutdown).await
}

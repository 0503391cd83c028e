//! The identity service: the source of truth for who may do what inside a
//! tenant. It owns tenants, users, teams, roles as data, login with signed
//! short-lived access tokens, authorization decisions and unusual-login
//! detection. It never stores a password or refresh token in clear and
//! never holds customer data.

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
pub const NAME: &str = "identity";

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
        platform_admins,
        trusted_gateways,
        access_token_ttl,
        refresh_token_ttl,
        signing_key_rotation,
    } = args;
    anyhow::ensure!(access_token_ttl <= guardline_runtime::token::MAX_LIFETIME, "--access-token-ttl: at most 15m");
    let base = Base::start::<store::Migrator>(&common, true, &shutdown).await?;
    let envelope = base.envelope(&keys).await?;
    let store = base.audited();
    let signers =
        service::keys::Signers::load_on(store.clone(), envelope.clone(), signing_key_rotation, common.clock.clone())
            .await?;
    let config = service::Config { access_ttl: access_token_ttl, refresh_ttl: refresh_token_ttl, ..Default::default() };
    let mut identity = service::Identity::new(store, envelope, signers, config).with_clock(common.clock.clone());
    // Reads tenants' settings without a user token: audit, for working hours.
    identity.tenant_readers = vec![common.mesh.identity_of("audit").to_string()];
    identity.tenant_listers = vec![common.mesh.identity_of("operator").to_string()];
    let identity = std::sync::Arc::new(identity);
    let verifier = identity.verifier();
    let admins = platform_admins.iter().map(|n| common.mesh.identity_of(n)).collect();
    let gateways = trusted_gateways.iter().map(|n| common.mesh.identity_of(n)).collect();
    let api = grpc::Api::new(identity, admins).with_gateways(gateways);
    let server = GrpcServer::new(NAME)
        .add_service(grpc::server(api, common.server.max_message_bytes))
        .allow_list(grpc::allow_list(&common.mesh))
        .tokens(verifier);
    guardline_service::serve(server, &base, &common, listener, shutdown).await
}

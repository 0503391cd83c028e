//! What every Guardline binary shares: mTLS with certificate reload and peer
//! identities, the dev CA, configuration groups, telemetry, server assembly,
//! the one error-to-status mapping, access-token verification, and opening
//! the database.
//!
//! It never holds domain rules: those live in the services.

pub mod args;
pub mod authz;
pub mod clock;
pub mod devca;
pub mod error;
pub mod layers;
pub mod lease;
pub mod metrics;
pub mod peer;
pub mod ratelimit;
pub mod server;
pub mod shutdown;
pub mod storage;
pub mod telemetry;
pub mod tls;
pub mod token;
pub mod transport;

pub use error::{Error, Result};

/// The channel type every client uses: mTLS, with trace-context propagation.
pub type GrpcChannel = layers::ClientTrace<tonic::transport::Channel>;

/// A lazily connecting mTLS channel with trace propagation to `uri`.
pub fn connect(uri: &str, tls: std::sync::Arc<tls::TlsMaterial>) -> Result<GrpcChannel> {
    Ok(tower::Layer::layer(&layers::ClientTraceLayer, transport::channel(uri, tls)?))
}

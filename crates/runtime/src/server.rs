//! Server assembly shared by every service: mTLS transport, gRPC health and
//! reflection, tracing, load shedding, the service allow-list, request
//! timeouts, rate limits per user, tenant and service identity, and a
//! graceful drain on shutdown; optionally a plaintext health-only listener
//! for kubelet's probes.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::service::RoutesBuilder;
use tonic::transport::Server;
use tonic_health::ServingStatus;

use crate::args::ServerArgs;
use crate::authz::{AllowList, AllowListLayer};
use crate::error::{Error, Result};
use crate::layers::{RpcMetricsLayer, ServerTraceLayer, ShedLayer};
use crate::ratelimit::RateLimitLayer;
use crate::tls::TlsMaterial;
use crate::token::TokenVerifier;

/// A gRPC server under construction.
pub struct GrpcServer {
    name: String,
    routes: RoutesBuilder,
    services: Vec<&'static str>,
    allow: AllowList,
    health_listener: Option<TcpListener>,
    verifier: Option<Arc<TokenVerifier>>,
}

impl std::fmt::Debug for GrpcServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcServer").field("name", &self.name).field("services", &self.services).finish_non_exhaustive()
    }
}

impl GrpcServer {
    /// A server named `name` (used in logs).
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            routes: RoutesBuilder::default(),
            services: Vec::new(),
            allow: AllowList::new(),
            health_listener: None,
            verifier: None,
        }
    }

    /// Adds a generated tonic service; its health is reported SERVING while the server runs.
    pub fn add_service<S>(mut self, svc: S) -> Self
    where
        S: tower::Service<http::Request<Body>, Error = Infallible, Response = http::Response<Body>>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.services.push(S::NAME);
        self.routes.add_service(svc);
        self
    }

    /// Serves plaintext gRPC health, and nothing else, on `listener` (else
    /// on `--health-listen`, when set).
    pub fn health_on(mut self, listener: TcpListener) -> Self {
        self.health_listener = Some(listener);
        self
    }

    /// Restricts RPCs to service identities.
    pub fn allow_list(mut self, allow: AllowList) -> Self {
        self.allow = allow;
        self
    }

    /// Verifies user tokens with `verifier` (the handlers' own), so that
    /// rate limits count per user and tenant; without it every request
    /// counts against its peer's service identity.
    pub fn tokens(mut self, verifier: Arc<TokenVerifier>) -> Self {
        self.verifier = Some(verifier);
        self
    }

    /// Serves on `listener` until `shutdown` fires, then reports NOT_SERVING,
    /// stops accepting, and lets in-flight requests finish within the drain timeout.
    pub async fn serve(
        self,
        listener: TcpListener,
        tls: Arc<TlsMaterial>,
        args: &ServerArgs,
        shutdown: CancellationToken,
    ) -> Result<()> {
        let Self { name, mut routes, services, allow, health_listener, verifier } = self;
        let health_listener = match (health_listener, args.health_listen) {
            (Some(l), _) => Some(l),
            (None, Some(addr)) => Some(bind_as("--health-listen", addr).await?),
            (None, None) => None,
        };
        // Health and reflection answer every mesh peer.
        let allow = allow
            .mesh_service("grpc.health.v1.Health")
            .mesh_service("grpc.reflection.v1.ServerReflection")
            .mesh_service("grpc.reflection.v1alpha.ServerReflection");
        let addr = listener.local_addr()?;
        let (reporter, health) = tonic_health::server::health_reporter();
        report(&reporter, &services, ServingStatus::Serving).await;
        let (v1, v1alpha) = reflection()?;
        let _probes = health_listener.map(|l| probes(&name, l, health.clone())).transpose()?;
        routes.add_service(health).add_service(v1).add_service(v1alpha);

        let accept_stop = CancellationToken::new();
        let incoming = crate::transport::tls_incoming(listener, tls, accept_stop.clone());
        let layers = tower::ServiceBuilder::new()
            .layer(ServerTraceLayer)
            .layer(RpcMetricsLayer::default())
            .layer(ShedLayer::new(args.max_in_flight))
            .layer(AllowListLayer::new(allow))
            .layer(RateLimitLayer::new(args.rates(), verifier))
            .into_inner();
        let signal = {
            let shutdown = shutdown.clone();
            async move {
                shutdown.cancelled().await;
                report(&reporter, &services, ServingStatus::NotServing).await;
                accept_stop.cancel();
            }
        };
        tracing::info!(server = %name, %addr, "serving");
        let serve = Server::builder()
            .timeout(args.request_timeout)
            .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
            .layer(layers)
            .add_routes(routes.routes())
            .serve_with_incoming_shutdown(incoming, signal);
        let drain_deadline = async {
            shutdown.cancelled().await;
            tokio::time::sleep(args.drain_timeout).await;
        };
        tokio::select! {
            res = serve => res.map_err(|e| Error::Internal(format!("server {name}: {e}")))?,
            () = drain_deadline => tracing::warn!(server = %name, "drain timeout reached, closing remaining connections"),
        }
        tracing::info!(server = %name, "stopped");
        Ok(())
    }
}

/// Every service's health, and the server's (""), to `status`.
async fn report(reporter: &tonic_health::server::HealthReporter, services: &[&'static str], status: ServingStatus) {
    for s in services {
        reporter.set_service_status(*s, status).await;
    }
    reporter.set_service_status("", status).await;
}

/// Reflection in both versions: grpcurl's older releases, grpc_cli,
/// Python's grpcio-reflection and several GUI clients speak only v1alpha.
fn reflection() -> Result<(
    tonic_reflection::server::v1::ServerReflectionServer<impl tonic_reflection::server::v1::ServerReflection>,
    tonic_reflection::server::v1alpha::ServerReflectionServer<impl tonic_reflection::server::v1alpha::ServerReflection>,
)> {
    let builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(guardline_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let v1 = builder().build_v1().map_err(|e| Error::Internal(format!("reflection: {e}")))?;
    let v1alpha = builder().build_v1alpha().map_err(|e| Error::Internal(format!("reflection: {e}")))?;
    Ok((v1, v1alpha))
}

/// Binds `addr` (use port 0 for an ephemeral port).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    bind_as("--listen", addr).await
}

async fn bind_as(flag: &'static str, addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| Error::config(flag, format!("cannot bind {addr}: {e}")))
}

/// The probe listener: the same health state, no other service, no TLS;
/// it stops when the returned guard drops (when the main server ends).
fn probes<S>(name: &str, listener: TcpListener, health: S) -> Result<tokio_util::sync::DropGuard>
where
    S: tower::Service<http::Request<Body>, Error = Infallible, Response = http::Response<Body>>
        + NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let stop = CancellationToken::new();
    let cancelled = stop.clone();
    tracing::info!(server = %name, addr = %listener.local_addr()?, "serving health probes (plaintext, health only)");
    tokio::spawn(async move {
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let served =
            Server::builder().add_service(health).serve_with_incoming_shutdown(incoming, cancelled.cancelled_owned());
        if let Err(e) = served.await {
            tracing::error!(error = %e, "health probe listener stopped");
        }
    });
    Ok(stop.drop_guard())
}

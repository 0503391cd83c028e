//! Tower layers every server and client shares: process-wide load shedding,
//! W3C trace-context propagation through gRPC metadata, and RPC metrics.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use opentelemetry::propagation::{Extractor, Injector};
use tokio::sync::Semaphore;
use tonic::body::Body;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::peer::PeerInfo;

type BoxFut<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

/// Bounds the requests in flight across all connections of a server. A request
/// beyond the bound is answered RESOURCE_EXHAUSTED at once: never queued.
#[derive(Clone, Debug)]
pub struct ShedLayer {
    permits: Arc<Semaphore>,
}

impl ShedLayer {
    /// At most `max_in_flight` requests at a time.
    pub fn new(max_in_flight: usize) -> Self {
        Self { permits: Arc::new(Semaphore::new(max_in_flight.max(1))) }
    }
}

impl<S> tower::Layer<S> for ShedLayer {
    type Service = Shed<S>;
    fn layer(&self, inner: S) -> Shed<S> {
        Shed { inner, permits: self.permits.clone() }
    }
}

/// See [`ShedLayer`].
#[derive(Clone, Debug)]
pub struct Shed<S> {
    inner: S,
    permits: Arc<Semaphore>,
}

impl<S> tower::Service<http::Request<Body>> for Shed<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>> + Send,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFut<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            tracing::warn!(method = req.uri().path(), "overloaded, request shed");
            let status = tonic::Status::resource_exhausted("server overloaded, retry with backoff");
            return Box::pin(async move { Ok(status.into_http()) });
        };
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await;
            drop(permit);
            res
        })
    }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

struct HeaderInjector<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (http::HeaderName::from_bytes(key.as_bytes()), http::HeaderValue::from_str(&value)) {
            self.0.insert(k, v);
        }
    }
}

/// Server side: opens a span per request, parented on the caller's W3C
/// `traceparent` when present, carrying the method and the peer identity.
#[derive(Clone, Copy, Debug, Default)]
pub struct ServerTraceLayer;

impl<S> tower::Layer<S> for ServerTraceLayer {
    type Service = ServerTrace<S>;
    fn layer(&self, inner: S) -> ServerTrace<S> {
        ServerTrace { inner }
    }
}

/// See [`ServerTraceLayer`].
#[derive(Clone, Debug)]
pub struct ServerTrace<S> {
    inner: S,
}

impl<S> tower::Service<http::Request<Body>> for ServerTrace<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>> + Send,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFut<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(req.headers())));
        let peer = req.extensions().get::<PeerInfo>().and_then(|p| p.identity.as_ref()).map(ToString::to_string);
        let method = req.uri().path().to_owned();
        let span = tracing::info_span!(
            "grpc.server",
            otel.name = %method,
            otel.kind = "server",
            rpc.system = "grpc",
            peer.identity = peer.as_deref().unwrap_or(""),
        );
        let _ = span.set_parent(parent);
        // Work done inside `call` itself, not only in the future, belongs to the span.
        let fut = span.in_scope(|| self.inner.call(req));
        Box::pin(fut.instrument(span))
    }
}

/// Client side: writes the current span's context into `traceparent`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientTraceLayer;

impl<S> tower::Layer<S> for ClientTraceLayer {
    type Service = ClientTrace<S>;
    fn layer(&self, inner: S) -> ClientTrace<S> {
        ClientTrace { inner }
    }
}

/// See [`ClientTraceLayer`].
#[derive(Clone, Debug)]
pub struct ClientTrace<S> {
    inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for ClientTrace<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let cx = tracing::Span::current().context();
        opentelemetry::global::get_text_map_propagator(|p| {
            p.inject_context(&cx, &mut HeaderInjector(req.headers_mut()))
        });
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::sync::Notify;
    use tower::{Layer, Service, ServiceExt};

    use super::*;

    fn grpc_status(resp: &http::Response<Body>) -> Option<&str> {
        resp.headers().get("grpc-status").and_then(|v| v.to_str().ok())
    }

    #[tokio::test]
    async fn requests_beyond_the_bound_are_shed_not_queued() {
        let release = Arc::new(Notify::new());
        let r = release.clone();
        let inner = tower::service_fn(move |_req: http::Request<Body>| {
            let r = r.clone();
            async move {
                r.notified().await;
                Ok::<_, std::convert::Infallible>(http::Response::new(Body::default()))
            }
        });
        let mut svc = ShedLayer::new(1).layer(inner);
        let first = svc.ready().await.expect("ready").call(http::Request::new(Body::default()));
        let first = tokio::spawn(first);
        tokio::task::yield_now().await;

        let shed = svc.ready().await.expect("ready").call(http::Request::new(Body::default())).await.expect("response");
        assert_eq!(grpc_status(&shed), Some("8"), "RESOURCE_EXHAUSTED while the bound is taken");

        release.notify_one();
        let done = first.await.expect("join").expect("response");
        assert_eq!(grpc_status(&done), None, "the admitted request completed normally");
        let after = svc.ready().await.expect("ready").call(http::Request::new(Body::default()));
        let after = tokio::spawn(after);
        tokio::task::yield_now().await;
        release.notify_one();
        assert_eq!(grpc_status(&after.await.expect("join").expect("response")), None, "capacity is returned");
    }

    fn with_otel() -> tracing::subscriber::DefaultGuard {
        use opentelemetry::trace::TracerProvider as _;
        use tracing_subscriber::layer::SubscriberExt;
        opentelemetry::global::set_text_map_propagator(opentelemetry_sdk::propagation::TraceContextPropagator::new());
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber =
            tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::set_default(subscriber)
    }

    fn trace_id_of(span: &tracing::Span) -> String {
        use opentelemetry::trace::TraceContextExt;
        span.context().span().span_context().trace_id().to_string()
    }

    #[tokio::test]
    async fn the_client_sends_the_current_trace_as_traceparent() {
        let _otel = with_otel();
        let seen = Arc::new(std::sync::Mutex::new(None));
        let s = seen.clone();
        let inner = tower::service_fn(move |req: http::Request<()>| {
            *s.lock().expect("lock") = req.headers().get("traceparent").map(|v| v.to_str().expect("ascii").to_owned());
            std::future::ready(Ok::<_, std::convert::Infallible>(()))
        });
        let mut svc = ClientTraceLayer.layer(inner);
        let span = tracing::info_span!("caller");
        let trace_id = trace_id_of(&span);
        {
            let _entered = span.enter();
            svc.ready().await.expect("ready").call(http::Request::new(())).await.expect("call");
        }
        let header = seen.lock().expect("lock").clone().expect("traceparent sent");
        assert!(header.starts_with(&format!("00-{trace_id}-")), "{header} carries trace {trace_id}");
    }

    #[tokio::test]
    async fn the_server_continues_the_callers_trace() {
        let _otel = with_otel();
        let seen = Arc::new(std::sync::Mutex::new(String::new()));
        let s = seen.clone();
        let inner = tower::service_fn(move |_req: http::Request<Body>| {
            *s.lock().expect("lock") = trace_id_of(&tracing::Span::current());
            std::future::ready(Ok::<_, std::convert::Infallible>(http::Response::new(Body::default())))
        });
        let mut svc = ServerTraceLayer.layer(inner);
        let mut req = http::Request::new(Body::default());
        let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
        req.headers_mut()
            .insert("traceparent", format!("00-{caller_trace}-00f067aa0ba902b7-01").parse().expect("header"));
        svc.ready().await.expect("ready").call(req).await.expect("call");
        assert_eq!(*seen.lock().expect("lock"), caller_trace);
    }
}

/// The full paths of every RPC the mesh serves (from the proto descriptors),
/// plus health and reflection: the only values the `rpc.method` label takes,
/// so that a caller inventing paths cannot inflate the metrics.
fn known_methods() -> &'static std::collections::HashSet<String> {
    static KNOWN: std::sync::OnceLock<std::collections::HashSet<String>> = std::sync::OnceLock::new();
    KNOWN.get_or_init(|| {
        use prost::Message;
        let mut out: std::collections::HashSet<String> = [
            "/grpc.health.v1.Health/Check",
            "/grpc.health.v1.Health/Watch",
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        ]
        .map(String::from)
        .into();
        if let Ok(set) = prost_types::FileDescriptorSet::decode(guardline_proto::FILE_DESCRIPTOR_SET) {
            for f in set.file {
                for s in &f.service {
                    for m in &s.method {
                        out.insert(format!("/{}.{}/{}", f.package(), s.name(), m.name()));
                    }
                }
            }
        }
        out
    })
}

/// Server side: OpenTelemetry's RPC semantic conventions. One histogram,
/// `rpc.server.duration` (seconds, to the response's headers), labelled
/// `rpc.system`, `rpc.service`, `rpc.method` and `rpc.grpc.status_code`,
/// from which rate, errors and latency per method and code follow. The
/// code is the one the response opens with: a stream that fails after its
/// first message counts as OK.
#[derive(Clone, Debug)]
pub struct RpcMetricsLayer {
    duration: opentelemetry::metrics::Histogram<f64>,
}

impl Default for RpcMetricsLayer {
    fn default() -> Self {
        let meter = opentelemetry::global::meter("guardline-rpc");
        let duration = meter
            .f64_histogram("rpc.server.duration")
            .with_unit("s")
            .with_description("Duration of inbound RPCs")
            .build();
        Self { duration }
    }
}

impl<S> tower::Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;
    fn layer(&self, inner: S) -> RpcMetrics<S> {
        RpcMetrics { inner, duration: self.duration.clone() }
    }
}

/// See [`RpcMetricsLayer`].
#[derive(Clone, Debug)]
pub struct RpcMetrics<S> {
    inner: S,
    duration: opentelemetry::metrics::Histogram<f64>,
}

impl<S> tower::Service<http::Request<Body>> for RpcMetrics<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>> + Send,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFut<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let path = req.uri().path();
        let (service, method) = match path.trim_start_matches('/').split_once('/') {
            Some((s, m)) if known_methods().contains(path) => (s.to_owned(), m.to_owned()),
            _ => ("unknown".to_owned(), "unknown".to_owned()),
        };
        let start = std::time::Instant::now();
        let duration = self.duration.clone();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await;
            let code = match &res {
                // Trailers-only errors carry the code in the headers; OK comes in trailers.
                Ok(r) => r
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<i64>().ok())
                    .unwrap_or(0),
                Err(_) => tonic::Code::Internal as i64,
            };
            duration.record(
                start.elapsed().as_secs_f64(),
                &[
                    opentelemetry::KeyValue::new("rpc.system", "grpc"),
                    opentelemetry::KeyValue::new("rpc.service", service),
                    opentelemetry::KeyValue::new("rpc.method", method),
                    opentelemetry::KeyValue::new("rpc.grpc.status_code", code),
                ],
            );
            res
        })
    }
}

#[cfg(test)]
mod metrics_tests {
    #[test]
    fn only_the_mesh_s_own_rpcs_become_method_labels() {
        let known = super::known_methods();
        assert!(known.contains("/guardline.dialer.v1.DialerPolicyService/CheckCall"));
        assert!(known.contains("/guardline.vault.v1.LeadVaultService/RevealField"));
        assert!(known.contains("/grpc.health.v1.Health/Check"));
        assert!(!known.contains("/guardline.vault.v1.LeadVaultService/Invented"), "a caller's invention");
        assert!(known.len() > 80, "every RPC of the five services: {}", known.len());
    }
}

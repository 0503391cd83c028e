//! An OTLP/gRPC receiver for the telemetry journey: traces recorded,
//! metrics accepted and dropped.

use std::sync::{Arc, Mutex};

use anyhow::Result;

use crate::SeenSpan;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};

struct Receiver(Arc<Mutex<Vec<SeenSpan>>>);
#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> std::result::Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut seen = self.0.lock().map_err(|_| tonic::Status::internal("lock"))?;
        for rs in req.into_inner().resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| a.value.as_ref())
                .and_then(|v| match &v.value {
                    Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s)) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for span in rs.scope_spans.iter().flat_map(|s| &s.spans) {
                seen.push(SeenSpan {
                    service: service.clone(),
                    trace_id: hex::encode(&span.trace_id),
                    name: span.name.clone(),
                });
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}
struct Metrics;
#[tonic::async_trait]
impl MetricsService for Metrics {
    async fn export(
        &self,
        _: tonic::Request<ExportMetricsServiceRequest>,
    ) -> std::result::Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        Ok(tonic::Response::new(ExportMetricsServiceResponse { partial_success: None }))
    }
}

/// Starts the receiver on its own thread and runtime, so that it outlives
/// the test that started the mesh; returns its endpoint and what it saw.
pub(crate) fn receiver() -> Result<(String, Arc<Mutex<Vec<SeenSpan>>>)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    let spans = Arc::new(Mutex::new(Vec::new()));
    let keep = spans.clone();
    std::thread::Builder::new().name("otlp-receiver".into()).spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        rt.block_on(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            let _ = tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(Receiver(keep)))
                .add_service(MetricsServiceServer::new(Metrics))
                .serve_with_incoming(incoming)
                .await;
        });
    })?;
    Ok((endpoint, spans))
}

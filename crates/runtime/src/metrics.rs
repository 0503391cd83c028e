//! The Prometheus scrape endpoint: `GET /metrics` in the text exposition
//! format, encoded by the `prometheus` crate from what OpenTelemetry's
//! Prometheus exporter collected. Plain HTTP on its own address, apart from
//! the mTLS port; metric names and labels carry no personal data.

use std::net::SocketAddr;

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus::{Encoder, Registry, TextEncoder};

/// The text exposition of everything `registry` holds now.
pub fn render(registry: &Registry) -> (String, Vec<u8>) {
    let encoder = TextEncoder::new();
    let mut body = Vec::new();
    if let Err(e) = encoder.encode(&registry.gather(), &mut body) {
        tracing::warn!(error = %e, "metrics not encoded");
    }
    (encoder.format_type().to_owned(), body)
}

/// Binds `address` now (so that a taken port fails at start) and serves
/// `registry` there until the returned task is aborted.
pub fn serve(address: SocketAddr, registry: Registry) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener =
        std::net::TcpListener::bind(address).map_err(|e| anyhow::anyhow!("--metrics-address {address}: {e}"))?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let registry = registry.clone();
            async move {
                let (content_type, body) = render(&registry);
                ([(CONTENT_TYPE, content_type)], body).into_response()
            }
        }),
    );
    let server = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics endpoint stopped");
        }
    });
    tracing::info!(address = %bound, "serving metrics at /metrics");
    Ok((bound, server))
}

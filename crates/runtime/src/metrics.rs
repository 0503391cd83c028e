//! The Prometheus scrape endpoint: `GET /metrics` in the text exposition
//! format, encoded by the `prometheus` crate from what OpenTelemetry's
//! Prometheus exporter collected. Plain HTTP on its own address, apart from
//! the mTLS port; metric names and labels carry no personal data.
//!
//! Also the instruments the services share (on the global meter provider,
//! which `telemetry::init` installs before any is used): every label value
//! is a fixed vocabulary (a verdict, a field name), never an id or a value.

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

/// The mesh's business instruments.
#[derive(Debug)]
pub struct Business {
    /// Pre-dial decisions, by `verdict`.
    pub decisions: opentelemetry::metrics::Counter<u64>,
    /// Fields revealed in clear, by `field`.
    pub reveals: opentelemetry::metrics::Counter<u64>,
    /// Leads exported.
    pub exported: opentelemetry::metrics::Counter<u64>,
    /// Audit events appended.
    pub audit_appended: opentelemetry::metrics::Counter<u64>,
    /// How long an audit append batch took (seconds).
    pub audit_append: opentelemetry::metrics::Histogram<f64>,
    /// Size of each tenant's audit tree an append batch grew, in buckets by
    /// powers of ten (no tenant label: the largest bucket reached is what
    /// an SRE sizes storage and proofs by).
    pub audit_tree_size: opentelemetry::metrics::Histogram<u64>,
    /// When this process's certificate expires (Unix seconds).
    pub certificate_expiry: opentelemetry::metrics::Gauge<u64>,
    /// Age of the oldest audit event waiting in this process's outbox (seconds; 0 when empty).
    pub outbox_age: opentelemetry::metrics::Gauge<f64>,
    /// Audit events waiting in this process's outbox, parked ones included.
    pub outbox_depth: opentelemetry::metrics::Gauge<u64>,
    /// Audit events the outbox delivered.
    pub outbox_delivered: opentelemetry::metrics::Counter<u64>,
}

/// The instruments, created once.
pub fn business() -> &'static Business {
    static B: std::sync::OnceLock<Business> = std::sync::OnceLock::new();
    B.get_or_init(|| {
        let m = opentelemetry::global::meter("guardline");
        Business {
            decisions: m
                .u64_counter("guardline.dialer.decisions")
                .with_description("Pre-dial decisions by verdict")
                .build(),
            reveals: m
                .u64_counter("guardline.vault.reveals")
                .with_description("Fields revealed in clear, by field")
                .build(),
            exported: m.u64_counter("guardline.vault.exported").with_description("Leads exported").build(),
            audit_appended: m.u64_counter("guardline.audit.appended").with_description("Audit events appended").build(),
            audit_append: m
                .f64_histogram("guardline.audit.append.duration")
                .with_unit("s")
                .with_description("Audit append batch latency")
                .build(),
            audit_tree_size: m
                .u64_histogram("guardline.audit.tree.size")
                .with_description("Entries in each tenant's audit tree an append grew")
                .with_boundaries((2..=10).map(|e| 10f64.powi(e)).collect())
                .build(),
            certificate_expiry: m
                .u64_gauge("guardline.tls.certificate.expiry")
                .with_unit("s")
                .with_description("When the certificate this process presents expires (Unix time)")
                .build(),
            outbox_age: m
                .f64_gauge("guardline.outbox.age")
                .with_unit("s")
                .with_description("Age of the oldest audit event waiting in the outbox")
                .build(),
            outbox_depth: m
                .u64_gauge("guardline.outbox.depth")
                .with_description("Audit events waiting in the outbox, parked ones included")
                .build(),
            outbox_delivered: m
                .u64_counter("guardline.outbox.delivered")
                .with_description("Audit events the outbox delivered")
                .build(),
        }
    })
}

/// A label.
pub fn label(key: &'static str, value: impl Into<opentelemetry::Value>) -> opentelemetry::KeyValue {
    opentelemetry::KeyValue::new(key, value)
}

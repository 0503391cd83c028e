//! Tracing and OpenTelemetry, initialised in one place for every binary:
//! env filter, text or JSON logs, OTLP/gRPC traces and metrics when an
//! endpoint is configured, and a Prometheus scrape endpoint when an address
//! is (one meter provider feeds both). W3C trace context is the propagation
//! format.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::args::{LogFormat, TelemetryArgs};

/// Flushes and shuts the exporters down when dropped.
#[derive(Debug, Default)]
pub struct TelemetryGuard {
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
    scrape: Option<(std::net::SocketAddr, tokio::task::JoinHandle<()>)>,
}

impl TelemetryGuard {
    /// Where the Prometheus scrape endpoint listens, when it does.
    pub fn metrics_address(&self) -> Option<std::net::SocketAddr> {
        self.scrape.as_ref().map(|(a, _)| *a)
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some((_, server)) = self.scrape.take() {
            server.abort();
        }
        if let Some(t) = self.tracer.take() {
            let _ = t.shutdown();
        }
        if let Some(m) = self.meter.take() {
            let _ = m.shutdown();
        }
    }
}

/// Installs the global subscriber, propagator and (with an OTLP endpoint)
/// tracer and meter providers. Call once, early in `main`, inside a Tokio runtime.
pub fn init(service_name: &str, args: &TelemetryArgs) -> anyhow::Result<TelemetryGuard> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let filter = EnvFilter::try_new(&args.log).map_err(|e| anyhow::anyhow!("invalid --log filter: {e}"))?;
    let fmt = match args.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer().with_target(true).boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer().json().flatten_event(true).boxed(),
    };
    let mut guard = TelemetryGuard::default();
    let resource = Resource::builder().with_service_name(service_name.to_owned()).build();
    let mut meters = SdkMeterProvider::builder().with_resource(resource.clone());
    if let Some(endpoint) = &args.otlp_endpoint {
        let metrics = opentelemetry_otlp::MetricExporter::builder().with_tonic().with_endpoint(endpoint).build()?;
        meters = meters.with_periodic_exporter(metrics);
    }
    if let Some(address) = args.metrics_address {
        let registry = prometheus::Registry::new();
        let exporter = opentelemetry_prometheus::exporter().with_registry(registry.clone()).build()?;
        meters = meters.with_reader(exporter);
        guard.scrape = Some(crate::metrics::serve(address, registry)?);
    }
    if args.otlp_endpoint.is_some() || args.metrics_address.is_some() {
        let meter_provider = meters.build();
        opentelemetry::global::set_meter_provider(meter_provider.clone());
        guard.meter = Some(meter_provider);
    }
    let otel = match &args.otlp_endpoint {
        Some(endpoint) => {
            let spans = opentelemetry_otlp::SpanExporter::builder().with_tonic().with_endpoint(endpoint).build()?;
            let tracer_provider =
                SdkTracerProvider::builder().with_batch_exporter(spans).with_resource(resource).build();
            opentelemetry::global::set_tracer_provider(tracer_provider.clone());
            let trace_filter =
                EnvFilter::try_new(&args.trace).map_err(|e| anyhow::anyhow!("invalid --trace filter: {e}"))?;
            let layer = tracing_opentelemetry::layer()
                .with_tracer(tracer_provider.tracer(service_name.to_owned()))
                .with_filter(trace_filter);
            guard.tracer = Some(tracer_provider);
            Some(layer)
        }
        None => None,
    };
    // Each layer has its own filter: the log level does not decide which spans are exported.
    tracing_subscriber::registry().with(fmt.with_filter(filter)).with(otel).try_init()?;
    Ok(guard)
}

//! The Prometheus scrape endpoint, as Prometheus reads it: a metric
//! recorded through OpenTelemetry's global meter appears in the text
//! exposition at `/metrics`, with its labels; nothing else is served.
//! (One test: telemetry installs process-wide providers once.)

use opentelemetry::KeyValue;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn get(address: std::net::SocketAddr, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(address).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).await.expect("request");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("response");
    out
}

#[tokio::test]
async fn recorded_metrics_are_scraped_at_slash_metrics() {
    let args = guardline_runtime::args::TelemetryArgs {
        metrics_address: Some("127.0.0.1:0".parse().expect("address")),
        ..Default::default()
    };
    let guard = guardline_runtime::telemetry::init("metrics-test", &args).expect("telemetry");
    let address = guard.metrics_address().expect("listening");
    let meter = opentelemetry::global::meter("metrics-test");
    let calls = meter.u64_counter("guardline.test.calls").with_description("Calls in the test").build();
    calls.add(3, &[KeyValue::new("method", "Check"), KeyValue::new("code", "OK")]);

    let scraped = get(address, "/metrics").await;
    assert!(scraped.starts_with("HTTP/1.1 200"), "{scraped}");
    assert!(scraped.contains("text/plain; version=0.0.4"), "the Prometheus text format: {scraped}");
    let line = scraped.lines().find(|l| l.starts_with("guardline_test_calls_total{")).expect("the counter");
    assert!(line.contains(r#"method="Check""#) && line.contains(r#"code="OK""#) && line.ends_with(" 3"), "{line}");
    assert!(scraped.contains(r#"service_name="metrics-test""#), "the resource names the service: {scraped}");
    assert!(get(address, "/").await.starts_with("HTTP/1.1 404"), "only /metrics is served");
    drop(guard);
}

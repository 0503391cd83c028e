//! The operator's metrics, through OpenTelemetry (exported over OTLP and
//! on the Prometheus scrape endpoint, `--metrics-address`): reconciles and
//! their failures and durations per controller, tenants per rotation state
//! and retention's deletions, keeps and overdue erasures per policy.
//! Labels are controller, policy, state and kind names: never a tenant or
//! anything personal.

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter};

use crate::crd::{RunReport, Totals};

/// The instruments.
#[derive(Clone, Debug)]
pub struct Metrics {
    reconciles: Counter<u64>,
    duration: Histogram<f64>,
    tenants: Gauge<u64>,
    deleted: Counter<u64>,
    kept: Gauge<u64>,
    overdue: Gauge<u64>,
}

impl Default for Metrics {
    /// On the global meter provider (a no-op until telemetry installs one).
    fn default() -> Self {
        Self::new(&opentelemetry::global::meter("guardline-operator"))
    }
}

impl Metrics {
    /// The instruments on `meter`.
    pub fn new(meter: &Meter) -> Self {
        Self {
            reconciles: meter
                .u64_counter("guardline.operator.reconciles")
                .with_description("Reconciles by controller and result (ok, error)")
                .build(),
            duration: meter
                .f64_histogram("guardline.operator.reconcile.duration")
                .with_unit("s")
                .with_description("How long a reconcile took")
                .build(),
            tenants: meter
                .u64_gauge("guardline.operator.rotation.tenants")
                .with_description("Tenants a TenantKeyPolicy governs, by state (current, due, rotating, failing)")
                .build(),
            deleted: meter
                .u64_counter("guardline.operator.retention.deleted")
                .with_description("What retention runs deleted, by kind (recordings, consent, audit)")
                .build(),
            kept: meter
                .u64_gauge("guardline.operator.retention.kept")
                .with_description("Due recordings the last run kept, by reason (legal_hold, consent_evidence)")
                .build(),
            overdue: meter
                .u64_gauge("guardline.operator.erasures.overdue")
                .with_description("Erasure cases past their deadline at the last retention run")
                .build(),
        }
    }

    /// One reconcile of `controller` (a kind), and how long it took.
    pub fn reconciled(&self, controller: &'static str, ok: bool, took: Duration) {
        let result = if ok { "ok" } else { "error" };
        let kind = KeyValue::new("controller", controller);
        self.reconciles.add(1, &[kind.clone(), KeyValue::new("result", result)]);
        self.duration.record(took.as_secs_f64(), &[kind]);
    }

    /// A `TenantKeyPolicy`'s tenants per state after a pass.
    pub fn rotation(&self, policy: &str, t: &Totals) {
        for (state, n) in [("current", t.current), ("due", t.due), ("rotating", t.rotating), ("failing", t.failing)] {
            self.tenants.record(n, &[KeyValue::new("policy", policy.to_owned()), KeyValue::new("state", state)]);
        }
    }

    /// A `RetentionPolicy`'s run (a dry run deletes nothing and counts nothing).
    pub fn retention(&self, policy: &str, r: &RunReport, overdue: u64) {
        let p = || KeyValue::new("policy", policy.to_owned());
        if !r.dry_run {
            for (kind, n) in [("recordings", r.purged), ("consent", r.consent_pruned), ("audit", r.audit_pruned)] {
                self.deleted.add(n, &[p(), KeyValue::new("kind", kind)]);
            }
        }
        for (reason, n) in [("legal_hold", r.held), ("consent_evidence", r.kept_for_consent)] {
            self.kept.record(n, &[p(), KeyValue::new("reason", reason)]);
        }
        self.overdue.record(overdue, &[p()]);
    }
}

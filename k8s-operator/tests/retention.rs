//! The `RetentionPolicy` controller against the real mesh (PostgreSQL,
//! OpenBao, mTLS) on one manual clock, with the Kubernetes API mocked
//! controller-rs style: every request is asserted and answered.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use guardline_journeys::{self as journeys, bearer};
use guardline_operator::controller::Context;
use guardline_operator::crd::{RUN_NOW, RetentionPolicy, RetentionPolicySpec};
use guardline_operator::mesh::{Head, MeshError, Periods, Purged, RetentionMesh, Tenants};
use guardline_operator::metrics::Metrics;
use guardline_operator::retention_controller::reconcile;
use guardline_proto::audit::v1 as apb;
use guardline_proto::audit::v1::audit_service_client::AuditServiceClient;
use guardline_proto::recordings::v1 as rpb;
use guardline_proto::recordings::v1::recordings_service_client::RecordingsServiceClient;
use guardline_proto::vault::v1 as vpb;
use guardline_proto::vault::v1::lead_vault_service_client::LeadVaultServiceClient;
use guardline_runtime::args::MeshArgs;
use guardline_runtime::clock::{Clock, ManualClock};
use guardline_testmesh::{Keys, TestMesh};
use http::Method;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

mod support;

use support::api::{self, EVENTS, Handle, STATUS, applied, condition, expect};

const POLICIES: &str = "/apis/guardline.io/v1alpha1/namespaces/guardline/retentionpolicies";

fn spec() -> RetentionPolicySpec {
    RetentionPolicySpec {
        tenant: None,
        recordings_days: 30,
        consent_evidence_days: 1461,
        audit_days: 365,
        schedule: "0 3 * * *".into(),
        max_deletions_per_run: 1000,
        suspend: false,
        dry_run: false,
    }
}

fn policy(spec: RetentionPolicySpec, run_now: Option<&str>) -> RetentionPolicy {
    let mut p = RetentionPolicy::new("default", spec);
    p.meta_mut().namespace = Some(api::NS.into());
    p.meta_mut().generation = Some(1);
    let created: k8s_openapi::jiff::Timestamp = Utc::now().to_rfc3339().parse().expect("now");
    p.meta_mut().creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(created));
    if let Some(v) = run_now {
        p.meta_mut().annotations = Some([(RUN_NOW.to_owned(), v.to_owned())].into());
    }
    p
}

/// One reconcile that runs: the list of policies, the `Purging` status,
/// the events of `reasons` in order, the final status. Returns the final
/// status and the object as the API server then has it.
async fn one_run<M: RetentionMesh + 'static>(
    ctx: Arc<Context<M>>,
    mut handle: Handle,
    p: RetentionPolicy,
    reasons: &'static [&'static str],
) -> (Value, RetentionPolicy) {
    let stored = serde_json::to_value(&p).expect("json");
    let listed = stored.clone();
    let scenario = tokio::spawn(async move {
        let list = json!({"apiVersion": "guardline.io/v1alpha1", "kind": "RetentionPolicyList", "metadata": {}, "items": [listed]});
        expect(&mut handle, Method::GET, &format!("{POLICIES}?"), |_| list).await;
        let path = format!("{POLICIES}/default{STATUS}");
        let started = expect(&mut handle, Method::PATCH, &path, |b| applied(&stored, b)).await;
        assert_eq!(condition(&started["status"], "Purging")["status"], "True", "Purging while it runs");
        let mut notes = Vec::new();
        for reason in reasons {
            let event = expect(&mut handle, Method::POST, EVENTS, |b| b.clone()).await;
            assert_eq!(event["reason"], *reason, "{event}");
            assert_eq!(
                (event["regarding"]["name"].as_str(), event["action"].as_str()),
                (Some("default"), Some("Purge"))
            );
            notes.push(event["note"].as_str().unwrap_or_default().to_owned());
        }
        let done = expect(&mut handle, Method::PATCH, &path, |b| applied(&stored, b)).await;
        (done, notes)
    });
    tokio::time::timeout(Duration::from_secs(30), reconcile(Arc::new(p.clone()), ctx))
        .await
        .expect("no request beyond the scenario")
        .expect("reconcile");
    let (body, notes) = scenario.await.expect("the scenario");
    println!("events: {notes:#?}");
    let mut next = p;
    next.status = Some(serde_json::from_value(body["status"].clone()).expect("a status the operator reads back"));
    (body["status"].clone(), next)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_purges_the_expired_keeps_the_held_and_the_consent_evidence_and_reports_overdue_erasures() {
    let clock = ManualClock::starting_at(Utc::now());
    // Identity rotates its signing key while the clock moves a month; the
    // services fetch the new key as soon as they see it, not 5 s later.
    let fetch_keys_at_once = |m: &mut MeshArgs| m.key_refresh_interval = Duration::from_millis(1);
    let t = TestMesh::new(true, Keys::OpenBao, fetch_keys_at_once).await.with_clock(clock.clone());
    let t = support::start_on(t).await;
    let org = journeys::onboard(&t, "Retained").await.expect("onboarding");

    // The first run writes the policy's periods: recordings stored from now
    // on are kept 30 days.
    let (ctx, handle) = api::context(support::operator(&t).await, clock.clock());
    let (status, p) = one_run(ctx, handle, policy(spec(), Some("first")), &["RetentionRun"]).await;
    assert_eq!(status["lastRun"]["purged"], 0);
    assert_eq!(status["lastRunNow"], "first");

    let lead = journeys::consented_lead(&t, &org, "+8613912346200").await.expect("lead");
    let plain = journeys::upload_recording(&t, &org, &lead, None).await.expect("plain");
    let held = journeys::upload_recording(&t, &org, &lead, None).await.expect("to hold");
    let evidence = journeys::upload_recording(&t, &org, &lead, Some((12_500, 8_000))).await.expect("consent");
    let days = (plain.retain_until.expect("until").seconds - plain.stored_at.expect("stored").seconds) / 86_400;
    assert_eq!(days, 30, "stored under the policy's period");
    let mut recordings = RecordingsServiceClient::new(t.channel("recordings", "gateway"));
    let hold = rpb::SetLegalHoldRequest {
        tenant_id: org.tenant.clone(),
        recording_id: held.id.clone(),
        reason: "complaint under investigation".into(),
    };
    recordings.set_legal_hold(bearer(&org.admin, hold)).await.expect("hold");
    let mut vault = LeadVaultServiceClient::new(t.channel("lead-vault", "gateway"));
    let erase = vpb::RequestErasureRequest {
        tenant_id: org.tenant.clone(),
        subject: Some(vpb::request_erasure_request::Subject::LeadId(lead.clone())),
    };
    vault.request_erasure(bearer(&org.admin, erase)).await.expect("an erasure case, due in 30 days");

    // 31 days on, `run-now`: the plain recording goes, the held one and the
    // one holding spoken consent stay, and the open erasure case is overdue.
    clock.advance(chrono::Duration::days(31));
    let (ctx, handle) = api::context(support::operator(&t).await, clock.clock());
    // Its metrics as Prometheus scrapes them.
    let registry = prometheus::Registry::new();
    let exporter = opentelemetry_prometheus::exporter().with_registry(registry.clone()).build().expect("exporter");
    let meters = opentelemetry_sdk::metrics::SdkMeterProvider::builder().with_reader(exporter).build();
    let metrics = Metrics::new(&opentelemetry::metrics::MeterProvider::meter(&meters, "guardline-operator"));
    let ctx = Arc::new(Arc::into_inner(ctx).expect("one owner").with_metrics(metrics));
    // The object as the API server now has it, with the first run's status.
    let mut p = p;
    p.annotations_mut().insert(RUN_NOW.into(), "second".into());
    let (status, _) = one_run(ctx, handle, p, &["ErasureOverdue", "RetentionRun"]).await;
    let run = &status["lastRun"];
    assert_eq!(
        (run["purged"].as_u64(), run["held"].as_u64(), run["keptForConsent"].as_u64(), run["tenants"].as_u64()),
        (Some(1), Some(1), Some(1), Some(1)),
        "{status}"
    );
    assert_eq!(status["overdueErasures"], 1);
    assert_eq!(status["tenants"][0]["tenant"], org.tenant.as_str());
    assert_eq!(condition(&status, "Ready")["status"], "True");
    assert_eq!(condition(&status, "Purging")["status"], "False");
    assert_eq!(condition(&status, "Blocked")["status"], "False");
    let overdue = condition(&status, "ErasuresOverdue");
    assert_eq!((overdue["status"].as_str(), overdue["reason"].as_str()), (Some("True"), Some("ErasureOverdue")));
    println!("status after the run, as `kubectl get retentionpolicy default -o yaml` shows it:\n{}", {
        serde_yaml::to_string(&json!({"status": status})).expect("yaml")
    });

    let (_, scraped) = guardline_runtime::metrics::render(&registry);
    let scraped = String::from_utf8(scraped).expect("text");
    let line = |name: &str, label: &str| {
        scraped
            .lines()
            .find(|l| l.starts_with(name) && l.contains(label))
            .map(|l| l.rsplit(' ').next().map(str::to_owned))
    };
    assert_eq!(line("guardline_operator_retention_deleted_total", r#"kind="recordings""#), Some(Some("1".into())));
    assert_eq!(line("guardline_operator_retention_kept", r#"reason="legal_hold""#), Some(Some("1".into())));
    assert_eq!(line("guardline_operator_erasures_overdue", r#"policy="default""#), Some(Some("1".into())));
    assert!(!scraped.contains(&org.tenant), "no tenant in a label:\n{scraped}");

    // What the services did, seen by people who log in now.
    let agent = journeys::onboarding::login(&t, &org.tenant, "agent1", "").await.expect("agent login");
    let gone = journeys::download(&t, &org, &agent, &plain.id).await.expect_err("purged");
    assert_eq!(gone.code(), tonic::Code::NotFound);
    for kept in [&held.id, &evidence.id] {
        journeys::download(&t, &org, &agent, kept).await.expect("kept");
    }
    let auditor = journeys::onboarding::login(&t, &org.tenant, "auditor1", "").await.expect("auditor login");
    let list = apb::ListAlertsRequest { tenant_id: org.tenant.clone(), ..Default::default() };
    let mut audit = AuditServiceClient::new(t.channel("audit", "gateway"));
    // Detection reads the log a tick after the append: wait for the alert.
    let mut alerts = Vec::new();
    for _ in 0..100 {
        alerts = audit.list_alerts(bearer(&auditor, list.clone())).await.expect("alerts").into_inner().alerts;
        if alerts.iter().any(|a| a.rule == "erasure_overdue") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(alerts.iter().any(|a| a.rule == "erasure_overdue"), "{alerts:?}");
}

/// A mesh that must not be reached: a blocked policy calls nothing.
struct Unreached;

impl Tenants for Unreached {
    async fn list_tenants(&self) -> Result<Vec<String>, MeshError> {
        panic!("listed tenants")
    }
}

impl RetentionMesh for Unreached {
    async fn write_periods(&self, _: &str, _: Periods) -> Result<(), MeshError> {
        panic!("wrote periods")
    }
    async fn purge_recordings(&self, _: &str, _: u32, _: bool) -> Result<Purged, MeshError> {
        panic!("purged")
    }
    async fn prune_consent(&self, _: &str, _: u32, _: bool) -> Result<(u64, bool), MeshError> {
        panic!("pruned consent")
    }
    async fn audit_head(&self, _: &str) -> Result<Head, MeshError> {
        panic!("read a head")
    }
    async fn audit_consistency(&self, _: &str, _: u64, _: u64) -> Result<Vec<[u8; 32]>, MeshError> {
        panic!("asked for a proof")
    }
    async fn prune_audit(&self, _: &str, _: bool) -> Result<u64, MeshError> {
        panic!("pruned audit")
    }
    async fn overdue_erasures(&self, _: &str) -> Result<u64, MeshError> {
        panic!("listed erasures")
    }
    async fn report_overdue(&self, _: &str, _: u64, _: &str, _: chrono::DateTime<Utc>) -> Result<(), MeshError> {
        panic!("reported")
    }
}

#[tokio::test]
async fn a_policy_below_the_legal_floors_is_blocked_naming_the_fields_and_calls_nothing() {
    let short = RetentionPolicySpec { consent_evidence_days: 365, audit_days: 90, ..spec() };
    let p = policy(short, Some("now"));
    let (ctx, mut handle) = api::context(Unreached, Clock::system());
    let stored = serde_json::to_value(&p).expect("json");
    let scenario = tokio::spawn(async move {
        let path = format!("{POLICIES}/default{STATUS}");
        let body = expect(&mut handle, Method::PATCH, &path, |b| applied(&stored, b)).await;
        let blocked = condition(&body["status"], "Blocked");
        assert_eq!((blocked["status"].as_str(), blocked["reason"].as_str()), (Some("True"), Some("BelowLegalFloor")));
        let message = blocked["message"].as_str().unwrap_or_default();
        assert!(message.contains("spec.consentEvidenceDays") && message.contains("spec.auditDays"), "{message}");
        assert_eq!(condition(&body["status"], "Ready")["status"], "False");
        assert!(body["status"].get("lastRunTime").is_none(), "nothing ran");
    });
    tokio::time::timeout(Duration::from_secs(10), reconcile(Arc::new(p), ctx))
        .await
        .expect("no request beyond the status patch")
        .expect("reconcile");
    scenario.await.expect("the scenario");
}

#[tokio::test]
async fn a_policy_not_due_reports_its_next_run_and_calls_nothing() {
    let p = policy(spec(), None);
    let (ctx, mut handle) = api::context(Unreached, Clock::system());
    let stored = serde_json::to_value(&p).expect("json");
    let scenario = tokio::spawn(async move {
        let path = format!("{POLICIES}/default{STATUS}");
        let body = expect(&mut handle, Method::PATCH, &path, |b| applied(&stored, b)).await;
        let next = body["status"]["nextRunTime"].as_str().expect("next run").to_owned();
        assert!(next.ends_with("T03:00:00Z"), "the schedule's next 03:00: {next}");
        assert_eq!(condition(&body["status"], "Purging")["status"], "False");
        assert_eq!(condition(&body["status"], "Ready")["status"], "True");
    });
    tokio::time::timeout(Duration::from_secs(10), reconcile(Arc::new(p), ctx))
        .await
        .expect("no request beyond the status patch")
        .expect("reconcile");
    scenario.await.expect("the scenario");
}

//! The `TenantKeyPolicy` controller's API traffic against a mocked
//! Kubernetes API server, kube-rs controller-rs style: each scenario
//! asserts every request (method, path, body) and answers it as the API
//! server would; an unexpected extra request leaves the reconcile waiting
//! for an answer, and the test's timeout fails it. Vault and the services
//! are real (OpenBao, PostgreSQL, mTLS).

use std::sync::Arc;
use std::time::Duration;

use guardline_journeys as journeys;
use guardline_operator::controller::{Context, reconcile};
use guardline_operator::crd::{ROTATE_NOW, TenantKeyPolicy, TenantKeyPolicySpec};
use guardline_operator::mesh::{KeyMesh, Mesh, MeshError, Rewrap, Tenants};
use guardline_operator::rotation::Observed;
use guardline_runtime::clock::Clock;
use http::Method;
use kube::Resource;
use serde_json::{Value, json};

mod support;

use support::api::{self, Handle, STATUS, applied, condition, expect};

const NS: &str = api::NS;
const POLICIES: &str = "/apis/guardline.io/v1alpha1/namespaces/guardline/tenantkeypolicies";

fn policy(name: &str, period: &str, rotate_now: Option<&str>) -> TenantKeyPolicy {
    let spec = TenantKeyPolicySpec::every(period);
    let mut p = TenantKeyPolicy::new(name, spec);
    p.meta_mut().namespace = Some(NS.into());
    p.meta_mut().generation = Some(1);
    if let Some(v) = rotate_now {
        p.meta_mut().annotations = Some([(ROTATE_NOW.to_owned(), v.to_owned())].into());
    }
    p
}

fn context<M: KeyMesh>(mesh: M) -> (Arc<Context<M>>, Handle) {
    api::context(mesh, Clock::system())
}

/// A mesh that must not be reached.
struct Unreached;

impl Tenants for Unreached {
    async fn list_tenants(&self) -> Result<Vec<String>, MeshError> {
        panic!("listed tenants")
    }
}

impl KeyMesh for Unreached {
    async fn observe(&self, _: &str, _: chrono::DateTime<chrono::Utc>) -> Result<(Observed, Rewrap), MeshError> {
        panic!("observed a tenant")
    }
    async fn rotate_tenant_key(&self, _: &str) -> Result<u64, MeshError> {
        panic!("rotated")
    }
    async fn rewrap(&self, _: &str) -> Result<(u64, u64, u64), MeshError> {
        panic!("rewrapped")
    }
    async fn rotate_data_key(&self, _: &str) -> Result<Rewrap, MeshError> {
        panic!("rotated a data key")
    }
    async fn raise_minimum(&self, _: &str, _: u64) -> Result<(), MeshError> {
        panic!("raised the minimum")
    }
    async fn trim(&self, _: &str, _: u64) -> Result<(), MeshError> {
        panic!("trimmed")
    }
}

#[tokio::test]
async fn an_invalid_period_only_reports_itself_naming_the_field() {
    // Written before the schema refused it, say: one minute.
    let p = policy("default", "1m", None);
    let (ctx, mut handle) = context(Unreached);
    let stored = serde_json::to_value(&p).expect("json");
    let api = tokio::spawn(async move {
        let path = format!("{POLICIES}/default{STATUS}");
        let body = expect(&mut handle, Method::PATCH, &path, |b| applied(&stored, b)).await;
        let degraded = condition(&body["status"], "Degraded");
        assert_eq!((degraded["status"].as_str(), degraded["reason"].as_str()), (Some("True"), Some("InvalidSpec")));
        assert!(degraded["message"].as_str().is_some_and(|m| m.contains("spec.rotationPeriod")), "{degraded}");
        assert_eq!(condition(&body["status"], "Ready")["status"], "False");
        assert_eq!(body["status"]["observedGeneration"], 1);
    });
    let action = tokio::time::timeout(Duration::from_secs(10), reconcile(Arc::new(p), ctx)).await;
    action.expect("no request beyond the status patch").expect("reconcile");
    api.await.expect("the scenario");
}

/// One reconcile of `p` against the mocked API, expecting a list, one
/// event of each of `reasons` in order, and a status patch; returns the
/// patched status and the object as the API server now has it.
async fn one_pass(
    ctx: Arc<Context<Mesh>>,
    mut handle: Handle,
    p: TenantKeyPolicy,
    reasons: &'static [&'static str],
) -> (Value, TenantKeyPolicy) {
    let listed = serde_json::to_value(&p).expect("json");
    let stored = listed.clone();
    let api = tokio::spawn(async move {
        let list = json!({"apiVersion": "guardline.io/v1alpha1", "kind": "TenantKeyPolicyList", "metadata": {}, "items": [listed]});
        expect(&mut handle, Method::GET, &format!("{POLICIES}?"), |_| list).await;
        for reason in reasons {
            let event = expect(&mut handle, Method::POST, api::EVENTS, |b| b.clone()).await;
            assert_eq!(event["reason"], *reason, "{event}");
            assert_eq!(event["regarding"]["name"], "default");
        }
        expect(&mut handle, Method::PATCH, &format!("{POLICIES}/default{STATUS}"), |b| applied(&stored, b)).await
    });
    tokio::time::timeout(Duration::from_secs(20), reconcile(Arc::new(p.clone()), ctx))
        .await
        .expect("no request beyond the scenario")
        .expect("reconcile");
    let body = api.await.expect("the scenario");
    let mut next = p;
    next.status = Some(serde_json::from_value(body["status"].clone()).expect("a status the operator reads back"));
    (body["status"].clone(), next)
}

fn tenant_at(status: &Value, i: usize) -> (&str, Option<&str>, Option<u64>) {
    let t = &status["tenants"][i];
    (t["tenant"].as_str().unwrap_or_default(), t["phase"].as_str(), t["keyVersion"].as_u64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_now_starts_rotations_at_the_rate_and_each_reconcile_moves_them_one_step() {
    let t = support::start().await;
    let (a, b) = (
        journeys::onboard(&t, "First").await.expect("onboarding"),
        journeys::onboard(&t, "Second").await.expect("onboarding"),
    );
    for (org, phone) in [(&a, "+8613912346100"), (&b, "+8613912346101")] {
        journeys::consented_lead(&t, org, phone).await.expect("a lead, so the tenant has a key");
    }
    let mesh = || support::operator(&t);
    // One new rotation a pass: the first tenant starts, the second waits.
    let mut p = policy("default", "90d", Some("now-1"));
    p.spec.rewrap_tenants_per_minute = 1;
    let (ctx, handle) = context(mesh().await);
    let (status, p) = one_pass(ctx, handle, p, &["RotationStarted"]).await;
    assert_eq!(tenant_at(&status, 0), (a.tenant.as_str(), Some("RotatingTenantKey"), Some(1)));
    let totals = &status["totals"];
    assert_eq!(
        (totals["tenants"].as_u64(), totals["rotating"].as_u64(), totals["due"].as_u64()),
        (Some(2), Some(1), Some(1))
    );
    assert_eq!((status["rotateNowCursor"].as_str(), status.get("lastRotateNow")), (Some(a.tenant.as_str()), None));
    assert_eq!(condition(&status, "Rotating")["status"], "True");
    assert_eq!(condition(&status, "Ready")["status"], "True");

    // The next reconcile (a restarted operator reads the same status)
    // rotates the first in OpenBao and starts the second: the request is done.
    let (ctx, handle) = context(mesh().await);
    let (status, _) = one_pass(ctx, handle, p, &["TenantKeyRotated", "RotationStarted"]).await;
    assert_eq!(tenant_at(&status, 0), (a.tenant.as_str(), Some("Rewrapping"), Some(2)));
    assert_eq!(tenant_at(&status, 1), (b.tenant.as_str(), Some("RotatingTenantKey"), Some(1)));
    assert_eq!((status["lastRotateNow"].as_str(), status.get("rotateNowCursor")), (Some("now-1"), None));
    let v = mesh().await.keys.versions(&a.tenant).await.expect("versions");
    assert_eq!(v.latest, 2, "the key rotated in OpenBao");
    println!("status after two reconciles:\n{}", serde_yaml::to_string(&status).expect("yaml"));
}

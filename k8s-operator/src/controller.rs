//! The `TenantKeyPolicy` controller: each reconcile finds the tenants a
//! policy governs (an override by tenant, else the oldest default), moves
//! each tenant's rotation one step (starting at most
//! `rewrapTenantsPerMinute` new ones a pass), tells each step as an event,
//! and writes a bounded status by server-side apply. No finalizer: a
//! policy leaves nothing behind outside its own status.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use guardline_runtime::clock::Clock;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder};
use kube::{Client, Resource, ResourceExt};

use crate::conditions;
use crate::crd::{ROTATE_NOW, TenantKeyPolicy, TenantKeyPolicySpec, TenantKeyPolicyStatus, TenantKeyState, Totals};
use crate::executor::{Advanced, Event, advance};
use crate::mesh::{KeyMesh, MeshError};
use crate::rotation::{Effective, Step};
use crate::schedule::{SpecError, parse_period};

/// The field manager of the operator's status writes.
pub const MANAGER: &str = "guardline-operator";
/// Tenants listed in a status; the rest are counted.
pub const MAX_LISTED: usize = 50;

/// What every reconcile shares.
pub struct Context<M> {
    /// The Kubernetes API.
    pub client: Client,
    /// Where events go.
    pub recorder: Recorder,
    /// Vault and the services.
    pub mesh: M,
    /// The operator's clock.
    pub clock: Clock,
    /// Audit's head per tenant after this process's last retention run,
    /// which the next run checks the log against (lost on restart: the
    /// run then checks from the head it reads before pruning).
    pub audit_heads: std::sync::Mutex<std::collections::HashMap<String, crate::mesh::Head>>,
    /// Reconciles, rotation and retention progress.
    pub metrics: crate::metrics::Metrics,
}

impl<M> Context<M> {
    /// A context with nothing remembered yet, its metrics on the global
    /// meter provider.
    pub fn new(client: Client, recorder: Recorder, mesh: M, clock: Clock) -> Self {
        Self { client, recorder, mesh, clock, audit_heads: Default::default(), metrics: Default::default() }
    }

    /// The same, its metrics recorded as `metrics`.
    pub fn with_metrics(self, metrics: crate::metrics::Metrics) -> Self {
        Self { metrics, ..self }
    }
}

/// A reconcile that could not finish; retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kubernetes API failed.
    #[error("kubernetes: {0}")]
    Kube(#[from] kube::Error),
    /// Identity could not list the tenants.
    #[error("{0}")]
    Mesh(#[from] MeshError),
}

/// The policy's spec, parsed.
pub fn effective(spec: &TenantKeyPolicySpec) -> Result<Effective, SpecError> {
    Ok(Effective {
        period: parse_period("spec.rotationPeriod", &spec.rotation_period)?,
        raise_minimum: spec.raise_min_decryption_version,
        keep_versions: u64::from(spec.keep_versions.max(1)),
        suspend: spec.suspend,
        dry_run: spec.dry_run,
    })
}

/// A policy that is a default for every tenant or an override for one.
pub trait PerTenant: ResourceExt {
    /// The tenant it overrides; `None` for a default.
    fn tenant(&self) -> Option<&String>;
}

impl PerTenant for TenantKeyPolicy {
    fn tenant(&self) -> Option<&String> {
        self.spec.tenant.as_ref()
    }
}

impl PerTenant for crate::crd::RetentionPolicy {
    fn tenant(&self) -> Option<&String> {
        self.spec.tenant.as_ref()
    }
}

/// The tenants `policy` governs among `tenants`, given every policy of its
/// kind in the namespace: an override its tenant, the oldest default the
/// rest; an error when another default already governs them.
pub fn governed<P: PerTenant>(policy: &P, all: &[P], tenants: &[String]) -> Result<Vec<String>, String> {
    if let Some(t) = policy.tenant() {
        return Ok(tenants.iter().filter(|x| *x == t).cloned().collect());
    }
    let age = |p: &P| (p.creation_timestamp().map(|t| t.0), p.name_any());
    let first = all.iter().filter(|p| p.tenant().is_none()).min_by_key(|p| age(p));
    if let Some(first) = first.filter(|f| f.name_any() != policy.name_any()) {
        return Err(format!(
            "the default policy {} is older and governs every tenant; this one is ignored",
            first.name_any()
        ));
    }
    let overridden: Vec<&String> = all.iter().filter_map(|p| p.tenant()).collect();
    Ok(tenants.iter().filter(|t| !overridden.contains(t)).cloned().collect())
}

/// One reconcile of `policy`.
pub async fn reconcile<M: KeyMesh>(policy: Arc<TenantKeyPolicy>, ctx: Arc<Context<M>>) -> Result<Action, Error> {
    let now = ctx.clock.now();
    let api: Api<TenantKeyPolicy> = Api::namespaced(ctx.client.clone(), &policy.namespace().unwrap_or_default());
    let generation = policy.meta().generation;
    let mut status = policy.status.clone().unwrap_or_default();
    status.observed_generation = generation;
    let refused = |status: &mut TenantKeyPolicyStatus, reason: &str, message: String| {
        conditions::set(&mut status.conditions, "Degraded", true, (reason, message.clone()), generation, now);
        conditions::set(&mut status.conditions, "Ready", false, (reason, message), generation, now);
    };
    let p = match effective(&policy.spec) {
        Ok(p) => p,
        Err(e) => {
            refused(&mut status, "InvalidSpec", e.to_string());
            patch_status(&api, policy.as_ref(), &status).await?;
            return Ok(Action::await_change());
        }
    };
    let all = api.list(&ListParams::default()).await?.items;
    let tenants = ctx.mesh.list_tenants().await?;
    let governed = match governed(policy.as_ref(), &all, &tenants) {
        Ok(g) => g,
        Err(message) => {
            refused(&mut status, "ConflictingDefault", message);
            patch_status(&api, policy.as_ref(), &status).await?;
            return Ok(Action::await_change());
        }
    };
    let asked = policy.annotations().get(ROTATE_NOW).filter(|v| status.last_rotate_now.as_ref() != Some(*v)).cloned();
    let pass = step_all(&ctx.mesh, &p, &policy.spec, &governed, &status, asked.is_some(), now).await;
    for e in &pass.events {
        publish(&ctx.recorder, policy.as_ref(), "Rotate", e).await?;
    }
    if asked.is_some() {
        // Done once every governed tenant was reached; else resume after the cursor.
        status.rotate_now_cursor = pass.cursor.clone().filter(|_| pass.skipped);
        if !pass.skipped {
            status.last_rotate_now = asked;
        }
    }
    summarize(&mut status, &pass, &p, generation, now);
    ctx.metrics.rotation(&policy.name_any(), &status.totals);
    patch_status(&api, policy.as_ref(), &status).await?;
    Ok(requeue(&pass, &p, now))
}

/// What one pass over a policy's tenants found.
#[derive(Debug, Default)]
pub struct Pass {
    /// Tenants in progress or failing, with their progress.
    pub states: Vec<TenantKeyState>,
    /// Per-state totals.
    pub totals: Totals,
    /// The earliest rotation due among idle tenants.
    pub next_due: Option<DateTime<Utc>>,
    /// Whether a rotation finished.
    pub finished: bool,
    /// Tenants a dry run would rotate.
    pub planned: Vec<String>,
    /// What to tell.
    pub events: Vec<Event>,
    /// The last tenant a `rotate-now` reached in this pass.
    pub cursor: Option<String>,
    /// Whether the rate limit left tenants for a later pass.
    pub skipped: bool,
}

/// Moves every governed tenant one step; starts at most the policy's rate.
async fn step_all(
    mesh: &impl KeyMesh,
    p: &Effective,
    spec: &TenantKeyPolicySpec,
    tenants: &[String],
    status: &TenantKeyPolicyStatus,
    rotate_now: bool,
    now: DateTime<Utc>,
) -> Pass {
    let mut pass = Pass { totals: Totals { tenants: tenants.len() as u64, ..Totals::default() }, ..Pass::default() };
    let mut starts = 0u32;
    // A `rotate-now` spread over passes goes on after the last tenant it reached.
    let reached = |t: &String| status.rotate_now_cursor.as_ref().is_some_and(|c| t <= c);
    pass.cursor = status.rotate_now_cursor.clone();
    for tenant in tenants {
        let state = status.tenants.iter().find(|s| &s.tenant == tenant && s.phase.is_some()).cloned();
        if state.is_none() && starts >= spec.rewrap_tenants_per_minute {
            pass.totals.due += 1;
            pass.skipped = true;
            continue;
        }
        let asked = rotate_now && !reached(tenant);
        let a = advance(mesh, p, tenant, state, asked, now).await;
        starts += u32::from(a.step == Step::Start);
        if asked && !pass.skipped {
            pass.cursor = Some(tenant.clone());
        }
        record(&mut pass, tenant, a);
    }
    pass
}

fn record(pass: &mut Pass, tenant: &str, a: Advanced) {
    match (&a.state, &a.step) {
        (Some(s), _) if s.failures > 0 => pass.totals.failing += 1,
        (Some(_), _) => pass.totals.rotating += 1,
        (None, Step::NotDue { at }) => {
            pass.totals.current += 1;
            pass.next_due = Some(pass.next_due.map_or(*at, |n| n.min(*at)));
        }
        (None, Step::WouldRotate) => {
            pass.totals.due += 1;
            pass.planned.push(tenant.to_owned());
        }
        (None, _) if a.finished => pass.totals.current += 1,
        (None, _) => pass.totals.due += 1,
    }
    pass.finished |= a.finished;
    pass.states.extend(a.state);
    pass.events.extend(a.event);
}

/// The status after a pass: totals, the first tenants in progress or
/// failing (failing first), times and conditions.
fn summarize(
    status: &mut TenantKeyPolicyStatus,
    pass: &Pass,
    p: &Effective,
    generation: Option<i64>,
    now: DateTime<Utc>,
) {
    let mut listed = pass.states.clone();
    listed.sort_by_key(|s| (s.failures == 0, s.tenant.clone()));
    status.tenants_omitted = listed.len().saturating_sub(MAX_LISTED) as u64;
    listed.truncate(MAX_LISTED);
    status.tenants = listed;
    status.totals = pass.totals.clone();
    status.planned = pass.planned.iter().take(MAX_LISTED).cloned().collect();
    let stamp = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    if pass.finished {
        status.last_rotation_time = Some(stamp(now));
    }
    status.next_rotation_time = pass.next_due.map(stamp);
    let t = &pass.totals;
    let c = &mut status.conditions;
    let failing: Vec<&str> =
        status.tenants.iter().filter(|s| s.failures > 0).take(5).map(|s| s.tenant.as_str()).collect();
    let degraded = if t.failing > 0 {
        ("RotationFailed", format!("{} tenants failing: {}", t.failing, failing.join(", ")))
    } else {
        ("NoFailures", "no tenant failing".to_owned())
    };
    conditions::set(c, "Degraded", t.failing > 0, degraded, generation, now);
    let rotating = (
        if t.rotating > 0 { "RotationInProgress" } else { "Idle" },
        format!("{} of {} tenants rotating", t.rotating, t.tenants),
    );
    conditions::set(c, "Rotating", t.rotating > 0, rotating, generation, now);
    let suspended = (if p.suspend { "Suspended" } else { "Active" }, format!("{} tenants due", t.due));
    conditions::set(c, "Suspended", p.suspend, suspended, generation, now);
    let ready = if t.failing > 0 { "RotationFailed" } else { "Reconciled" };
    conditions::set(
        c,
        "Ready",
        t.failing == 0,
        (ready, format!("{} current, {} due", t.current, t.due)),
        generation,
        now,
    );
}

/// Soon while something is in progress or due and allowed to start; else
/// when the next rotation is due (within the hour).
fn requeue(pass: &Pass, p: &Effective, now: DateTime<Utc>) -> Action {
    let startable = if p.suspend || p.dry_run { 0 } else { pass.totals.due };
    if pass.totals.rotating + pass.totals.failing + startable > 0 {
        return Action::requeue(Duration::from_secs(5));
    }
    let until = pass.next_due.map_or(3600, |at| (at - now).num_seconds().clamp(10, 3600));
    Action::requeue(Duration::from_secs(until as u64))
}

/// Publishes `e` about `object`, as `action` (`Rotate`, `Purge`).
pub async fn publish<K: Resource<DynamicType = ()>>(
    recorder: &Recorder,
    object: &K,
    action: &str,
    e: &Event,
) -> Result<(), kube::Error> {
    let ev = KubeEvent {
        type_: if e.warning { EventType::Warning } else { EventType::Normal },
        reason: e.reason.into(),
        note: Some(e.note.clone()),
        action: action.into(),
        secondary: None,
    };
    recorder.publish(&ev, &object.object_ref(&())).await
}

/// Writes `status` by server-side apply, as the operator's field manager.
pub async fn patch_status<K>(api: &Api<K>, object: &K, status: &impl serde::Serialize) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(&object.name_any(), &PatchParams::apply(MANAGER).force(), &Patch::Apply(&patch)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(name: &str, tenant: Option<&str>, created: &str) -> TenantKeyPolicy {
        let spec = TenantKeyPolicySpec { tenant: tenant.map(str::to_owned), ..TenantKeyPolicySpec::every("90d") };
        let mut p = TenantKeyPolicy::new(name, spec);
        let at: k8s_openapi::jiff::Timestamp = created.parse().expect("time");
        p.meta_mut().creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at));
        p
    }

    #[test]
    fn a_default_governs_the_tenants_no_override_names_and_the_older_default_wins() {
        let tenants: Vec<String> = ["t1", "t2", "t3"].map(String::from).to_vec();
        let default = policy("default", None, "2026-01-01T00:00:00Z");
        let acme = policy("acme", Some("t2"), "2026-02-01T00:00:00Z");
        let gone = policy("gone", Some("t9"), "2026-02-01T00:00:00Z");
        let later = policy("later", None, "2026-03-01T00:00:00Z");
        let all = [default.clone(), acme.clone(), gone.clone(), later.clone()];
        assert_eq!(governed(&default, &all, &tenants), Ok(vec!["t1".to_owned(), "t3".to_owned()]));
        assert_eq!(governed(&acme, &all, &tenants), Ok(vec!["t2".to_owned()]));
        assert_eq!(governed(&gone, &all, &tenants), Ok(vec![]), "a tenant that does not exist");
        let refused = governed(&later, &all, &tenants).expect_err("a second default");
        assert!(refused.contains("default"), "{refused}");
    }

    #[test]
    fn a_suspended_or_dry_run_policy_with_due_tenants_does_not_spin() {
        let now: DateTime<Utc> = "2026-12-02T00:00:00Z".parse().expect("time");
        let p = effective(&policy("p", None, "2026-01-01T00:00:00Z").spec).expect("spec");
        let due = Pass { totals: Totals { tenants: 3, due: 3, ..Totals::default() }, ..Pass::default() };
        assert_eq!(requeue(&due, &p, now), Action::requeue(Duration::from_secs(5)));
        for quiet in [Effective { suspend: true, ..p.clone() }, Effective { dry_run: true, ..p.clone() }] {
            assert_eq!(requeue(&due, &quiet, now), Action::requeue(Duration::from_secs(3600)));
        }
        let next = Pass { next_due: Some(now + chrono::Duration::minutes(2)), ..Pass::default() };
        assert_eq!(requeue(&next, &p, now), Action::requeue(Duration::from_secs(120)));
    }

    #[test]
    fn a_bad_period_is_named() {
        let mut spec = policy("p", None, "2026-01-01T00:00:00Z").spec;
        spec.rotation_period = "30m".into();
        assert_eq!(effective(&spec).expect_err("30 minutes").field, "spec.rotationPeriod");
    }
}

//! The `RetentionPolicy` controller: when a run is due (by schedule, a
//! retry after a failure, or `guardline.io/run-now`), it writes the
//! policy's periods into the services and purges every governed tenant
//! within the run's deletion cap (see [`purge`]), then reports the totals,
//! the tenants failing, blocked or with overdue erasures, and conditions
//! `Ready`, `Purging`, `Blocked` and `ErasuresOverdue`. A policy below the
//! services' legal floors is `Blocked` naming the field, and nothing runs.
//! No finalizer: a policy leaves nothing outside its own status (the
//! periods it wrote stay in force, as the services' own settings).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use kube::api::{Api, ListParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use crate::conditions;
use crate::controller::{Context, Error, MAX_LISTED, governed, patch_status, publish};
use crate::crd::{
    RUN_NOW, RetentionPolicy, RetentionPolicySpec, RetentionPolicyStatus, RunReport, TenantRetentionState,
};
use crate::executor::Event;
use crate::mesh::{Periods, RetentionMesh};
use crate::purge::{self, Run};
use crate::retention::{RunStep, below_floors, next};
use crate::schedule::next_run;

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The periods a spec sets.
pub fn periods(spec: &RetentionPolicySpec) -> Periods {
    Periods {
        recordings_days: spec.recordings_days,
        consent_days: spec.consent_evidence_days,
        audit_days: spec.audit_days,
    }
}

/// One reconcile of `policy`.
pub async fn reconcile<M: RetentionMesh>(policy: Arc<RetentionPolicy>, ctx: Arc<Context<M>>) -> Result<Action, Error> {
    let now = ctx.clock.now();
    let api: Api<RetentionPolicy> = Api::namespaced(ctx.client.clone(), &policy.namespace().unwrap_or_default());
    let generation = policy.meta().generation;
    let mut status = policy.status.clone().unwrap_or_default();
    status.observed_generation = generation;
    let asked = policy.annotations().get(RUN_NOW).filter(|v| status.last_run_now.as_ref() != Some(*v)).cloned();
    let dry_run = match plan(&policy, &mut status, asked.is_some(), now) {
        Ok(dry_run) => dry_run,
        Err(action) => {
            patch_status(&api, policy.as_ref(), &status).await?;
            return Ok(action);
        }
    };
    let all = api.list(&ListParams::default()).await?.items;
    let tenants = ctx.mesh.list_tenants().await?;
    let governed = match governed(policy.as_ref(), &all, &tenants) {
        Ok(g) => g,
        Err(message) => {
            blocked(&mut status, "ConflictingDefault", message, generation, now);
            patch_status(&api, policy.as_ref(), &status).await?;
            return Ok(Action::await_change());
        }
    };
    // Purging while the run lasts: at thousands of tenants, minutes.
    let message = format!("{} tenants{}", governed.len(), if dry_run { ", dry run" } else { "" });
    conditions::set(&mut status.conditions, "Purging", true, ("RunStarted", message), generation, now);
    patch_status(&api, policy.as_ref(), &status).await?;

    let pass = run_all(&ctx, &policy.spec, &governed, dry_run, now).await;
    for e in &pass.events {
        publish(&ctx.recorder, policy.as_ref(), "Purge", e).await?;
    }
    summarize(&mut status, &pass, generation, now);
    ctx.metrics.retention(&policy.name_any(), &pass.report, pass.overdue);
    status.next_run_time = next_run("spec.schedule", &policy.spec.schedule, now).ok().map(stamp);
    if asked.is_some() {
        status.last_run_now = asked;
    }
    patch_status(&api, policy.as_ref(), &status).await?;
    let created = created(&policy, now);
    Ok(match next(&policy.spec, &status, created, false, now) {
        Ok(RunStep::NotDue { at }) => until(at, now),
        _ => Action::requeue(Duration::from_secs(60)),
    })
}

fn created(policy: &RetentionPolicy, now: DateTime<Utc>) -> DateTime<Utc> {
    policy.creation_timestamp().and_then(|t| DateTime::from_timestamp(t.0.as_second(), 0)).unwrap_or(now)
}

fn blocked(
    status: &mut RetentionPolicyStatus,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: DateTime<Utc>,
) {
    let c = &mut status.conditions;
    conditions::set(c, "Blocked", true, (reason, message.clone()), generation, now);
    conditions::set(c, "Ready", false, (reason, message), generation, now);
    conditions::set(c, "Purging", false, ("Blocked", "nothing runs".into()), generation, now);
}

/// Whether `policy` runs now (and whether as a dry run); otherwise the
/// status to write and when to look again. Pure.
pub fn plan(
    policy: &RetentionPolicy,
    status: &mut RetentionPolicyStatus,
    run_now: bool,
    now: DateTime<Utc>,
) -> Result<bool, Action> {
    let generation = policy.meta().generation;
    let floors = below_floors(&policy.spec);
    if !floors.is_empty() {
        let message = floors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
        blocked(status, "BelowLegalFloor", message, generation, now);
        return Err(Action::await_change());
    }
    match next(&policy.spec, status, created(policy, now), run_now, now) {
        Err(e) => {
            blocked(status, "InvalidSpec", e.to_string(), generation, now);
            Err(Action::await_change())
        }
        Ok(RunStep::NotDue { at }) => {
            status.next_run_time = Some(stamp(at));
            idle(status, generation, now);
            Err(until(at, now))
        }
        Ok(RunStep::Suspended) => {
            let c = &mut status.conditions;
            conditions::set(c, "Purging", false, ("Suspended", "spec.suspend is set".into()), generation, now);
            conditions::set(c, "Ready", true, ("Suspended", "due, suspended".into()), generation, now);
            Err(Action::await_change())
        }
        Ok(RunStep::Run { dry_run }) => Ok(dry_run),
    }
}

/// Requeue at `at` (within the hour, so that a changed clock or a missed
/// watch event is noticed).
fn until(at: DateTime<Utc>, now: DateTime<Utc>) -> Action {
    Action::requeue(Duration::from_secs((at - now).num_seconds().clamp(1, 3600) as u64))
}

fn idle(status: &mut RetentionPolicyStatus, generation: Option<i64>, now: DateTime<Utc>) {
    let c = &mut status.conditions;
    conditions::set(c, "Purging", false, ("Scheduled", "waiting for the schedule".into()), generation, now);
    // A spec fixed since it was blocked, or a policy that never ran: ready.
    let spec_blocked = c.iter().any(|c| {
        c.type_ == "Blocked"
            && c.status == "True"
            && ["BelowLegalFloor", "InvalidSpec", "ConflictingDefault"].contains(&c.reason.as_str())
    });
    if spec_blocked || !c.iter().any(|c| c.type_ == "Ready") {
        conditions::set(c, "Ready", true, ("Scheduled", "waiting for the first run".into()), generation, now);
        conditions::set(c, "Blocked", false, ("NotBlocked", "within the legal floors".into()), generation, now);
    }
}

/// What one run over a policy's tenants found.
#[derive(Debug, Default)]
pub struct Pass {
    /// Totals.
    pub report: RunReport,
    /// Overdue erasure cases over every tenant.
    pub overdue: u64,
    /// Tenants failing, blocked or with overdue erasures.
    pub tenants: Vec<TenantRetentionState>,
    /// Tenants whose run failed.
    pub failed: u64,
    /// Tenants whose audit log was not consistent with an earlier head.
    pub inconsistent: u64,
    /// What to tell.
    pub events: Vec<Event>,
}

async fn run_all<M: RetentionMesh>(
    ctx: &Context<M>,
    spec: &RetentionPolicySpec,
    tenants: &[String],
    dry_run: bool,
    now: DateTime<Utc>,
) -> Pass {
    let mut pass = Pass { report: RunReport { dry_run, ..RunReport::default() }, ..Pass::default() };
    let mut budget = u64::from(spec.max_deletions_per_run);
    for tenant in tenants {
        let seen = ctx.audit_heads.lock().ok().and_then(|h| h.get(tenant).copied());
        let run = Run { periods: periods(spec), budget, dry_run, now };
        let t = purge::run(&ctx.mesh, tenant, run, seen).await;
        budget = budget.saturating_sub(t.deletions());
        if let (Some(head), false, Ok(mut heads)) = (t.head, dry_run, ctx.audit_heads.lock()) {
            heads.insert(tenant.clone(), head);
        }
        record(&mut pass, tenant, &t);
    }
    let r = &pass.report;
    let note = format!(
        "{} tenants{}: {} recordings purged, {} held, {} kept as consent evidence, {} consent records and {} audit entries pruned{}",
        r.tenants,
        if dry_run { " (dry run: would purge)" } else { "" },
        r.purged,
        r.held,
        r.kept_for_consent,
        r.consent_pruned,
        r.audit_pruned,
        if r.capped { "; capped by maxDeletionsPerRun, the rest in the next run" } else { "" },
    );
    pass.events.push(Event { reason: "RetentionRun", note, warning: false });
    pass
}

fn record(pass: &mut Pass, tenant: &str, t: &purge::TenantRun) {
    let r = &mut pass.report;
    r.tenants += 1;
    r.purged += t.purged;
    r.held += t.held;
    r.kept_for_consent += t.kept_for_consent;
    r.consent_pruned += t.consent_pruned;
    r.audit_pruned += t.audit_pruned;
    r.capped |= t.capped;
    pass.overdue += t.overdue_erasures;
    let mut problems = Vec::new();
    if let Some(f) = &t.failure {
        pass.failed += 1;
        problems.push(f.clone());
        pass.events.push(Event { reason: "PurgeFailed", note: format!("tenant {tenant}: {f}"), warning: true });
    }
    if t.audit_inconsistent {
        pass.inconsistent += 1;
        let why = "audit log not consistent with its earlier signed head; not pruned".to_owned();
        pass.events.push(Event { reason: "AuditInconsistent", note: format!("tenant {tenant}: {why}"), warning: true });
        problems.push(why);
    }
    if t.overdue_erasures > 0 {
        let note = format!("tenant {tenant}: {} erasure cases past their deadline", t.overdue_erasures);
        pass.events.push(Event { reason: "ErasureOverdue", note, warning: true });
    }
    if !problems.is_empty() || t.overdue_erasures > 0 {
        pass.tenants.push(TenantRetentionState {
            tenant: tenant.to_owned(),
            message: problems.join("; "),
            overdue_erasures: t.overdue_erasures,
        });
    }
}

/// The status after a run: totals, the first tenants with a problem, the
/// failure count for the backoff, and conditions.
fn summarize(status: &mut RetentionPolicyStatus, pass: &Pass, generation: Option<i64>, now: DateTime<Utc>) {
    let mut listed = pass.tenants.clone();
    listed.sort_by_key(|t| (t.message.is_empty(), t.tenant.clone()));
    status.tenants_omitted = listed.len().saturating_sub(MAX_LISTED) as u64;
    listed.truncate(MAX_LISTED);
    let names = |pred: &dyn Fn(&TenantRetentionState) -> bool| {
        listed.iter().filter(|t| pred(t)).take(5).map(|t| t.tenant.as_str()).collect::<Vec<_>>().join(", ")
    };
    let failing = names(&|t| !t.message.is_empty());
    let overdue = names(&|t| t.overdue_erasures > 0);
    status.tenants = listed.clone();
    status.last_run = Some(pass.report.clone());
    status.last_run_time = Some(stamp(now));
    status.overdue_erasures = pass.overdue;
    if pass.failed > 0 {
        status.failures += 1;
        status.last_failure_time = Some(stamp(now));
    } else {
        status.failures = 0;
        status.last_failure_time = None;
    }
    let c = &mut status.conditions;
    let r = &pass.report;
    let done = format!("{} tenants, {} recordings purged", r.tenants, r.purged);
    conditions::set(c, "Purging", false, ("RunFinished", done), generation, now);
    let blocked = if pass.inconsistent > 0 {
        ("AuditInconsistent", format!("{} tenants' audit logs inconsistent: {failing}", pass.inconsistent))
    } else {
        ("NotBlocked", "within the legal floors".to_owned())
    };
    conditions::set(c, "Blocked", pass.inconsistent > 0, blocked, generation, now);
    let erasures = if pass.overdue > 0 {
        ("ErasureOverdue", format!("{} erasure cases overdue: {overdue}", pass.overdue))
    } else {
        ("NoneOverdue", "no erasure case past its deadline".to_owned())
    };
    conditions::set(c, "ErasuresOverdue", pass.overdue > 0, erasures, generation, now);
    let ready = if pass.failed > 0 {
        (false, "RunFailed", format!("{} tenants failed: {failing}", pass.failed))
    } else if pass.inconsistent > 0 {
        (false, "AuditInconsistent", format!("{} tenants' audit logs inconsistent", pass.inconsistent))
    } else {
        let capped = if r.capped { "; capped, the rest in the next run" } else { "" };
        (true, "RunSucceeded", format!("{} tenants{capped}", r.tenants))
    };
    conditions::set(c, "Ready", ready.0, (ready.1, ready.2), generation, now);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::purge::TenantRun;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().expect("rfc3339")
    }

    fn condition<'a>(s: &'a RetentionPolicyStatus, type_: &str) -> (&'a str, &'a str) {
        let c = s.conditions.iter().find(|c| c.type_ == type_).expect("condition");
        (c.status.as_str(), c.reason.as_str())
    }

    #[test]
    fn a_run_reports_totals_failures_inconsistency_and_overdue_erasures() {
        let now = t("2026-12-02T03:00:00Z");
        let mut pass = Pass::default();
        let ok = TenantRun { purged: 3, held: 1, kept_for_consent: 2, consent_pruned: 4, ..TenantRun::default() };
        record(&mut pass, "t1", &ok);
        let overdue = TenantRun { overdue_erasures: 2, capped: true, ..TenantRun::default() };
        record(&mut pass, "t2", &overdue);
        let mut status = RetentionPolicyStatus::default();
        summarize(&mut status, &pass, Some(3), now);
        let r = status.last_run.clone().expect("report");
        assert_eq!(
            (r.tenants, r.purged, r.held, r.kept_for_consent, r.consent_pruned, r.capped),
            (2, 3, 1, 2, 4, true)
        );
        assert_eq!(condition(&status, "Ready"), ("True", "RunSucceeded"));
        assert_eq!(condition(&status, "ErasuresOverdue"), ("True", "ErasureOverdue"));
        assert_eq!(condition(&status, "Blocked"), ("False", "NotBlocked"));
        assert_eq!((status.overdue_erasures, status.failures), (2, 0));
        assert_eq!(status.tenants.len(), 1, "only the tenant with something to say");

        let failed = TenantRun { failure: Some("recordings: Unavailable: down".into()), ..TenantRun::default() };
        record(&mut pass, "t3", &failed);
        let forked = TenantRun { audit_inconsistent: true, ..TenantRun::default() };
        record(&mut pass, "t4", &forked);
        summarize(&mut status, &pass, Some(3), now);
        assert_eq!(condition(&status, "Ready"), ("False", "RunFailed"));
        assert_eq!(condition(&status, "Blocked"), ("True", "AuditInconsistent"));
        assert_eq!((status.failures, status.last_failure_time.as_deref()), (1, Some("2026-12-02T03:00:00Z")));
        assert_eq!(status.tenants[0].tenant, "t3", "failing tenants first");
        let reasons: Vec<&str> = pass.events.iter().map(|e| e.reason).collect();
        assert_eq!(reasons, ["ErasureOverdue", "PurgeFailed", "AuditInconsistent"]);
        summarize(&mut status, &pass, Some(3), now);
        assert_eq!(status.failures, 2, "failures in a row count up for the backoff");
    }

    #[test]
    fn listed_tenants_stay_bounded() {
        let mut pass = Pass::default();
        for i in 0..(MAX_LISTED + 7) {
            record(&mut pass, &format!("t{i:04}"), &TenantRun { overdue_erasures: 1, ..TenantRun::default() });
        }
        let mut status = RetentionPolicyStatus::default();
        summarize(&mut status, &pass, None, t("2026-12-02T03:00:00Z"));
        assert_eq!((status.tenants.len(), status.tenants_omitted), (MAX_LISTED, 7));
        assert_eq!(status.overdue_erasures, (MAX_LISTED + 7) as u64, "the total counts every tenant");
    }
}

//! One tenant's retention run: write the policy's periods into the
//! services (which refuse anything below their legal floors), purge
//! recordings and prune consent evidence within the run's deletion budget,
//! prune audit with its consistency checked before and after, and count
//! overdue erasure cases. Every call is idempotent, so a run cut short by
//! a restart is simply run again.

use chrono::{DateTime, Utc};
use guardline_audit_log::merkle::verify_consistency;

use crate::mesh::{Head, MeshError, Periods, RetentionMesh};

/// What a run did for one tenant (in a dry run: would do).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TenantRun {
    /// Recordings deleted.
    pub purged: u64,
    /// Due recordings kept under legal hold.
    pub held: u64,
    /// Due recordings kept as consent evidence.
    pub kept_for_consent: u64,
    /// Consent records deleted.
    pub consent_pruned: u64,
    /// Audit entries pruned.
    pub audit_pruned: u64,
    /// Whether the budget left due deletions for the next run.
    pub capped: bool,
    /// Erasure cases past their deadline.
    pub overdue_erasures: u64,
    /// What failed, naming the service, without personal data; the run
    /// stopped there for this tenant.
    pub failure: Option<String>,
    /// Whether audit's log was not consistent with an earlier head (the
    /// last run's, or the one just before the prune): reported as
    /// `Blocked`, and the tenant's audit log is not pruned while it lasts.
    pub audit_inconsistent: bool,
    /// Audit's head after the prune, for the next run to check against.
    pub head: Option<Head>,
}

impl TenantRun {
    /// Recordings and consent records deleted, counted against the budget.
    pub fn deletions(&self) -> u64 {
        self.purged + self.consent_pruned
    }
}

/// Whether audit's log at `after` extends the one at `before`, proven by
/// the service and checked here with `crates/audit-log`.
async fn consistent(mesh: &impl RetentionMesh, tenant: &str, before: Head, after: Head) -> Result<bool, MeshError> {
    if before.0 == 0 {
        return Ok(true);
    }
    if after.0 < before.0 {
        return Ok(false);
    }
    let path = if after.0 == before.0 { Vec::new() } else { mesh.audit_consistency(tenant, before.0, after.0).await? };
    Ok(verify_consistency((before.0, &before.1), (after.0, &after.1), &path))
}

/// How one run goes.
#[derive(Clone, Copy, Debug)]
pub struct Run {
    /// The policy's periods.
    pub periods: Periods,
    /// Deletions of recordings and consent records left in this run.
    pub budget: u64,
    /// Count only: write and delete nothing.
    pub dry_run: bool,
    /// The operator's clock.
    pub now: DateTime<Utc>,
}

/// Runs retention for `tenant`; `seen` is audit's head after the tenant's
/// last run, when this operator remembers one.
pub async fn run(mesh: &impl RetentionMesh, tenant: &str, r: Run, seen: Option<Head>) -> TenantRun {
    let mut out = TenantRun::default();
    if let Err(e) = steps(mesh, tenant, r, seen, &mut out).await {
        out.failure = Some(e.to_string());
    }
    out
}

async fn steps(
    mesh: &impl RetentionMesh,
    tenant: &str,
    Run { periods, budget, dry_run, now }: Run,
    seen: Option<Head>,
    out: &mut TenantRun,
) -> Result<(), MeshError> {
    if !dry_run {
        mesh.write_periods(tenant, periods).await?;
    }
    // A budget of zero means "none left", never the services' "no limit".
    let limit = |left: u64| u32::try_from(left).unwrap_or(u32::MAX);
    if budget > 0 {
        let p = mesh.purge_recordings(tenant, limit(budget), dry_run).await?;
        (out.purged, out.held, out.kept_for_consent, out.capped) = (p.purged, p.held, p.kept_for_consent, p.more);
    } else {
        out.capped = true;
    }
    let left = budget.saturating_sub(out.purged);
    if left > 0 {
        let (pruned, more) = mesh.prune_consent(tenant, limit(left), dry_run).await?;
        out.consent_pruned = pruned;
        out.capped |= more;
    } else {
        out.capped = true;
    }
    let before = mesh.audit_head(tenant).await?;
    if let Some(seen) = seen {
        out.audit_inconsistent = !consistent(mesh, tenant, seen, before).await?;
    }
    if !out.audit_inconsistent {
        out.audit_pruned = mesh.prune_audit(tenant, dry_run).await?;
        let after = mesh.audit_head(tenant).await?;
        out.audit_inconsistent = !consistent(mesh, tenant, before, after).await?;
        out.head = Some(after);
    }
    out.overdue_erasures = mesh.overdue_erasures(tenant).await?;
    if out.overdue_erasures > 0 && !dry_run {
        // One report per tenant and day: a retried run does not raise it twice.
        let id = format!("erasure-overdue-{tenant}-{}", now.format("%Y%m%d"));
        mesh.report_overdue(tenant, out.overdue_erasures, &id, now).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use guardline_audit_log::merkle::{Hash, Tree, leaf_hash};

    use super::*;
    use crate::mesh::{Purged, Tenants};

    fn tree(leaves: &[&str]) -> Tree {
        Tree::from_leaves(leaves.iter().map(|l| leaf_hash(l.as_bytes())))
    }

    /// Audit serving `log`'s head and proofs; the other services answer
    /// a fixed purge. Records what was called.
    struct Fake {
        log: Tree,
        calls: Mutex<Vec<String>>,
    }

    impl Fake {
        fn new(log: Tree) -> Self {
            Self { log, calls: Mutex::new(Vec::new()) }
        }
        fn called(&self, what: String) {
            self.calls.lock().expect("calls").push(what);
        }
        fn calls(&self) -> Vec<String> {
            self.calls.lock().expect("calls").clone()
        }
    }

    impl Tenants for Fake {
        async fn list_tenants(&self) -> Result<Vec<String>, MeshError> {
            Ok(vec!["t1".into()])
        }
    }

    impl RetentionMesh for Fake {
        async fn write_periods(&self, _: &str, _: Periods) -> Result<(), MeshError> {
            self.called("write".into());
            Ok(())
        }
        async fn purge_recordings(&self, _: &str, limit: u32, dry_run: bool) -> Result<Purged, MeshError> {
            self.called(format!("purge {limit} {dry_run}"));
            Ok(Purged { purged: u64::from(limit.min(3)), held: 1, kept_for_consent: 1, more: limit < 3 })
        }
        async fn prune_consent(&self, _: &str, limit: u32, dry_run: bool) -> Result<(u64, bool), MeshError> {
            self.called(format!("consent {limit} {dry_run}"));
            Ok((u64::from(limit.min(2)), limit < 2))
        }
        async fn audit_head(&self, _: &str) -> Result<Head, MeshError> {
            let n = self.log.len();
            Ok((n, self.log.root(n).expect("root")))
        }
        async fn audit_consistency(&self, _: &str, first: u64, second: u64) -> Result<Vec<Hash>, MeshError> {
            Ok(self.log.consistency_proof(first, second).expect("proof"))
        }
        async fn prune_audit(&self, _: &str, dry_run: bool) -> Result<u64, MeshError> {
            self.called(format!("prune audit {dry_run}"));
            Ok(4)
        }
        async fn overdue_erasures(&self, _: &str) -> Result<u64, MeshError> {
            Ok(1)
        }
        async fn report_overdue(&self, _: &str, count: u64, id: &str, _: DateTime<Utc>) -> Result<(), MeshError> {
            self.called(format!("report {count} {id}"));
            Ok(())
        }
    }

    fn run_with(budget: u64, dry_run: bool) -> Run {
        let periods = Periods { recordings_days: 30, consent_days: 1461, audit_days: 365 };
        Run { periods, budget, dry_run, now: "2026-12-02T03:00:00Z".parse().expect("time") }
    }

    #[tokio::test]
    async fn a_run_spends_one_budget_on_recordings_then_consent() {
        let mesh = Fake::new(tree(&["a", "b", "c"]));
        let out = run(&mesh, "t1", run_with(4, false), None).await;
        assert_eq!((out.purged, out.consent_pruned, out.audit_pruned, out.capped), (3, 1, 4, true));
        assert_eq!(out.deletions(), 4);
        assert_eq!(
            mesh.calls(),
            ["write", "purge 4 false", "consent 1 false", "prune audit false", "report 1 erasure-overdue-t1-20261202"]
        );
        // No budget left: nothing is deleted, not even "without a limit".
        let mesh = Fake::new(tree(&["a"]));
        let out = run(&mesh, "t1", run_with(0, false), None).await;
        assert!(out.capped && out.deletions() == 0);
        assert!(!mesh.calls().iter().any(|c| c.starts_with("purge") || c.starts_with("consent")), "{:?}", mesh.calls());
    }

    #[tokio::test]
    async fn a_dry_run_writes_nothing_and_reports_nothing() {
        let mesh = Fake::new(tree(&["a", "b"]));
        let out = run(&mesh, "t1", run_with(10, true), None).await;
        assert_eq!((out.purged, out.consent_pruned, out.overdue_erasures), (3, 2, 1));
        assert_eq!(mesh.calls(), ["purge 10 true", "consent 7 true", "prune audit true"]);
    }

    #[tokio::test]
    async fn a_log_that_forked_since_the_last_run_is_not_pruned() {
        let now = tree(&["a", "b", "c", "d"]);
        // What the last run saw: the same log extended is consistent.
        let seen = (2, now.root(2).expect("root"));
        let mesh = Fake::new(now.clone());
        let out = run(&mesh, "t1", run_with(10, false), Some(seen)).await;
        assert!(!out.audit_inconsistent);
        assert_eq!(out.head, Some((4, now.root(4).expect("root"))));
        // A head of a log whose second entry was rewritten since.
        let forked = tree(&["a", "x"]);
        let seen = (2, forked.root(2).expect("root"));
        let mesh = Fake::new(now.clone());
        let out = run(&mesh, "t1", run_with(10, false), Some(seen)).await;
        assert!(out.audit_inconsistent, "rewritten history is caught");
        assert!(!mesh.calls().iter().any(|c| c.starts_with("prune audit")), "and not pruned: {:?}", mesh.calls());
        // A log shorter than it was: truncated.
        let mesh = Fake::new(tree(&["a"]));
        let out = run(&mesh, "t1", run_with(10, false), Some((2, now.root(2).expect("root")))).await;
        assert!(out.audit_inconsistent, "truncation is caught");
    }
}

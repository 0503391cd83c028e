//! What a `RetentionPolicy` asks for next, as pure functions: whether a
//! run is due (by its cron schedule, counted from the last run, or on
//! request), and which of its periods fall below the services' legal
//! floors (which the services refuse, and the operator reports as a
//! `Blocked` condition naming the field instead of calling them).

use chrono::{DateTime, Utc};

use crate::crd::{RetentionPolicySpec, RetentionPolicyStatus};
use crate::schedule::{SpecError, next_run, retry_at};

/// Consent evidence is kept at least three years after the consent ends.
pub const CONSENT_FLOOR_DAYS: u32 = 3 * 365;
/// Audit entries are kept at least 180 days.
pub const AUDIT_FLOOR_DAYS: u32 = 180;

/// The next thing a retention policy does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunStep {
    /// Nothing until `at`.
    NotDue {
        /// The next scheduled run.
        at: DateTime<Utc>,
    },
    /// Due, but suspended.
    Suspended,
    /// Run now; with `dry_run`, report what would be purged and delete nothing.
    Run {
        /// Report only.
        dry_run: bool,
    },
}

/// The periods of `spec` below the services' floors, each naming its field.
pub fn below_floors(spec: &RetentionPolicySpec) -> Vec<SpecError> {
    let mut out = Vec::new();
    if spec.consent_evidence_days < CONSENT_FLOOR_DAYS {
        out.push(SpecError {
            field: "spec.consentEvidenceDays",
            reason: format!("at least {CONSENT_FLOOR_DAYS} days after the consent ends (the lead vault refuses less)"),
        });
    }
    if spec.audit_days < AUDIT_FLOOR_DAYS {
        out.push(SpecError {
            field: "spec.auditDays",
            reason: format!("at least {AUDIT_FLOOR_DAYS} days (audit refuses less)"),
        });
    }
    out
}

/// Whether a run is due at `now`: the schedule's first match after the
/// last run (after `created` if none ran yet), a retry of a failed run once
/// its backoff has passed, or a `run-now` not yet acted on.
pub fn next(
    spec: &RetentionPolicySpec,
    status: &RetentionPolicyStatus,
    created: DateTime<Utc>,
    run_now: bool,
    now: DateTime<Utc>,
) -> Result<RunStep, SpecError> {
    let parse = |t: &Option<String>| t.as_deref().and_then(|t| t.parse::<DateTime<Utc>>().ok());
    let last = parse(&status.last_run_time).unwrap_or(created);
    let mut at = next_run("spec.schedule", &spec.schedule, last)?;
    if status.failures > 0 {
        let failed = parse(&status.last_failure_time).unwrap_or(last);
        at = at.min(retry_at(status.failures, failed));
    }
    if !run_now && now < at {
        return Ok(RunStep::NotDue { at });
    }
    Ok(if spec.suspend { RunStep::Suspended } else { RunStep::Run { dry_run: spec.dry_run } })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().expect("rfc3339")
    }

    fn spec() -> RetentionPolicySpec {
        RetentionPolicySpec {
            tenant: None,
            recordings_days: 1095,
            consent_evidence_days: 1460,
            audit_days: 2555,
            schedule: "0 3 * * *".into(),
            max_deletions_per_run: 10_000,
            suspend: false,
            dry_run: false,
        }
    }

    fn ran(at: &str) -> RetentionPolicyStatus {
        RetentionPolicyStatus { last_run_time: Some(at.into()), ..Default::default() }
    }

    #[test]
    fn a_run_is_due_at_the_first_match_after_the_last_run() {
        let created = t("2026-11-30T12:00:00Z");
        let last = ran("2026-12-01T03:00:00Z");
        assert_eq!(
            next(&spec(), &last, created, false, t("2026-12-02T02:59:59Z")),
            Ok(RunStep::NotDue { at: t("2026-12-02T03:00:00Z") })
        );
        assert_eq!(
            next(&spec(), &last, created, false, t("2026-12-02T03:00:00Z")),
            Ok(RunStep::Run { dry_run: false })
        );
        // Missed runs (an operator down for days) make one run, not a backlog.
        assert_eq!(
            next(&spec(), &last, created, false, t("2026-12-09T10:00:00Z")),
            Ok(RunStep::Run { dry_run: false })
        );
        // Never ran: counted from the policy's creation.
        let never = RetentionPolicyStatus::default();
        assert_eq!(
            next(&spec(), &never, created, false, t("2026-11-30T13:00:00Z")),
            Ok(RunStep::NotDue { at: t("2026-12-01T03:00:00Z") })
        );
    }

    #[test]
    fn run_now_suspend_and_dry_run() {
        let created = t("2026-11-30T12:00:00Z");
        let last = ran("2026-12-01T03:00:00Z");
        let early = t("2026-12-01T04:00:00Z");
        assert_eq!(next(&spec(), &last, created, true, early), Ok(RunStep::Run { dry_run: false }), "run-now");
        let suspended = RetentionPolicySpec { suspend: true, ..spec() };
        assert_eq!(next(&suspended, &last, created, true, early), Ok(RunStep::Suspended));
        let dry = RetentionPolicySpec { dry_run: true, ..spec() };
        assert_eq!(next(&dry, &last, created, true, early), Ok(RunStep::Run { dry_run: true }));
        let bad = RetentionPolicySpec { schedule: "daily at three".into(), ..spec() };
        assert_eq!(next(&bad, &last, created, false, early).expect_err("not cron").field, "spec.schedule");
    }

    #[test]
    fn a_failed_run_is_retried_with_backoff_before_the_next_schedule() {
        let created = t("2026-11-30T12:00:00Z");
        let failed = RetentionPolicyStatus {
            last_run_time: Some("2026-12-01T03:00:00Z".into()),
            failures: 3,
            last_failure_time: Some("2026-12-01T03:00:00Z".into()),
            ..Default::default()
        };
        // Three failures in a row: four minutes.
        assert_eq!(
            next(&spec(), &failed, created, false, t("2026-12-01T03:03:59Z")),
            Ok(RunStep::NotDue { at: t("2026-12-01T03:04:00Z") })
        );
        assert_eq!(
            next(&spec(), &failed, created, false, t("2026-12-01T03:04:00Z")),
            Ok(RunStep::Run { dry_run: false })
        );
        // A backoff longer than the schedule waits for the schedule.
        let many = RetentionPolicyStatus { failures: 12, ..failed };
        assert_eq!(
            next(&spec(), &many, created, false, t("2026-12-01T04:00:00Z")),
            Ok(RunStep::NotDue { at: t("2026-12-02T03:00:00Z") })
        );
    }

    #[test]
    fn periods_below_the_legal_floors_are_named() {
        assert!(below_floors(&spec()).is_empty());
        let short = RetentionPolicySpec { consent_evidence_days: 365, audit_days: 90, ..spec() };
        let fields: Vec<&str> = below_floors(&short).iter().map(|e| e.field).collect();
        assert_eq!(fields, ["spec.consentEvidenceDays", "spec.auditDays"]);
        let at_floor =
            RetentionPolicySpec { consent_evidence_days: CONSENT_FLOOR_DAYS, audit_days: AUDIT_FLOOR_DAYS, ..spec() };
        assert!(below_floors(&at_floor).is_empty(), "the floors themselves are allowed");
    }
}

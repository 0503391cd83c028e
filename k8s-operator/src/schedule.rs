//! Time arithmetic of the operator, pure: rotation periods, cron
//! schedules and the per-tenant backoff after failures.

use chrono::{DateTime, Duration, Utc};

/// A bad period or schedule; names the field.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{field}: {reason}")]
pub struct SpecError {
    /// The field's path, e.g. `spec.rotationPeriod`.
    pub field: &'static str,
    /// Why.
    pub reason: String,
}

/// `720h` or `90d`: whole hours or days, at least an hour.
pub fn parse_period(field: &'static str, s: &str) -> Result<Duration, SpecError> {
    let bad = |reason: &str| SpecError { field, reason: reason.into() };
    let (n, unit) = s.split_at(s.len().saturating_sub(1));
    let n: i64 = n.parse().map_err(|_| bad("whole hours or days, e.g. 720h or 90d"))?;
    let period = match unit {
        "h" => Duration::hours(n),
        "d" => Duration::days(n),
        _ => return Err(bad("whole hours or days, e.g. 720h or 90d")),
    };
    if period < Duration::hours(1) {
        return Err(bad("at least an hour"));
    }
    if period > Duration::days(3650) {
        return Err(bad("at most ten years"));
    }
    Ok(period)
}

/// The first time after `after` that the cron expression `expr` (UTC,
/// five fields) matches.
pub fn next_run(field: &'static str, expr: &str, after: DateTime<Utc>) -> Result<DateTime<Utc>, SpecError> {
    let bad = |reason: String| SpecError { field, reason };
    let cron: croner::Cron = expr.parse().map_err(|e| bad(format!("not a cron expression ({e})")))?;
    cron.find_next_occurrence(&after, false).map_err(|e| bad(format!("never matches ({e})")))
}

/// The first retry after a failure waits a minute; each failure in a row
/// doubles it, up to 32 hours (cert-manager's cap).
pub fn backoff(failures: u32) -> Duration {
    let minutes = 1i64 << failures.saturating_sub(1).min(11);
    Duration::minutes(minutes).min(Duration::hours(32))
}

/// When a tenant that failed `failures` times in a row, last at `last`,
/// may be retried.
pub fn retry_at(failures: u32, last: DateTime<Utc>) -> DateTime<Utc> {
    last + backoff(failures)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().expect("rfc3339")
    }

    #[test]
    fn periods_are_whole_hours_or_days_of_at_least_an_hour() {
        assert_eq!(parse_period("spec.rotationPeriod", "720h"), Ok(Duration::hours(720)));
        assert_eq!(parse_period("spec.rotationPeriod", "90d"), Ok(Duration::days(90)));
        assert_eq!(parse_period("spec.rotationPeriod", "1h"), Ok(Duration::hours(1)));
        for bad in ["0h", "1m", "60m", "", "h", "-1h", "1.5h", "90", "3651d"] {
            let e = parse_period("spec.rotationPeriod", bad).expect_err(bad);
            assert_eq!(e.field, "spec.rotationPeriod", "{bad}");
        }
    }

    #[test]
    fn cron_schedules_run_at_their_next_match_in_utc() {
        let after = t("2026-12-02T03:00:00Z");
        assert_eq!(next_run("spec.schedule", "0 3 * * *", after), Ok(t("2026-12-03T03:00:00Z")));
        assert_eq!(next_run("spec.schedule", "30 * * * *", after), Ok(t("2026-12-02T03:30:00Z")));
        // Sundays at 02:00: 2026-12-06 is a Sunday.
        assert_eq!(next_run("spec.schedule", "0 2 * * 0", after), Ok(t("2026-12-06T02:00:00Z")));
        let e = next_run("spec.schedule", "every night", after).expect_err("not cron");
        assert_eq!(e.field, "spec.schedule");
    }

    #[test]
    fn backoff_doubles_from_a_minute_to_32_hours() {
        assert_eq!(backoff(1), Duration::minutes(1));
        assert_eq!(backoff(2), Duration::minutes(2));
        assert_eq!(backoff(5), Duration::minutes(16));
        assert_eq!(backoff(12), Duration::hours(32));
        assert_eq!(backoff(u32::MAX), Duration::hours(32));
        assert_eq!(retry_at(3, t("2026-12-02T03:00:00Z")), t("2026-12-02T03:04:00Z"));
    }
}

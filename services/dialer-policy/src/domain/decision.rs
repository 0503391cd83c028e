//! One decision from many rules: any DENY denies; otherwise any DEFER defers
//! to the latest of the deferrals' earliest times; otherwise ALLOW. Every
//! rule evaluated is kept, in order, with its readable reason.

use chrono::{DateTime, Utc};

/// A rule's or the decision's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The call may be placed.
    Allow,
    /// The call must not be placed.
    Deny,
    /// Not now; at the earliest at the given instant (none known).
    Defer(Option<DateTime<Utc>>),
}

/// One rule's evaluation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleResult {
    /// Rule name, e.g. `dnc.national`, `window.us-tcpa`, `cap.callee.24h`.
    pub rule: String,
    /// Its outcome.
    pub outcome: Verdict,
    /// Readable reason; never a phone number.
    pub reason: String,
}

impl RuleResult {
    /// An ALLOW.
    pub fn allow(rule: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { rule: rule.into(), outcome: Verdict::Allow, reason: reason.into() }
    }
    /// A DENY.
    pub fn deny(rule: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { rule: rule.into(), outcome: Verdict::Deny, reason: reason.into() }
    }
    /// A DEFER until `until`.
    pub fn defer(rule: impl Into<String>, until: Option<DateTime<Utc>>, reason: impl Into<String>) -> Self {
        Self { rule: rule.into(), outcome: Verdict::Defer(until), reason: reason.into() }
    }
}

/// A cap rule: `count` calls already in the window against `limit`.
pub fn cap(rule: &str, count: u64, limit: u64, window: &str) -> RuleResult {
    let reason = format!("{count} of {limit} calls in the last {window}");
    if count >= limit { RuleResult::deny(rule, reason) } else { RuleResult::allow(rule, reason) }
}

/// Combines rule results into the decision.
pub fn combine(rules: &[RuleResult]) -> Verdict {
    if rules.iter().any(|r| r.outcome == Verdict::Deny) {
        return Verdict::Deny;
    }
    let mut deferred = false;
    let mut until: Option<DateTime<Utc>> = None;
    for r in rules {
        if let Verdict::Defer(t) = r.outcome {
            deferred = true;
            until = match (until, t) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
        }
    }
    if deferred { Verdict::Defer(until) } else { Verdict::Allow }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(h: u32) -> Option<DateTime<Utc>> {
        chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 11, 28, h, 0, 0).single()
    }

    #[test]
    fn deny_beats_defer_and_defer_waits_for_the_latest() {
        let allow = RuleResult::allow("a", "ok");
        assert_eq!(combine(std::slice::from_ref(&allow)), Verdict::Allow);
        assert_eq!(combine(&[]), Verdict::Allow);
        let d1 = RuleResult::defer("w", at(9), "closed");
        let d2 = RuleResult::defer("h", at(11), "throttled");
        assert_eq!(combine(&[allow.clone(), d1.clone(), d2.clone()]), Verdict::Defer(at(11)));
        assert_eq!(combine(&[d1, RuleResult::deny("dnc", "listed"), d2]), Verdict::Deny);
    }

    #[test]
    fn a_cap_denies_at_its_limit_not_before() {
        assert_eq!(cap("cap.callee.24h", 2, 3, "24 h").outcome, Verdict::Allow);
        let at_limit = cap("cap.callee.24h", 3, 3, "24 h");
        assert_eq!((at_limit.outcome, at_limit.reason.as_str()), (Verdict::Deny, "3 of 3 calls in the last 24 h"));
    }
}

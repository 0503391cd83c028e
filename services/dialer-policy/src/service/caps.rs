//! The frequency caps: every counter that applies to a call, counted in one
//! aggregate query over the tenant's attempts, for the decision and again,
//! under locks, for the attempt.

use chrono::{DateTime, Duration, Utc};

use crate::domain::policy::Effective;
use crate::error::Result;
pub use crate::store::attempts::Counted;
use crate::store::{Conn, attempts, attempts::Of};

/// A cap that applies: (rule, count, limit, window label).
pub type CapCount = (&'static str, u64, u64, &'static str);

/// The counters that apply at `at` through `c`: the policy's caps, and the
/// packs' per-subject 24-hour cap `subject_cap` (0: none).
pub(crate) async fn cap_counts(
    c: &impl Conn,
    k: &Counted<'_>,
    at: DateTime<Utc>,
    p: &Effective,
    subject_cap: u32,
) -> Result<Vec<CapCount>> {
    let checks: [(&'static str, Of, u32, Duration, &'static str); 6] = [
        ("cap.callee.24h", Of::Callee, p.callee_max_24h, Duration::hours(24), "24 h"),
        ("cap.callee.30d", Of::Callee, p.callee_max_30d, Duration::days(30), "30 days"),
        ("cap.subject.24h", Of::Subject, subject_cap, Duration::hours(24), "24 h on this subject"),
        ("cap.agent.1h", Of::Agent, p.agent_max_per_hour, Duration::hours(1), "hour"),
        ("cap.line.1h", Of::Line, p.line_max_per_hour, Duration::hours(1), "hour"),
        ("cap.line.24h", Of::Line, p.line_max_per_day, Duration::hours(24), "24 h"),
    ];
    if checks.iter().all(|(_, _, limit, ..)| *limit == 0) {
        return Ok(Vec::new());
    }
    let counters = checks.map(|(_, of, limit, window, _)| (limit > 0).then_some((of, window)));
    let counts = attempts::counts(c, k, at, counters).await?;
    Ok(checks
        .iter()
        .zip(counts)
        .filter(|((_, _, limit, ..), _)| *limit > 0)
        .map(|((rule, _, limit, _, label), count)| (*rule, count, u64::from(*limit), *label))
        .collect())
}

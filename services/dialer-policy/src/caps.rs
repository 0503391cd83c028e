//! The frequency caps: every counter that applies to a call, counted in one
//! aggregate query over the tenant's attempts (conditional sums), for the
//! decision and again, under locks, for the attempt.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ColumnTrait, Condition, EntityTrait, FromQueryResult, QueryFilter, QuerySelect};

use crate::attempts::count_if;
use crate::domain::policy::Effective;
use crate::error::Result;
use crate::service::Dialer;
use crate::store::attempt::{self, Column as A};

/// Whose attempts a call's caps count.
#[derive(Clone, Copy, Debug)]
pub struct Counted<'a> {
    /// Tenant.
    pub tenant: &'a str,
    /// The callee's blind index.
    pub callee: &'a [u8],
    /// Caller line.
    pub line: &'a str,
    /// Agent (never empty: see `Caller::agent`).
    pub agent: &'a str,
    /// The campaign's subject.
    pub subject: &'a str,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Of {
    Callee,
    Subject,
    Agent,
    Line,
}

/// The six counters, always selected (those whose limit is 0 are ignored).
#[derive(Debug, FromQueryResult)]
struct Counts {
    c0: Option<i64>,
    c1: Option<i64>,
    c2: Option<i64>,
    c3: Option<i64>,
    c4: Option<i64>,
    c5: Option<i64>,
}

/// A cap that applies: (rule, count, limit, window label).
pub type CapCount = (&'static str, u64, u64, &'static str);

impl Dialer {
    /// The counters that apply at `at`: the policy's caps, and the packs'
    /// per-subject 24-hour cap `subject_cap` (0: none).
    pub(crate) async fn cap_counts_on(
        &self,
        conn: &impl sea_orm::ConnectionTrait,
        c: &Counted<'_>,
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
        let key = |of: Of| match of {
            Of::Callee => Condition::all().add(A::Callee.eq(c.callee.to_vec())),
            Of::Subject => Condition::all().add(A::Callee.eq(c.callee.to_vec())).add(A::Subject.eq(c.subject)),
            Of::Agent => Condition::all().add(A::AgentId.eq(c.agent)),
            Of::Line => Condition::all().add(A::CallerLine.eq(c.line)),
        };
        // Only the rows some counter that applies needs.
        let mut any = Condition::any();
        for (_, of, ..) in checks.iter().filter(|(_, _, limit, ..)| *limit > 0) {
            any = any.add(key(*of));
        }
        let widest = checks.iter().filter(|c| c.2 > 0).map(|c| c.3).max().unwrap_or_default();
        let mut q = attempt::Entity::find()
            .select_only()
            .filter(A::TenantId.eq(c.tenant))
            .filter(A::PlacedAt.gt(at - widest))
            .filter(A::PlacedAt.lte(at))
            .filter(any);
        for (i, (_, of, _, window, _)) in checks.iter().enumerate() {
            q = q.expr_as(count_if(key(*of).add(A::PlacedAt.gt(at - *window))), format!("c{i}"));
        }
        let row = q.into_model::<Counts>().one(conn).await?;
        let counts = row.map_or([0; 6], |r| [r.c0, r.c1, r.c2, r.c3, r.c4, r.c5].map(|v| v.unwrap_or(0).max(0)));
        Ok(checks
            .iter()
            .zip(counts)
            .filter(|((_, _, limit, ..), _)| *limit > 0)
            .map(|((rule, _, limit, _, label), count)| (*rule, count as u64, u64::from(*limit), *label))
            .collect())
    }
}

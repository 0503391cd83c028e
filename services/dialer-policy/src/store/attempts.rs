//! Decisions, call attempts and line states: the rows the frequency caps
//! and line health count, each counter family in one aggregate query
//! (conditional sums), and the locks that serialise writers of the same
//! callee, line and agent on PostgreSQL.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Alias, Expr, Func, SimpleExpr};
use sea_orm::{
    ActiveValue, ColumnTrait, Condition as Cond, ConnectionTrait, DatabaseBackend, EntityTrait, FromQueryResult,
    QueryFilter, QueryOrder, QuerySelect, Statement,
};

use super::{Conn, Tx, attempt, decision, line_state};
use crate::domain::health::{LineStats, SHORT_CALL_SECONDS};
use crate::error::Result;

/// How a call ended, as stored.
pub mod result {
    /// Answered.
    pub const ANSWERED: &str = "answered";
    /// Not answered.
    pub const NO_ANSWER: &str = "no_answer";
    /// Busy.
    pub const BUSY: &str = "busy";
    /// The callee complained.
    pub const COMPLAINT: &str = "complaint";
    /// The callee asked not to be called again.
    pub const OPT_OUT: &str = "opt_out";
}

/// Serialises writers of the same keys on PostgreSQL (SQLite's writing
/// transactions are already exclusive).
pub async fn lock(tx: &Tx, keys: &[String]) -> Result<()> {
    if tx.conn().get_database_backend() != DatabaseBackend::Postgres {
        return Ok(());
    }
    let mut keys = keys.to_vec();
    keys.sort();
    keys.dedup();
    for k in keys {
        tx.conn()
            .execute_raw(Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                [k.into()],
            ))
            .await?;
    }
    Ok(())
}

/// `SUM(CASE WHEN cond THEN 1 ELSE 0 END)`: a count of the rows matching
/// `cond`, so that many counters come back from one query.
fn count_if(cond: Cond) -> SimpleExpr {
    // A cast keeps the sum an integer on both SQLite and PostgreSQL
    // (PostgreSQL's SUM of integers is numeric otherwise).
    Func::cast_as(Func::sum(Expr::case(cond, 1).finally(0)), Alias::new("bigint")).into()
}

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

/// Which of a call's parties a counter counts the attempts of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Of {
    /// The callee.
    Callee,
    /// The callee, on this subject.
    Subject,
    /// The agent.
    Agent,
    /// The caller line.
    Line,
}

/// The six counters, always selected.
#[derive(Debug, FromQueryResult)]
struct Counts {
    c0: Option<i64>,
    c1: Option<i64>,
    c2: Option<i64>,
    c3: Option<i64>,
    c4: Option<i64>,
    c5: Option<i64>,
}

/// Attempts of `of` in the `window` before `at`, for six `(of, window)`
/// counters, in one query. `None` counters are not counted (0).
pub async fn counts(
    c: &impl Conn,
    k: &Counted<'_>,
    at: DateTime<Utc>,
    counters: [Option<(Of, Duration)>; 6],
) -> Result<[u64; 6]> {
    let key = |of: Of| match of {
        Of::Callee => Cond::all().add(attempt::Column::Callee.eq(k.callee.to_vec())),
        Of::Subject => {
            Cond::all().add(attempt::Column::Callee.eq(k.callee.to_vec())).add(attempt::Column::Subject.eq(k.subject))
        }
        Of::Agent => Cond::all().add(attempt::Column::AgentId.eq(k.agent)),
        Of::Line => Cond::all().add(attempt::Column::CallerLine.eq(k.line)),
    };
    let Some(widest) = counters.iter().flatten().map(|(_, w)| *w).max() else { return Ok([0; 6]) };
    // Only the rows some counter needs.
    let mut any = Cond::any();
    for (of, _) in counters.iter().flatten() {
        any = any.add(key(*of));
    }
    let mut q = attempt::Entity::find()
        .select_only()
        .filter(attempt::Column::TenantId.eq(k.tenant))
        .filter(attempt::Column::PlacedAt.gt(at - widest))
        .filter(attempt::Column::PlacedAt.lte(at))
        .filter(any);
    for (i, counter) in counters.iter().enumerate() {
        let cond = match counter {
            Some((of, window)) => key(*of).add(attempt::Column::PlacedAt.gt(at - *window)),
            None => Cond::all().add(Expr::value(false)),
        };
        q = q.expr_as(count_if(cond), format!("c{i}"));
    }
    let row = q.into_model::<Counts>().one(c.conn()).await?;
    Ok(row.map_or([0; 6], |r| [r.c0, r.c1, r.c2, r.c3, r.c4, r.c5].map(|v| v.unwrap_or(0).max(0) as u64)))
}

type Counts9 = (
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

/// A line's counters at `at`, in one aggregate query over the tenant's
/// attempts of the last eight days.
pub async fn line_stats(c: &impl Conn, tenant: &str, line: &str, at: DateTime<Utc>) -> Result<LineStats> {
    use attempt::Column as A;
    let (hour, day) = (at - Duration::hours(1), at - Duration::hours(24));
    let this = || Cond::all().add(A::CallerLine.eq(line));
    let recent = || this().add(A::PlacedAt.gt(day)).add(A::Result.ne(""));
    let answered = || A::Result.eq(result::ANSWERED);
    let counts: [Cond; 9] = [
        this().add(A::PlacedAt.gt(hour)),
        recent(),
        recent().add(answered()),
        recent().add(answered()).add(A::DurationSeconds.lt(SHORT_CALL_SECONDS as i32)),
        recent().add(A::Result.is_in([result::COMPLAINT, result::OPT_OUT])),
        this().add(A::PlacedAt.lte(day)).add(A::Result.ne("")),
        this().add(A::PlacedAt.lte(day)).add(answered()),
        Cond::all().add(A::CallerLine.ne(line)).add(A::PlacedAt.gt(day)).add(A::Result.ne("")),
        Cond::all().add(A::CallerLine.ne(line)).add(A::PlacedAt.gt(day)).add(answered()),
    ];
    let mut q = attempt::Entity::find()
        .select_only()
        .filter(A::TenantId.eq(tenant))
        .filter(A::PlacedAt.gt(at - Duration::days(8)))
        .filter(A::PlacedAt.lte(at));
    for (i, cond) in counts.into_iter().enumerate() {
        q = q.expr_as(count_if(cond), format!("c{i}"));
    }
    let row = q.into_tuple::<Counts9>().one(c.conn()).await?.unwrap_or_default();
    let n = |v: Option<i64>| v.unwrap_or(0).max(0) as u64;
    Ok(LineStats {
        attempts_last_hour: n(row.0),
        recent_attempts: n(row.1),
        recent_answered: n(row.2),
        recent_short: n(row.3),
        recent_complaints: n(row.4),
        baseline_attempts: n(row.5),
        baseline_answered: n(row.6),
        peer_attempts: n(row.7),
        peer_answered: n(row.8),
    })
}

/// The times of a line's attempts in the hour before `at`, oldest first.
pub async fn line_hour(c: &impl Conn, tenant: &str, line: &str, at: DateTime<Utc>) -> Result<Vec<DateTime<Utc>>> {
    use attempt::Column as A;
    Ok(attempt::Entity::find()
        .filter(A::TenantId.eq(tenant))
        .filter(A::CallerLine.eq(line))
        .filter(A::PlacedAt.gt(at - Duration::hours(1)))
        .filter(A::PlacedAt.lte(at))
        .order_by_asc(A::PlacedAt)
        .select_only()
        .column(A::PlacedAt)
        .into_tuple()
        .all(c.conn())
        .await?)
}

/// A decision by id, whatever its tenant (the caller checks).
pub async fn decision(c: &impl Conn, id: &str) -> Result<Option<decision::Model>> {
    Ok(decision::Entity::find_by_id(id.to_owned()).one(c.conn()).await?)
}

/// Stores a decision.
pub async fn insert_decision(tx: &Tx, d: decision::Model) -> Result<()> {
    decision::Entity::insert(decision::ActiveModel::from(d)).exec(tx.conn()).await?;
    Ok(())
}

/// Stores an attempt and marks its decision used.
pub async fn insert_attempt(tx: &Tx, a: attempt::Model, decision_id: &str) -> Result<()> {
    attempt::Entity::insert(attempt::ActiveModel::from(a)).exec(tx.conn()).await?;
    decision::Entity::update(decision::ActiveModel {
        id: ActiveValue::Unchanged(decision_id.to_owned()),
        used: ActiveValue::Set(true),
        ..Default::default()
    })
    .exec(tx.conn())
    .await?;
    Ok(())
}

/// An attempt by id, whatever its tenant (the caller checks).
pub async fn attempt(c: &impl Conn, id: &str) -> Result<Option<attempt::Model>> {
    Ok(attempt::Entity::find_by_id(id.to_owned()).one(c.conn()).await?)
}

/// Records how an attempt ended.
pub async fn set_outcome(tx: &Tx, id: &str, result: &str, duration_seconds: u32) -> Result<()> {
    attempt::Entity::update(attempt::ActiveModel {
        id: ActiveValue::Unchanged(id.to_owned()),
        result: ActiveValue::Set(result.into()),
        duration_seconds: ActiveValue::Set(duration_seconds as i32),
        ..Default::default()
    })
    .exec(tx.conn())
    .await?;
    Ok(())
}

/// Whether a line is recorded as throttled.
pub async fn throttled(c: &impl Conn, tenant: &str, line: &str) -> Result<bool> {
    let row = line_state::Entity::find_by_id((tenant.to_owned(), line.to_owned())).one(c.conn()).await?;
    Ok(row.is_some_and(|r| r.throttled))
}

/// Records a line as throttled since `now`.
pub async fn set_throttled(tx: &Tx, tenant: &str, line: &str, now: DateTime<Utc>) -> Result<()> {
    line_state::Entity::delete_by_id((tenant.to_owned(), line.to_owned())).exec(tx.conn()).await?;
    line_state::Entity::insert(line_state::ActiveModel {
        tenant_id: ActiveValue::Set(tenant.into()),
        caller_line: ActiveValue::Set(line.into()),
        throttled: ActiveValue::Set(true),
        changed_at: ActiveValue::Set(now),
    })
    .exec(tx.conn())
    .await?;
    Ok(())
}

/// Forgets a line's throttled state.
pub async fn clear_throttled(c: &impl Conn, tenant: &str, line: &str) -> Result<()> {
    line_state::Entity::delete_by_id((tenant.to_owned(), line.to_owned())).exec(c.conn()).await?;
    Ok(())
}

//! Call attempts and outcomes: the rows the frequency caps and line health
//! count. An attempt is admitted only against a fresh ALLOW decision, and
//! the caps are checked again inside the writing transaction, serialised per
//! callee, line and agent, so parallel attempts never exceed a cap, whatever
//! the number of replicas.

use chrono::{DateTime, Duration, Utc};
use guardline_audit_client::EventBuilder;
use sea_orm::sea_query::{Expr, Func, SimpleExpr};
use sea_orm::{
    ActiveValue, ColumnTrait, Condition as Cond, ConnectionTrait, DatabaseBackend, DatabaseTransaction, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Statement,
};

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

/// `SUM(CASE WHEN cond THEN 1 ELSE 0 END)`: a count of the rows matching
/// `cond`, so that many counters come back from one query.
pub(crate) fn count_if(cond: Cond) -> SimpleExpr {
    // A cast keeps the sum an integer on both SQLite and PostgreSQL
    // (PostgreSQL's SUM of integers is numeric otherwise).
    Func::cast_as(Func::sum(Expr::case(cond, 1).finally(0)), sea_orm::sea_query::Alias::new("bigint")).into()
}

use crate::caps::Counted;
use crate::domain::decision::Verdict;
use crate::domain::health::{self, LineStats, SHORT_CALL_SECONDS};
use crate::domain::policy::Effective;
use crate::error::{Error, Result};
use crate::service::{Caller, DECISION_TTL, Dialer, PLAN_PREFIX};

/// How far the caller's idea of now may be from the server's clock.
pub const MAX_CLAIMED_SKEW: Duration = Duration::seconds(5);
use crate::store::{attempt, decision, dnc, line_state};

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

/// A line's health, for `GetLineHealth`.
#[derive(Clone, Debug)]
pub struct LineReport {
    /// The counters.
    pub stats: LineStats,
    /// The assessment.
    pub health: health::Health,
}

/// Serialises writers of the same keys on PostgreSQL (SQLite's writing
/// transactions are already exclusive).
pub(crate) async fn lock(txn: &DatabaseTransaction, keys: &[String]) -> Result<()> {
    if txn.get_database_backend() != DatabaseBackend::Postgres {
        return Ok(());
    }
    let mut keys = keys.to_vec();
    keys.sort();
    keys.dedup();
    for k in keys {
        txn.execute_raw(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            [k.into()],
        ))
        .await?;
    }
    Ok(())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Dialer {
    /// Records a call placed under decision `decision_id`, at the server's
    /// time: refused unless the decision allowed the call, is unused, fresh
    /// and not a plan, and unless the window, the registry copy and the caps
    /// still hold now. `claimed_at`, the caller's idea of now, may differ from
    /// the server's clock by at most [`MAX_CLAIMED_SKEW`]; it is never used.
    pub async fn record_attempt(
        &self,
        who: &Caller,
        tenant: &str,
        decision_id: &str,
        claimed_at: Option<DateTime<Utc>>,
    ) -> Result<String> {
        who.in_tenant(tenant)?;
        if decision_id.is_empty() {
            return Err(Error::invalid("decision_id", "the id of the decision that allowed the call"));
        }
        if claimed_at.is_some_and(|t| (t - self.clock.now()).abs() > MAX_CLAIMED_SKEW) {
            return Err(Error::invalid("at", "within 5 s of the server's clock; attempts are recorded at server time"));
        }
        if decision_id.starts_with(PLAN_PREFIX) {
            return Err(Error::FailedPrecondition(format!(
                "{decision_id} is a plan, which never admits a call; check the call when placing it"
            )));
        }
        // Everything read through the pool is read before the transaction
        // takes its connection: parallel attempts wait on each other's locks
        // while holding one, and must not need a second.
        let d = decision::Entity::find_by_id(decision_id.to_owned())
            .one(&self.db)
            .await?
            .filter(|d| d.tenant_id == tenant)
            .ok_or(Error::NotFound)?;
        if let Caller::User(s) = who
            && s.user != d.agent_id
        {
            return Err(Error::PermissionDenied("the decision was made for another agent".into()));
        }
        let policy = self.policy(tenant, &d.campaign_id).await?;
        let txn = guardline_runtime::storage::write_txn(&self.db).await?;
        lock(
            &txn,
            &[
                format!("{tenant}/callee/{}", hex(&d.callee)),
                format!("{tenant}/line/{}", d.caller_line),
                format!("{tenant}/agent/{}", d.agent_id),
            ],
        )
        .await?;
        // Read again under the locks: another replica may have used it.
        let d = decision::Entity::find_by_id(decision_id.to_owned()).one(&txn).await?.ok_or(Error::NotFound)?;
        if d.verdict != "allow" {
            return Err(Error::FailedPrecondition(format!("decision {decision_id} did not allow the call")));
        }
        if d.used {
            return Err(Error::FailedPrecondition(format!("decision {decision_id} was already used")));
        }
        let now = self.clock.now();
        if now - d.decided_at > DECISION_TTL || now < d.decided_at {
            return Err(Error::FailedPrecondition(format!("decision {decision_id} is stale; check the call again")));
        }
        self.still_allowed(&d, &policy, now)?;
        let counted =
            Counted { tenant, callee: &d.callee, line: &d.caller_line, agent: &d.agent_id, subject: &d.subject };
        for (rule, count, limit, label) in
            self.cap_counts_on(&txn, &counted, now, &policy, d.subject_cap_24h.max(0) as u32).await?
        {
            if count >= limit {
                return Err(Error::FailedPrecondition(format!("{rule}: {count} of {limit} calls in the last {label}")));
            }
        }
        let id = format!("att-{}", uuid::Uuid::now_v7().simple());
        attempt::Entity::insert(attempt::ActiveModel {
            id: ActiveValue::Set(id.clone()),
            tenant_id: ActiveValue::Set(tenant.into()),
            callee: ActiveValue::Set(d.callee.clone()),
            caller_line: ActiveValue::Set(d.caller_line.clone()),
            agent_id: ActiveValue::Set(d.agent_id.clone()),
            campaign_id: ActiveValue::Set(d.campaign_id.clone()),
            placed_at: ActiveValue::Set(now),
            result: ActiveValue::Set(String::new()),
            duration_seconds: ActiveValue::Set(0),
            subject: ActiveValue::Set(d.subject.clone()),
        })
        .exec(&txn)
        .await?;
        decision::Entity::update(decision::ActiveModel {
            id: ActiveValue::Unchanged(d.id.clone()),
            used: ActiveValue::Set(true),
            ..Default::default()
        })
        .exec(&txn)
        .await?;
        let (user, service) = who.actor();
        let event = EventBuilder::new(tenant, "dialer.attempt")
            .actor(user, service)
            .resource("attempt", &id)
            .detail("decision_id", decision_id)
            .detail("lead_id", &d.lead_id);
        guardline_audit_client::enqueue(&txn, &event.build()).await?;
        txn.commit().await?;
        self.outbox.notify_one();
        Ok(id)
    }

    /// The window and the registry copy, judged again at `now`: an ALLOW
    /// given at 20:59 does not place a call at 21:01.
    fn still_allowed(&self, d: &decision::Model, policy: &Effective, now: DateTime<Utc>) -> Result<()> {
        let zones: Vec<chrono_tz::Tz> = d.zones.split(',').filter_map(|z| z.parse().ok()).collect();
        if zones.is_empty() {
            return Err(Error::FailedPrecondition(format!("decision {} is stale; check the call again", d.id)));
        }
        let packs: Vec<String> = d.packs.split(',').filter(|p| !p.is_empty()).map(str::to_owned).collect();
        let (windows, _) = self.pack_rules(now, &packs, &zones, policy);
        let closed = self.registry.unusable(&d.region, now, policy).into_iter().chain(windows);
        match closed.into_iter().find(|r| r.outcome != Verdict::Allow) {
            Some(r) => Err(Error::FailedPrecondition(format!("{}: {}", r.rule, r.reason))),
            None => Ok(()),
        }
    }

    /// Records how an attempt ended; an opt-out puts the callee on the
    /// tenant's internal do-not-call list at once.
    pub async fn record_outcome(
        &self,
        who: &Caller,
        tenant: &str,
        attempt_id: &str,
        result: Option<&'static str>,
        duration_seconds: u32,
    ) -> Result<()> {
        who.in_tenant(tenant)?;
        let Some(result) = result else {
            return Err(Error::invalid("result", "answered, no_answer, busy, complaint or opt_out"));
        };
        if duration_seconds > 86_400 {
            return Err(Error::invalid("duration_seconds", "at most a day"));
        }
        let txn = guardline_runtime::storage::write_txn(&self.db).await?;
        let a = attempt::Entity::find_by_id(attempt_id.to_owned())
            .one(&txn)
            .await?
            .filter(|a| a.tenant_id == tenant)
            .ok_or(Error::NotFound)?;
        if !a.result.is_empty() {
            return Err(Error::FailedPrecondition(format!("the outcome of {attempt_id} is already recorded")));
        }
        attempt::Entity::update(attempt::ActiveModel {
            id: ActiveValue::Unchanged(a.id.clone()),
            result: ActiveValue::Set(result.into()),
            duration_seconds: ActiveValue::Set(duration_seconds as i32),
            ..Default::default()
        })
        .exec(&txn)
        .await?;
        if result == result::OPT_OUT {
            self.add_internal(&txn, tenant, &a.callee, "opt-out on a call").await?;
        }
        let (user, service) = who.actor();
        let event = EventBuilder::new(tenant, "dialer.outcome")
            .actor(user, service)
            .resource("attempt", attempt_id)
            .detail("result", result)
            .detail("duration_seconds", duration_seconds);
        guardline_audit_client::enqueue(&txn, &event.build()).await?;
        txn.commit().await?;
        self.outbox.notify_one();
        Ok(())
    }

    /// Adds a blind index to the tenant's internal list unless it is there.
    pub(crate) async fn add_internal(
        &self,
        conn: &impl ConnectionTrait,
        tenant: &str,
        blind_index: &[u8],
        reason: &str,
    ) -> Result<bool> {
        let key = (tenant.to_owned(), crate::dnc::INTERNAL.to_owned(), String::new(), blind_index.to_vec());
        if dnc::Entity::find_by_id(key).one(conn).await?.is_some() {
            return Ok(false);
        }
        dnc::Entity::insert(dnc::ActiveModel {
            tenant_id: ActiveValue::Set(tenant.into()),
            list: ActiveValue::Set(crate::dnc::INTERNAL.into()),
            campaign_id: ActiveValue::Set(String::new()),
            blind_index: ActiveValue::Set(blind_index.to_vec()),
            reason: ActiveValue::Set(reason.into()),
            added_at: ActiveValue::Set(self.clock.now()),
        })
        .exec(conn)
        .await?;
        Ok(true)
    }

    /// A line's counters at `at`, in one aggregate query over the tenant's
    /// attempts of the last eight days.
    pub(crate) async fn line_stats(&self, tenant: &str, line: &str, at: DateTime<Utc>) -> Result<LineStats> {
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
        for (i, c) in counts.into_iter().enumerate() {
            q = q.expr_as(count_if(c), format!("c{i}"));
        }
        let row = q.into_tuple::<Counts9>().one(&self.db).await?.unwrap_or_default();
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

    /// The times of a line's attempts in the hour before `at`, oldest first
    /// (to tell a throttled line when it may call again).
    pub(crate) async fn line_hour(&self, tenant: &str, line: &str, at: DateTime<Utc>) -> Result<Vec<DateTime<Utc>>> {
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
            .all(&self.db)
            .await?)
    }

    /// `GetLineHealth`: for users of the tenant and mesh services.
    pub async fn line_health(&self, who: &Caller, tenant: &str, line: &str) -> Result<LineReport> {
        who.in_tenant(tenant)?;
        let line = crate::service::line("caller_line", line)?;
        let policy = self.policy(tenant, "").await?;
        let stats = self.line_stats(tenant, line.e164(), self.clock.now()).await?;
        Ok(LineReport { health: health::assess(&stats, &policy.health()), stats })
    }

    pub(crate) async fn is_newly_throttled(&self, tenant: &str, line: &str) -> Result<bool> {
        let row = line_state::Entity::find_by_id((tenant.to_owned(), line.to_owned())).one(&self.db).await?;
        Ok(!row.is_some_and(|r| r.throttled))
    }

    /// Records that the line is throttled and raises the alert (an audit
    /// event the audit service turns into a `line_throttled` alert).
    pub(crate) async fn mark_throttled(
        &self,
        txn: &DatabaseTransaction,
        tenant: &str,
        line: &str,
        reason: &str,
    ) -> Result<()> {
        line_state::Entity::delete_by_id((tenant.to_owned(), line.to_owned())).exec(txn).await?;
        line_state::Entity::insert(line_state::ActiveModel {
            tenant_id: ActiveValue::Set(tenant.into()),
            caller_line: ActiveValue::Set(line.into()),
            throttled: ActiveValue::Set(true),
            changed_at: ActiveValue::Set(self.clock.now()),
        })
        .exec(txn)
        .await?;
        let event = EventBuilder::new(tenant, "dialer.line.throttled")
            .actor("", crate::NAME)
            .resource("caller_line", &crate::service::phone_free_line(line))
            .detail("reason", reason);
        guardline_audit_client::enqueue(txn, &event.build()).await?;
        Ok(())
    }

    pub(crate) async fn clear_throttle(&self, tenant: &str, line: &str) -> Result<()> {
        let key = (tenant.to_owned(), line.to_owned());
        if line_state::Entity::find_by_id(key.clone()).one(&self.db).await?.is_some_and(|r| r.throttled) {
            line_state::Entity::delete_by_id(key).exec(&self.db).await?;
        }
        Ok(())
    }
}

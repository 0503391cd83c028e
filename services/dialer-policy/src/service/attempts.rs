//! Call attempts and outcomes: the rows the frequency caps and line health
//! count. An attempt is admitted only against a fresh ALLOW decision, and
//! the caps are checked again inside the writing transaction, serialised per
//! callee, line and agent, so parallel attempts never exceed a cap, whatever
//! the number of replicas.

use crate::domain::decision::Verdict;
use crate::domain::health::{self, LineStats};
use crate::domain::policy::Effective;
use crate::error::{DialerError, Error, Result};
use crate::service::caps::{Counted, cap_counts};
use crate::service::{Caller, DECISION_TTL, Dialer, PLAN_PREFIX};
use chrono::{DateTime, Duration, Utc};
use guardline_audit_client::EventBuilder;

/// How far the caller's idea of now may be from the server's clock.
pub const MAX_CLAIMED_SKEW: Duration = Duration::seconds(5);
pub use crate::store::attempts::result;
use crate::store::{Tx, attempt, attempts, decision, lists};

/// A line's health, for `GetLineHealth`.
#[derive(Clone, Debug)]
pub struct LineReport {
    /// The counters.
    pub stats: LineStats,
    /// The assessment.
    pub health: health::Health,
}

/// The row of an attempt placed at `now` under decision `d`.
fn attempt_row(id: &str, d: &decision::Model, now: DateTime<Utc>) -> attempt::Model {
    attempt::Model {
        id: id.to_owned(),
        tenant_id: d.tenant_id.clone(),
        callee: d.callee.clone(),
        caller_line: d.caller_line.clone(),
        agent_id: d.agent_id.clone(),
        campaign_id: d.campaign_id.clone(),
        placed_at: now,
        result: String::new(),
        duration_seconds: 0,
        subject: d.subject.clone(),
    }
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
            return Err(DialerError::PlanAdmitsNoCall { decision: decision_id.into() }.into());
        }
        // Everything read through the pool is read before the transaction
        // takes its connection: parallel attempts wait on each other's locks
        // while holding one, and must not need a second.
        let d = attempts::decision(&self.store, decision_id)
            .await?
            .filter(|d| d.tenant_id == tenant)
            .ok_or(Error::NotFound)?;
        if let Caller::User(s) = who
            && s.user != d.agent_id
        {
            return Err(Error::PermissionDenied("the decision was made for another agent".into()));
        }
        let policy = self.policy(tenant, &d.campaign_id).await?;
        let tx = self.store.begin().await?;
        crate::store::lock(
            &tx,
            &[
                format!("{tenant}/callee/{}", hex(&d.callee)),
                format!("{tenant}/line/{}", d.caller_line),
                format!("{tenant}/agent/{}", d.agent_id),
            ],
        )
        .await?;
        // Read again under the locks: another replica may have used it.
        let d = attempts::decision(&tx, decision_id).await?.ok_or(Error::NotFound)?;
        let now = self.clock.now();
        self.admits(&tx, &d, &policy, now).await?;
        let id = format!("att-{}", uuid::Uuid::now_v7().simple());
        attempts::insert_attempt(&tx, attempt_row(&id, &d, now), &d.id).await?;
        let (user, service) = who.actor();
        let event = EventBuilder::new(tenant, "dialer.attempt")
            .actor(user, service)
            .resource("attempt", &id)
            .detail("decision_id", decision_id)
            .detail("lead_id", &d.lead_id);
        self.store.commit(tx, [event]).await?;
        Ok(id)
    }

    /// Whether decision `d`, read under the locks, still admits a call at
    /// `now`: it allowed the call, is unused and fresh, and the window, the
    /// registry copy and the caps still hold.
    async fn admits(&self, tx: &Tx, d: &decision::Model, policy: &Effective, now: DateTime<Utc>) -> Result<()> {
        let id = &d.id;
        if d.verdict != "allow" {
            return Err(DialerError::NotAllowed { decision: id.clone() }.into());
        }
        if d.used {
            return Err(DialerError::AlreadyUsed { decision: id.clone() }.into());
        }
        if now - d.decided_at > DECISION_TTL || now < d.decided_at {
            return Err(DialerError::Stale { decision: id.clone() }.into());
        }
        self.still_allowed(d, policy, now)?;
        let counted = Counted {
            tenant: &d.tenant_id,
            callee: &d.callee,
            line: &d.caller_line,
            agent: &d.agent_id,
            subject: &d.subject,
        };
        let subject_cap = d.subject_cap_24h.max(0) as u32;
        for (rule, count, limit, label) in cap_counts(tx, &counted, now, policy, subject_cap).await? {
            if count >= limit {
                return Err(DialerError::CapReached { rule, count, limit, window: label }.into());
            }
        }
        Ok(())
    }

    /// The window and the registry copy, judged again at `now`: an ALLOW
    /// given at 20:59 does not place a call at 21:01.
    fn still_allowed(&self, d: &decision::Model, policy: &Effective, now: DateTime<Utc>) -> Result<()> {
        let zones: Vec<chrono_tz::Tz> = d.zones.split(',').filter_map(|z| z.parse().ok()).collect();
        if zones.is_empty() {
            return Err(DialerError::Stale { decision: d.id.clone() }.into());
        }
        let packs: Vec<String> = d.packs.split(',').filter(|p| !p.is_empty()).map(str::to_owned).collect();
        let (windows, _) = self.pack_rules(now, &packs, &zones, policy);
        let closed = self.registry.unusable(&d.region, now, policy).into_iter().chain(windows);
        match closed.into_iter().find(|r| r.outcome != Verdict::Allow) {
            Some(r) => Err(DialerError::ClosedSinceDecision { rule: r.rule, reason: r.reason }.into()),
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
        let tx = self.store.begin().await?;
        let a = attempts::attempt(&tx, attempt_id).await?.filter(|a| a.tenant_id == tenant).ok_or(Error::NotFound)?;
        if !a.result.is_empty() {
            return Err(DialerError::OutcomeRecorded { attempt: attempt_id.into() }.into());
        }
        attempts::set_outcome(&tx, &a.id, result, duration_seconds).await?;
        if result == result::OPT_OUT {
            let internal = (lists::INTERNAL, "");
            lists::add(&tx, tenant, internal, vec![a.callee.clone()], "opt-out on a call", self.clock.now()).await?;
        }
        let (user, service) = who.actor();
        let event = EventBuilder::new(tenant, "dialer.outcome")
            .actor(user, service)
            .resource("attempt", attempt_id)
            .detail("result", result)
            .detail("duration_seconds", duration_seconds);
        self.store.commit(tx, [event]).await
    }

    /// A line's counters at `at`.
    pub(crate) async fn line_stats(&self, tenant: &str, line: &str, at: DateTime<Utc>) -> Result<LineStats> {
        attempts::line_stats(&self.store, tenant, line, at).await
    }

    /// The times of a line's attempts in the hour before `at`, oldest first
    /// (to tell a throttled line when it may call again).
    pub(crate) async fn line_hour(&self, tenant: &str, line: &str, at: DateTime<Utc>) -> Result<Vec<DateTime<Utc>>> {
        attempts::line_hour(&self.store, tenant, line, at).await
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
        Ok(!attempts::throttled(&self.store, tenant, line).await?)
    }

    /// Records that the line is throttled and raises the alert (an audit
    /// event the audit service turns into a `line_throttled` alert).
    pub(crate) async fn mark_throttled(&self, tx: &Tx, tenant: &str, line: &str, reason: &str) -> Result<()> {
        attempts::set_throttled(tx, tenant, line, self.clock.now()).await?;
        let event = EventBuilder::new(tenant, "dialer.line.throttled")
            .actor("", crate::NAME)
            .resource("caller_line", &crate::service::phone_free_line(line))
            .detail("reason", reason);
        tx.enqueue(event).await
    }

    pub(crate) async fn clear_throttle(&self, tenant: &str, line: &str) -> Result<()> {
        if attempts::throttled(&self.store, tenant, line).await? {
            attempts::clear_throttled(&self.store, tenant, line).await?;
        }
        Ok(())
    }
}

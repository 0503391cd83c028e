//! The one pre-dial decision: every rule on a call, combined and recorded
//! at the server's time, or answered as a plan.

use chrono::{DateTime, Duration, Utc};
use guardline_audit_client::EventBuilder;
use guardline_phone::Phone;

use super::{CallQuery, Callee, Caller, Decision, Dialer, PLAN_PREFIX, Target, line, phone_free_line, verdict_name};
use crate::domain::callee;
use crate::domain::decision::{RuleResult, Verdict, cap, combine};
use crate::domain::health;
use crate::domain::policy::{Effective, pack_for_region};
use crate::domain::window::WindowOutcome;
use crate::error::{Error, Result};
use crate::service::caps::{Counted, cap_counts};
use crate::store::{attempts as stored, decision, lists};

/// One call being decided: the query and what was learnt of it.
struct Call<'a> {
    q: &'a CallQuery,
    lead_id: &'a str,
    target: &'a Target,
    phone: &'a Phone,
    agent: &'a str,
    policy: &'a Effective,
}

/// The rules on a call and the context an attempt rechecks them in.
struct Judged {
    rules: Vec<RuleResult>,
    became_throttled: Option<String>,
    zones: Vec<chrono_tz::Tz>,
    packs: Vec<String>,
    subject: String,
    subject_cap: u32,
}

impl Call<'_> {
    /// The decision's row.
    fn row(&self, id: &str, verdict: Verdict, now: DateTime<Utc>, j: &Judged) -> decision::Model {
        decision::Model {
            id: id.to_owned(),
            tenant_id: self.q.tenant.clone(),
            lead_id: self.lead_id.to_owned(),
            callee: self.target.blind_index.clone(),
            caller_line: self.q.caller_line.clone(),
            agent_id: self.agent.to_owned(),
            campaign_id: self.q.campaign.clone(),
            verdict: verdict_name(verdict).into(),
            callee_cap_24h: self.policy.callee_max_24h as i32,
            decided_at: now,
            used: false,
            region: self.phone.region().to_owned(),
            zones: j.zones.iter().map(|z| z.name()).collect::<Vec<_>>().join(","),
            packs: j.packs.join(","),
            subject: j.subject.clone(),
            subject_cap_24h: j.subject_cap as i32,
        }
    }
}

impl Dialer {
    /// Decides on one call at the server's time and records the decision (a
    /// row and an audit event); or, for a query with `plan_at`, answers a
    /// plan: judged at that instant against today's leads, consent and
    /// lists, audited as a plan, never stored as a decision.
    pub async fn check(&self, who: &Caller, q: CallQuery) -> Result<Decision> {
        who.in_tenant(&q.tenant)?;
        let agent = who.agent(&q.agent)?;
        let caller_line = line("caller_line", &q.caller_line)?;
        let ident = |s: &str| !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        if !ident(&q.purpose) {
            return Err(Error::invalid("purpose", "a lowercase name such as marketing or service"));
        }
        let (lead_id, target) = self.callee(&q).await?;
        let phone = Phone::parse(&target.e164, None).map_err(|_| Error::DataLoss("the lead's number".into()))?;
        let policy = self.policy(&q.tenant, &q.campaign).await?;
        let now = self.clock.now();
        let plan = q.plan_at.is_some();
        let at = q.plan_at.unwrap_or(now);
        let call = Call { q: &q, lead_id: &lead_id, target: &target, phone: &phone, agent: &agent, policy: &policy };
        let judged = self.judge(&call, &caller_line, at, now).await?;
        let verdict = combine(&judged.rules);
        let (user, service) = who.actor();
        let denied: Vec<&str> =
            judged.rules.iter().filter(|r| r.outcome != Verdict::Allow).map(|r| r.rule.as_str()).collect();
        let event = |action: &str, id: &str| {
            EventBuilder::new(&q.tenant, action)
                .actor(user, service)
                .resource("decision", id)
                .detail("verdict", verdict_name(verdict))
                .detail("rules", denied.join(","))
                .detail("lead_id", &lead_id)
                .detail("caller_line", phone_free_line(&q.caller_line))
                .detail("campaign_id", &q.campaign)
                .detail("agent_id", &agent)
                .detail("at", at.to_rfc3339())
        };
        if plan {
            let id = format!("{PLAN_PREFIX}{}", uuid::Uuid::now_v7().simple());
            self.store.audit(event("dialer.plan", &id)).await?;
            return Ok(Decision { id, verdict, rules: judged.rules, at, plan });
        }
        let id = format!("dec-{}", uuid::Uuid::now_v7().simple());
        let tx = self.store.begin().await?;
        stored::insert_decision(&tx, call.row(&id, verdict, now, &judged)).await?;
        if let Some(reason) = &judged.became_throttled {
            self.mark_throttled(&tx, &q.tenant, &q.caller_line, reason).await?;
        }
        self.report_missing_calendars(&tx, &q.tenant, &judged.packs, now).await?;
        self.store.commit(tx, [event("dialer.check", &id)]).await?;
        Ok(Decision { id, verdict, rules: judged.rules, at, plan })
    }

    /// The lead (if the callee is one) and what the vault says of the number.
    async fn callee(&self, q: &CallQuery) -> Result<(String, Target)> {
        Ok(match &q.callee {
            None => return Err(Error::invalid("callee", "a lead id or an E.164 number")),
            Some(Callee::Lead(id)) if id.is_empty() => return Err(Error::invalid("lead_id", "required")),
            Some(Callee::Lead(id)) => (id.clone(), self.vault.dial_target(&q.tenant, id).await?),
            Some(Callee::Number(n)) => {
                line("e164", n)?;
                let (blind_index, internal_dnc) = self.vault.lookup(&q.tenant, n).await?;
                (String::new(), Target { e164: n.clone(), blind_index, internal_dnc, ..Default::default() })
            }
        })
    }

    /// Every rule on the call at `at` (consent judged at `now`).
    async fn judge(&self, c: &Call<'_>, caller_line: &Phone, at: DateTime<Utc>, now: DateTime<Utc>) -> Result<Judged> {
        let (q, target, phone, policy) = (c.q, c.target, c.phone, c.policy);
        let zones = callee::zones(phone, &target.time_zone);
        let states = callee::states(phone, &target.address_region);
        let subject = policy.subject.clone().unwrap_or_else(|| q.campaign.clone());
        let mut rules = vec![self.registry.rule(phone, at, policy), self.internal_dnc_rule(&q.tenant, target).await?];
        if !q.campaign.is_empty() {
            rules.push(self.campaign_dnc_rule(&q.tenant, &q.campaign, &target.blind_index).await?);
        }
        let (consent, granted) = self.consent_rule(q, c.lead_id, policy, now).await?;
        rules.push(consent);
        // The FCC's Reassigned Numbers Database covers US numbers.
        if let Some(granted) = granted.filter(|_| phone.region() == "US") {
            rules.push(self.reassigned_rule(&q.tenant, &target.blind_index, granted).await?);
        }
        let packs = self.pack_names(phone.region(), &states, policy);
        let (windows, subject_cap) = self.pack_rules(at, &packs, &zones, policy);
        rules.extend(windows);
        let counted = Counted {
            tenant: &q.tenant,
            callee: &target.blind_index,
            line: &q.caller_line,
            agent: c.agent,
            subject: &subject,
        };
        let counts = cap_counts(&self.store, &counted, at, policy, subject_cap).await?;
        rules.extend(counts.into_iter().map(|(rule, count, limit, label)| cap(rule, count, limit, label)));
        let plan = q.plan_at.is_some();
        let (health_rule, became_throttled) = self.health_rule(&q.tenant, caller_line, at, policy, !plan).await?;
        rules.push(health_rule);
        Ok(Judged { rules, became_throttled, zones, packs, subject, subject_cap })
    }

    async fn internal_dnc_rule(&self, tenant: &str, target: &Target) -> Result<RuleResult> {
        if let Some(why) = &target.internal_dnc {
            return Ok(RuleResult::deny("dnc.internal", why.clone()));
        }
        let row = lists::entry(&self.store, tenant, (lists::INTERNAL, ""), &target.blind_index).await?;
        Ok(match row {
            Some(r) => RuleResult::deny("dnc.internal", format!("{} on {}", r.reason, r.added_at.format("%Y-%m-%d"))),
            None => RuleResult::allow("dnc.internal", "not on the tenant's list"),
        })
    }

    async fn campaign_dnc_rule(&self, tenant: &str, campaign: &str, blind_index: &[u8]) -> Result<RuleResult> {
        Ok(if lists::on_campaign_list(&self.store, tenant, campaign, blind_index).await? {
            RuleResult::deny("dnc.campaign", format!("on the list of campaign {campaign}"))
        } else {
            RuleResult::allow("dnc.campaign", format!("not on the list of campaign {campaign}"))
        })
    }

    /// The consent rule, and when the active consent was granted.
    async fn consent_rule(
        &self,
        q: &CallQuery,
        lead_id: &str,
        p: &Effective,
        now: DateTime<Utc>,
    ) -> Result<(RuleResult, Option<DateTime<Utc>>)> {
        let rule = format!("consent.{}", q.purpose);
        if !p.consent_required_purposes.contains(&q.purpose) {
            return Ok((RuleResult::allow(rule, format!("{} calls need no consent by policy", q.purpose)), None));
        }
        if lead_id.is_empty() {
            return Ok((RuleResult::deny(rule, "a number that is not a lead has no consent record"), None));
        }
        Ok(match self.vault.consent_granted(&q.tenant, lead_id, &q.purpose, now).await? {
            Some(granted) => (RuleResult::allow(rule, format!("active {} consent", q.purpose)), Some(granted)),
            None => (RuleResult::deny(rule, format!("no active {} consent", q.purpose)), None),
        })
    }

    /// The packs whose windows apply: the policy's, else the callee's
    /// region's; and, always, those of the callee's US states.
    pub(crate) fn pack_names(&self, region: &str, states: &[&str], p: &Effective) -> Vec<String> {
        let mut names: Vec<String> = match &p.jurisdiction_packs {
            Some(names) => names.clone(),
            None => pack_for_region(region).map(|n| vec![n.to_owned()]).unwrap_or_default(),
        };
        for state in states {
            for pack in self.packs.for_state(state) {
                if !names.contains(&pack.name) {
                    names.push(pack.name.clone());
                }
            }
        }
        names
    }

    /// One `window.<pack>` rule per pack, judged at `at` in every one of
    /// `zones`, and the strictest per-subject 24-hour cap the packs carry
    /// (0: none).
    pub(crate) fn pack_rules(
        &self,
        at: DateTime<Utc>,
        names: &[String],
        zones: &[chrono_tz::Tz],
        p: &Effective,
    ) -> (Vec<RuleResult>, u32) {
        if names.is_empty() {
            let why = "no calling window for the callee's region; name a jurisdiction pack in the policy";
            return (vec![RuleResult::deny("window", why)], 0);
        }
        if zones.is_empty() {
            return (vec![RuleResult::deny("window", "no time zone is known for the number")], 0);
        }
        let mut cap = None::<u32>;
        let mut rules = Vec::new();
        for name in names {
            let rule = format!("window.{name}");
            let Some(pack) = self.packs.get(name) else {
                rules.push(RuleResult::deny(rule, "the pack is not installed"));
                continue;
            };
            if let Some(m) = pack.max_calls_per_24h {
                cap = Some(cap.map_or(m, |c| c.min(m)));
            }
            rules.push(match pack.evaluate(at, zones, &p.tenant_days) {
                WindowOutcome::Open(why) => RuleResult::allow(rule, why),
                WindowOutcome::Closed { reason, next } => RuleResult::defer(rule, next, reason),
            });
        }
        (rules, cap.unwrap_or(0))
    }
}

impl Dialer {
    /// The `line.health` rule, and the reason when the line has just become
    /// throttled (to raise an alert once).
    async fn health_rule(
        &self,
        tenant: &str,
        caller_line: &Phone,
        at: DateTime<Utc>,
        p: &Effective,
        record: bool,
    ) -> Result<(RuleResult, Option<String>)> {
        let hp = p.health();
        let stats = self.line_stats(tenant, caller_line.e164(), at).await?;
        let h = health::assess(&stats, &hp);
        if !h.throttled {
            if record {
                self.clear_throttle(tenant, caller_line.e164()).await?;
            }
            return Ok((RuleResult::allow("line.health", format!("risk {:.2}", h.risk_score)), None));
        }
        let hour = self.line_hour(tenant, caller_line.e164(), at).await?;
        // Deferred until the hour's count falls below the threshold (or an
        // hour, for complaints).
        let over = (hour.len() as u64 + 1).saturating_sub(hp.throttle_calls_per_hour) as usize;
        let until = hour.get(over.saturating_sub(1)).map_or(at + Duration::hours(1), |t| *t + Duration::hours(1));
        let until = until.max(at + Duration::minutes(1));
        let newly = record && self.is_newly_throttled(tenant, caller_line.e164()).await?;
        Ok((
            RuleResult::defer("line.health", Some(until), format!("throttled: {}", h.reason)),
            newly.then_some(h.reason),
        ))
    }
}

//! The dialer policy's use cases, free of tonic: who may call, policies, and
//! the one pre-dial decision. The lead vault is reached through
//! [`VaultPort`], so no proto type leaves `grpc.rs`.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use guardline_audit_client::EventBuilder;
use guardline_authz::{Resource, Subject, decide};
use guardline_phone::Phone;
use guardline_runtime::clock::Clock;
use sea_orm::{ActiveValue, ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter};

use crate::caps::Counted;
use crate::domain::callee;
use crate::domain::decision::{RuleResult, Verdict, cap, combine};
use crate::domain::health;
use crate::domain::policy::{Effective, Policy, pack_for_region};
use crate::domain::window::{Packs, WindowOutcome};
use crate::error::{Error, Result};
use crate::registry::Registry;
use crate::store::{decision, dnc, policy};

/// What the lead vault tells the dialer about a lead's number.
#[derive(Clone, Default)]
pub struct Target {
    /// E.164 number (never logged).
    pub e164: String,
    /// Its blind index in the tenant.
    pub blind_index: Vec<u8>,
    /// The callee's IANA zone, empty when unknown.
    pub time_zone: String,
    /// Owning agent.
    pub owner_id: String,
    /// Owning team.
    pub team_id: String,
    /// Why the vault lists the number as not to be called (erasure), if it does.
    pub internal_dnc: Option<String>,
    /// The province or state of the lead's address, as written.
    pub address_region: String,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target").field("owner_id", &self.owner_id).finish_non_exhaustive()
    }
}

/// The lead vault, as the dialer needs it.
#[async_trait::async_trait]
pub trait VaultPort: Send + Sync {
    /// A lead's number (the first), blind index, zone and owner.
    async fn dial_target(&self, tenant: &str, lead_id: &str) -> Result<Target>;
    /// A number's blind index and the vault's do-not-call state.
    async fn lookup(&self, tenant: &str, e164: &str) -> Result<(Vec<u8>, Option<String>)>;
    /// The blind indexes of many numbers (at most 1,000), in order.
    async fn blind_indexes(&self, tenant: &str, e164: &[String]) -> Result<Vec<Vec<u8>>>;
    /// When the lead's consent for `purpose`, active at `at`, was granted;
    /// `None` without active consent (the dialer always asks at its own
    /// clock's now).
    async fn consent_granted(
        &self,
        tenant: &str,
        lead_id: &str,
        purpose: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>>;
}

/// Who is calling.
#[derive(Clone, Debug)]
pub enum Caller {
    /// A user, by access token.
    User(Subject),
    /// A mesh service acting alone (its certificate's service account).
    Service(String),
}

impl Caller {
    /// The (user id, service) pair for audit events.
    pub fn actor(&self) -> (&str, &str) {
        match self {
            Self::User(s) => (&s.user, ""),
            Self::Service(name) => ("", name),
        }
    }

    /// The agent a call is placed by: a user is always their own agent (an
    /// `agent_id` naming someone else is refused); a service acting for an
    /// agent must name one, so that no agent cap is switched off by leaving
    /// the field out.
    pub fn agent(&self, requested: &str) -> Result<String> {
        match self {
            Self::User(s) if requested.is_empty() || requested == s.user => Ok(s.user.clone()),
            Self::User(_) => Err(Error::invalid("agent_id", "empty or the caller's own user id")),
            Self::Service(_) if requested.is_empty() => {
                Err(Error::invalid("agent_id", "required when a service checks a call for an agent"))
            }
            Self::Service(_) => Ok(requested.to_owned()),
        }
    }

    /// Refuses a user of another tenant; services act for any tenant.
    pub fn in_tenant(&self, tenant: &str) -> Result<()> {
        if tenant.is_empty() {
            return Err(Error::invalid("tenant_id", "required"));
        }
        match self {
            Self::User(s) if s.tenant != tenant => Err(Error::PermissionDenied("another tenant".into())),
            _ => Ok(()),
        }
    }

    /// Requires `action` in `tenant` of a user; services are refused unless
    /// listed in `services`.
    pub fn require(&self, action: &str, tenant: &str, services: &[&str]) -> Result<()> {
        self.in_tenant(tenant)?;
        match self {
            Self::User(s) => {
                let d = decide(s, action, &Resource { tenant: tenant.into(), ..Default::default() });
                if d.allowed { Ok(()) } else { Err(Error::PermissionDenied(d.rule)) }
            }
            Self::Service(name) if services.contains(&name.as_str()) => Ok(()),
            Self::Service(name) => Err(Error::PermissionDenied(format!("{action} is for users, not {name}"))),
        }
    }
}

/// Who is called.
#[derive(Clone)]
pub enum Callee {
    /// A lead in the vault.
    Lead(String),
    /// A number in E.164, not (necessarily) a lead.
    Number(String),
}

/// The question before a call.
#[derive(Clone)]
pub struct CallQuery {
    /// Tenant.
    pub tenant: String,
    /// Callee.
    pub callee: Option<Callee>,
    /// Caller line (E.164).
    pub caller_line: String,
    /// Campaign, may be empty.
    pub campaign: String,
    /// Purpose, e.g. `marketing`.
    pub purpose: String,
    /// Agent user id as the request names it: empty or the caller's own id
    /// for a user, required for a service acting for an agent.
    pub agent: String,
    /// A planning query's instant ("when could this lead be called?"); none
    /// for the decision that can admit a call, which is made at the server's
    /// time.
    pub plan_at: Option<DateTime<Utc>>,
}

/// The answer.
#[derive(Clone, Debug)]
pub struct Decision {
    /// Id, as in audit.
    pub id: String,
    /// The verdict.
    pub verdict: Verdict,
    /// Every rule, in order.
    pub rules: Vec<RuleResult>,
    /// The instant the rules were judged at: the server's now, or a plan's.
    pub at: DateTime<Utc>,
    /// Whether this is a plan, which can never admit a call.
    pub plan: bool,
}

/// Ids of plans: never stored as decisions, so no attempt can use one.
pub(crate) const PLAN_PREFIX: &str = "plan-";

/// Verdicts as stored.
pub(crate) fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Verdict::Allow => "allow",
        Verdict::Deny => "deny",
        Verdict::Defer(_) => "defer",
    }
}

/// A caller line, agent line or pool number: must be valid E.164.
pub(crate) fn line(field: &str, value: &str) -> Result<Phone> {
    if !value.starts_with('+') {
        return Err(Error::invalid(field, "a number in E.164, starting with +"));
    }
    Phone::parse(value, None).map_err(|_| Error::invalid(field, "not a valid E.164 number"))
}

/// The dialer policy service.
pub struct Dialer {
    pub(crate) db: DatabaseConnection,
    pub(crate) packs: Packs,
    pub(crate) registry: Registry,
    pub(crate) vault: Arc<dyn VaultPort>,
    pub(crate) outbox: Arc<tokio::sync::Notify>,
    /// Service accounts that may replace the national registry copy.
    pub(crate) registry_admins: Vec<String>,
    /// The server's time: every decision and attempt is judged by it.
    pub(crate) clock: Clock,
    /// Reassigned-number results.
    pub(crate) reassigned: Arc<dyn crate::compliance::ReassignedSource>,
    /// Missing calendars this process already saw reported (tenant, pack,
    /// year), so that decisions do not ask the database again.
    pub(crate) calendars_reported: std::sync::Mutex<std::collections::HashSet<(String, String, i32)>>,
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialer").field("packs", &self.packs.names()).finish_non_exhaustive()
    }
}

/// How long an ALLOW stays usable for `RecordCallAttempt`.
pub const DECISION_TTL: Duration = Duration::minutes(10);

impl Dialer {
    /// A dialer over `db`, asking `vault` about leads.
    pub fn new(
        db: DatabaseConnection,
        packs: Packs,
        registry: Registry,
        vault: Arc<dyn VaultPort>,
        outbox: Arc<tokio::sync::Notify>,
        registry_admins: Vec<String>,
    ) -> Self {
        let reassigned = Arc::new(crate::compliance::Imported(db.clone()));
        Self {
            db,
            packs,
            registry,
            vault,
            outbox,
            registry_admins,
            clock: Clock::system(),
            reassigned,
            calendars_reported: Default::default(),
        }
    }

    /// The same dialer asking `source` about reassigned numbers (a live
    /// client of the FCC's database) instead of the imported results.
    pub fn with_reassigned_source(mut self, source: Arc<dyn crate::compliance::ReassignedSource>) -> Self {
        self.reassigned = source;
        self
    }

    /// The server's time.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The same dialer on `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    // ---- policies ----

    async fn stored_policy(&self, tenant: &str, campaign: &str) -> Result<Policy> {
        let row = policy::Entity::find_by_id((tenant.to_owned(), campaign.to_owned())).one(&self.db).await?;
        Ok(match row {
            Some(r) => serde_json::from_str(&r.policy).map_err(|e| Error::Internal(format!("stored policy: {e}")))?,
            None => Policy::default(),
        })
    }

    /// The policy in force for a campaign (or the tenant, campaign empty).
    pub async fn policy(&self, tenant: &str, campaign: &str) -> Result<Effective> {
        let tenant_policy = self.stored_policy(tenant, "").await?;
        let p = if campaign.is_empty() {
            tenant_policy
        } else {
            self.stored_policy(tenant, campaign).await?.over(&tenant_policy)
        };
        Ok(p.effective())
    }

    /// The policy in force, for any user of the tenant; no service reads it
    /// without a user token.
    pub async fn get_policy(&self, who: &Caller, tenant: &str, campaign: &str) -> Result<Effective> {
        who.in_tenant(tenant)?;
        if let Caller::Service(name) = who {
            return Err(Error::PermissionDenied(format!("a tenant's policy is read with a user token, not as {name}")));
        }
        self.policy(tenant, campaign).await
    }

    /// Replaces the tenant's or a campaign's policy (`policy.manage`); audited.
    pub async fn set_policy(&self, who: &Caller, tenant: &str, campaign: &str, p: Policy) -> Result<Effective> {
        who.require("policy.manage", tenant, &[])?;
        p.validate(&self.packs).map_err(|(field, reason)| Error::invalid(field, reason))?;
        let json = serde_json::to_string(&p).map_err(|e| Error::Internal(e.to_string()))?;
        let txn = guardline_runtime::storage::write_txn(&self.db).await?;
        policy::Entity::delete_by_id((tenant.to_owned(), campaign.to_owned())).exec(&txn).await?;
        policy::Entity::insert(policy::ActiveModel {
            tenant_id: ActiveValue::Set(tenant.into()),
            campaign_id: ActiveValue::Set(campaign.into()),
            policy: ActiveValue::Set(json.clone()),
            updated_at: ActiveValue::Set(self.clock.now()),
        })
        .exec(&txn)
        .await?;
        let (user, service) = who.actor();
        let event = EventBuilder::new(tenant, "dialer.policy.set")
            .actor(user, service)
            .resource("campaign", campaign)
            .detail("policy", json);
        guardline_audit_client::enqueue(&txn, &event.build()).await?;
        txn.commit().await?;
        self.outbox.notify_one();
        self.policy(tenant, campaign).await
    }

    // ---- the decision ----

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
        let (lead_id, target) = match &q.callee {
            None => return Err(Error::invalid("callee", "a lead id or an E.164 number")),
            Some(Callee::Lead(id)) if id.is_empty() => return Err(Error::invalid("lead_id", "required")),
            Some(Callee::Lead(id)) => (id.clone(), self.vault.dial_target(&q.tenant, id).await?),
            Some(Callee::Number(n)) => {
                line("e164", n)?;
                let (blind_index, internal_dnc) = self.vault.lookup(&q.tenant, n).await?;
                (String::new(), Target { e164: n.clone(), blind_index, internal_dnc, ..Default::default() })
            }
        };
        let phone = Phone::parse(&target.e164, None).map_err(|_| Error::DataLoss("the lead's number".into()))?;
        let policy = self.policy(&q.tenant, &q.campaign).await?;
        let now = self.clock.now();
        let plan = q.plan_at.is_some();
        let at = q.plan_at.unwrap_or(now);
        let zones = callee::zones(&phone, &target.time_zone);
        let states = callee::states(&phone, &target.address_region);
        let subject = policy.subject.clone().unwrap_or_else(|| q.campaign.clone());
        let mut rules = Vec::new();

        rules.push(self.registry.rule(&phone, at, &policy));
        rules.push(self.internal_dnc_rule(&q.tenant, &target).await?);
        if !q.campaign.is_empty() {
            rules.push(self.campaign_dnc_rule(&q.tenant, &q.campaign, &target.blind_index).await?);
        }
        let (consent, granted) = self.consent_rule(&q, &lead_id, &policy, now).await?;
        rules.push(consent);
        // The FCC's Reassigned Numbers Database covers US numbers.
        if let Some(granted) = granted.filter(|_| phone.region() == "US") {
            rules.push(self.reassigned_rule(&q.tenant, &target.blind_index, granted).await?);
        }
        let packs = self.pack_names(phone.region(), &states, &policy);
        let (windows, subject_cap) = self.pack_rules(at, &packs, &zones, &policy);
        rules.extend(windows);
        let counts = self
            .cap_counts_on(
                &self.db,
                &Counted {
                    tenant: &q.tenant,
                    callee: &target.blind_index,
                    line: &q.caller_line,
                    agent: &agent,
                    subject: &subject,
                },
                at,
                &policy,
                subject_cap,
            )
            .await?;
        rules.extend(counts.into_iter().map(|(rule, count, limit, label)| cap(rule, count, limit, label)));
        let (health_rule, became_throttled) = self.health_rule(&q.tenant, &caller_line, at, &policy, !plan).await?;
        rules.push(health_rule);

        let verdict = combine(&rules);
        let (user, service) = who.actor();
        let denied: Vec<&str> = rules.iter().filter(|r| r.outcome != Verdict::Allow).map(|r| r.rule.as_str()).collect();
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
            guardline_audit_client::enqueue(&self.db, &event("dialer.plan", &id).build()).await?;
            self.outbox.notify_one();
            return Ok(Decision { id, verdict, rules, at, plan });
        }
        let id = format!("dec-{}", uuid::Uuid::now_v7().simple());
        let txn = guardline_runtime::storage::write_txn(&self.db).await?;
        decision::Entity::insert(decision::ActiveModel {
            id: ActiveValue::Set(id.clone()),
            tenant_id: ActiveValue::Set(q.tenant.clone()),
            lead_id: ActiveValue::Set(lead_id.clone()),
            callee: ActiveValue::Set(target.blind_index.clone()),
            caller_line: ActiveValue::Set(q.caller_line.clone()),
            agent_id: ActiveValue::Set(agent.clone()),
            campaign_id: ActiveValue::Set(q.campaign.clone()),
            verdict: ActiveValue::Set(verdict_name(verdict).into()),
            callee_cap_24h: ActiveValue::Set(policy.callee_max_24h as i32),
            decided_at: ActiveValue::Set(now),
            used: ActiveValue::Set(false),
            region: ActiveValue::Set(phone.region().to_owned()),
            zones: ActiveValue::Set(zones.iter().map(|z| z.name()).collect::<Vec<_>>().join(",")),
            packs: ActiveValue::Set(packs.join(",")),
            subject: ActiveValue::Set(subject),
            subject_cap_24h: ActiveValue::Set(subject_cap as i32),
        })
        .exec(&txn)
        .await?;
        guardline_audit_client::enqueue(&txn, &event("dialer.check", &id).build()).await?;
        if let Some(reason) = became_throttled {
            self.mark_throttled(&txn, &q.tenant, &q.caller_line, &reason).await?;
        }
        self.report_missing_calendars(&txn, &q.tenant, &packs, now).await?;
        txn.commit().await?;
        self.outbox.notify_one();
        Ok(Decision { id, verdict, rules, at, plan })
    }

    async fn internal_dnc_rule(&self, tenant: &str, target: &Target) -> Result<RuleResult> {
        if let Some(why) = &target.internal_dnc {
            return Ok(RuleResult::deny("dnc.internal", why.clone()));
        }
        let row = dnc::Entity::find_by_id((
            tenant.to_owned(),
            crate::dnc::INTERNAL.to_owned(),
            String::new(),
            target.blind_index.clone(),
        ))
        .one(&self.db)
        .await?;
        Ok(match row {
            Some(r) => RuleResult::deny("dnc.internal", format!("{} on {}", r.reason, r.added_at.format("%Y-%m-%d"))),
            None => RuleResult::allow("dnc.internal", "not on the tenant's list"),
        })
    }

    async fn campaign_dnc_rule(&self, tenant: &str, campaign: &str, blind_index: &[u8]) -> Result<RuleResult> {
        let listed = dnc::Entity::find()
            .filter(dnc::Column::TenantId.eq(tenant))
            .filter(dnc::Column::List.eq(crate::dnc::CAMPAIGN))
            .filter(dnc::Column::CampaignId.eq(campaign))
            .filter(dnc::Column::BlindIndex.eq(blind_index.to_vec()))
            .count(&self.db)
            .await?;
        Ok(if listed > 0 {
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

/// A caller line is the company's number, not a callee's: kept, but only
/// its country code and last four digits, so audit never holds a full number.
pub(crate) fn phone_free_line(line: &str) -> String {
    let digits: Vec<char> = line.chars().filter(char::is_ascii_digit).collect();
    let tail: String = digits[digits.len().saturating_sub(4)..].iter().collect();
    format!("…{tail}")
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

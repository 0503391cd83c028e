//! The dialer policy's use cases, free of tonic: who may call, policies, and
//! the one pre-dial decision. The lead vault is reached through
//! [`VaultPort`], so no proto type leaves `grpc.rs`.

pub mod attempts;
pub mod axb;
pub mod caps;
mod check;
pub mod compliance;
pub mod dnc;
pub mod registry;

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use guardline_audit_client::EventBuilder;
use guardline_authz::{Resource, Subject, decide};
use guardline_phone::Phone;
use guardline_runtime::clock::Clock;

use crate::domain::decision::{RuleResult, Verdict};
use crate::domain::policy::{Effective, Policy};
use crate::domain::window::Packs;
use crate::error::{Error, Result};
use crate::service::registry::Registry;
use crate::store::{Store, policies};

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
    pub(crate) store: Store,
    pub(crate) packs: Packs,
    pub(crate) registry: Registry,
    pub(crate) vault: Arc<dyn VaultPort>,
    /// Service accounts that may replace the national registry copy.
    pub(crate) registry_admins: Vec<String>,
    /// The server's time: every decision and attempt is judged by it.
    pub(crate) clock: Clock,
    /// Reassigned-number results.
    pub(crate) reassigned: Arc<dyn crate::service::compliance::ReassignedSource>,
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
        store: Store,
        packs: Packs,
        registry: Registry,
        vault: Arc<dyn VaultPort>,
        registry_admins: Vec<String>,
    ) -> Self {
        let reassigned = Arc::new(crate::service::compliance::Imported(store.clone()));
        Self {
            store,
            packs,
            registry,
            vault,
            registry_admins,
            clock: Clock::system(),
            reassigned,
            calendars_reported: Default::default(),
        }
    }

    /// The same dialer asking `source` about reassigned numbers (a live
    /// client of the FCC's database) instead of the imported results.
    pub fn with_reassigned_source(mut self, source: Arc<dyn crate::service::compliance::ReassignedSource>) -> Self {
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
        Ok(match policies::get(&self.store, tenant, campaign).await? {
            Some(json) => serde_json::from_str(&json).map_err(|e| Error::Internal(format!("stored policy: {e}")))?,
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
        let tx = self.store.begin().await?;
        policies::put(&tx, tenant, campaign, json.clone(), self.clock.now()).await?;
        let (user, service) = who.actor();
        let event = EventBuilder::new(tenant, "dialer.policy.set")
            .actor(user, service)
            .resource("campaign", campaign)
            .detail("policy", json);
        self.store.commit(tx, [event]).await?;
        self.policy(tenant, campaign).await
    }
}

/// A caller line is the company's number, not a callee's: kept, but only
/// its country code and last four digits, so audit never holds a full number.
pub(crate) fn phone_free_line(line: &str) -> String {
    let digits: Vec<char> = line.chars().filter(char::is_ascii_digit).collect();
    let tail: String = digits[digits.len().saturating_sub(4)..].iter().collect();
    format!("…{tail}")
}

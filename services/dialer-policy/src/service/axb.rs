//! AXB privacy numbers: the agent's line A reaches lead B through a virtual
//! number X from the tenant's pool. The agent only ever receives X and the
//! binding id; B's number is fetched from the lead vault at resolution time,
//! for the telephony bridge alone, and never stored here.

use chrono::{DateTime, Duration, Utc};
use guardline_audit_client::EventBuilder;
use guardline_authz::{Resource, decide};

use crate::error::{DialerError, Error, Result};
use crate::service::{Caller, Dialer, line};
use crate::store::{Tx, binding, privacy};

/// The longest binding.
pub const MAX_TTL_SECONDS: u32 = 86_400;

/// A binding as the agent sees it.
#[derive(Clone, Debug)]
pub struct Binding {
    /// Binding id.
    pub id: String,
    /// Virtual number X.
    pub privacy_number: String,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
}

/// A pool number not bound to `agent_line` at `now`, under the line's lock.
async fn free_number(tx: &Tx, tenant: &str, agent_line: &str, now: DateTime<Utc>) -> Result<String> {
    let pool = privacy::pool(tx, tenant).await?;
    let busy = privacy::busy(tx, tenant, agent_line, now).await?;
    pool.iter()
        .find(|x| !busy.contains(x))
        .cloned()
        .ok_or_else(|| DialerError::PoolExhausted { size: pool.len() }.into())
}

impl Dialer {
    /// Adds numbers to the tenant's pool (`policy.manage`); returns (added, pool size).
    pub async fn add_privacy_numbers(&self, who: &Caller, tenant: &str, numbers: &[String]) -> Result<(u64, u64)> {
        who.require("policy.manage", tenant, &[])?;
        if numbers.is_empty() {
            return Err(Error::invalid("numbers", "at least one"));
        }
        let parsed = numbers
            .iter()
            .enumerate()
            .map(|(i, n)| line(&format!("numbers[{i}]"), n).map(|p| p.e164().to_owned()))
            .collect::<Result<Vec<_>>>()?;
        let tx = self.store.begin().await?;
        let (added, size) = privacy::add_numbers(&tx, tenant, parsed, self.clock.now()).await?;
        let (user, service) = who.actor();
        let event = EventBuilder::new(tenant, "dialer.privacy_numbers.add")
            .actor(user, service)
            .detail("added", added)
            .detail("pool_size", size);
        self.store.commit(tx, [event]).await?;
        Ok((added, size))
    }

    /// Binds a free X between `agent_line` and the lead, for a user who may
    /// read the lead. An exhausted pool is RESOURCE_EXHAUSTED.
    pub async fn bind(
        &self,
        who: &Caller,
        tenant: &str,
        agent_line: &str,
        lead_id: &str,
        ttl_seconds: u32,
    ) -> Result<Binding> {
        who.in_tenant(tenant)?;
        let Caller::User(user) = who else {
            return Err(Error::PermissionDenied("an agent binds a privacy number, with their token".into()));
        };
        let a = line("agent_line", agent_line)?;
        if lead_id.is_empty() {
            return Err(Error::invalid("lead_id", "required"));
        }
        if !(1..=MAX_TTL_SECONDS).contains(&ttl_seconds) {
            return Err(Error::invalid("ttl_seconds", format!("between 1 and {MAX_TTL_SECONDS}")));
        }
        let target = self.vault.dial_target(tenant, lead_id).await?;
        let res = Resource {
            tenant: tenant.into(),
            owner: Some(target.owner_id.clone()),
            team: Some(target.team_id.clone()),
        };
        if !decide(user, "lead.read", &res).allowed {
            // Outside the caller's scope a lead does not exist.
            return Err(Error::NotFound);
        }
        let now = self.clock.now();
        let tx = self.store.begin().await?;
        crate::store::lock(&tx, &[format!("{tenant}/axb/{}", a.e164())]).await?;
        let x = free_number(&tx, tenant, a.e164(), now).await?;
        let b = Binding {
            id: format!("bind-{}", uuid::Uuid::now_v7().simple()),
            privacy_number: x,
            expires_at: now + Duration::seconds(i64::from(ttl_seconds)),
        };
        let row = binding::Model {
            id: b.id.clone(),
            tenant_id: tenant.into(),
            privacy_number: b.privacy_number.clone(),
            agent_line: a.e164().into(),
            agent_id: user.user.clone(),
            lead_id: lead_id.into(),
            created_at: now,
            expires_at: b.expires_at,
            released_at: None,
        };
        privacy::insert_binding(&tx, row).await?;
        let event = EventBuilder::new(tenant, "dialer.binding.create")
            .actor(&user.user, "")
            .resource("binding", &b.id)
            .detail("lead_id", lead_id)
            .detail("ttl_seconds", ttl_seconds);
        self.store.commit(tx, [event]).await?;
        Ok(b)
    }

    /// B's real number for X dialled from A: the telephony bridge only (the
    /// allow-list and this check), an active binding only; audited.
    pub async fn resolve(&self, who: &Caller, tenant: &str, x: &str, calling_line: &str) -> Result<(String, String)> {
        let Caller::Service(service) = who else {
            return Err(Error::PermissionDenied("only the telephony bridge resolves privacy numbers".into()));
        };
        who.in_tenant(tenant)?;
        let x = line("privacy_number", x)?;
        let a = line("calling_line", calling_line)?;
        let b = privacy::live_binding(&self.store, tenant, (x.e164(), a.e164()), self.clock.now())
            .await?
            .ok_or(Error::NotFound)?;
        let target = self.vault.dial_target(tenant, &b.lead_id).await?;
        let event = EventBuilder::new(tenant, "dialer.binding.resolve")
            .actor("", service)
            .resource("binding", &b.id)
            .detail("lead_id", &b.lead_id);
        self.store.audit(event).await?;
        Ok((target.e164, b.id))
    }

    /// Ends a binding early: its agent, or a user with `policy.manage`.
    pub async fn release(&self, who: &Caller, tenant: &str, binding_id: &str) -> Result<()> {
        who.in_tenant(tenant)?;
        let b = privacy::binding(&self.store, binding_id)
            .await?
            .filter(|b| b.tenant_id == tenant)
            .ok_or(Error::NotFound)?;
        let allowed = match who {
            Caller::User(u) => {
                u.user == b.agent_id
                    || decide(u, "policy.manage", &Resource { tenant: tenant.into(), ..Default::default() }).allowed
            }
            Caller::Service(_) => true,
        };
        if !allowed {
            return Err(Error::NotFound);
        }
        if b.released_at.is_none() {
            let tx = self.store.begin().await?;
            privacy::release(&tx, &b.id, self.clock.now()).await?;
            let (user, service) = who.actor();
            let event =
                EventBuilder::new(tenant, "dialer.binding.release").actor(user, service).resource("binding", &b.id);
            self.store.commit(tx, [event]).await?;
        }
        Ok(())
    }
}

//! AXB privacy numbers: the agent's line A reaches lead B through a virtual
//! number X from the tenant's pool. The agent only ever receives X and the
//! binding id; B's number is fetched from the lead vault at resolution time,
//! for the telephony bridge alone, and never stored here.

use chrono::{DateTime, Duration, Utc};
use guardline_audit_client::EventBuilder;
use guardline_authz::{Resource, decide};
use sea_orm::{ActiveValue, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};

use crate::error::{Error, Result};
use crate::service::{Caller, Dialer, line};
use crate::store::{binding, privacy_number};

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
        let txn = guardline_runtime::storage::write_txn(&self.db).await?;
        let mut added = 0;
        for n in parsed {
            if privacy_number::Entity::find_by_id((tenant.to_owned(), n.clone())).one(&txn).await?.is_none() {
                privacy_number::Entity::insert(privacy_number::ActiveModel {
                    tenant_id: ActiveValue::Set(tenant.into()),
                    number: ActiveValue::Set(n),
                    added_at: ActiveValue::Set(self.clock.now()),
                })
                .exec(&txn)
                .await?;
                added += 1;
            }
        }
        let size =
            privacy_number::Entity::find().filter(privacy_number::Column::TenantId.eq(tenant)).count(&txn).await?;
        let (user, service) = who.actor();
        let event = EventBuilder::new(tenant, "dialer.privacy_numbers.add")
            .actor(user, service)
            .detail("added", added)
            .detail("pool_size", size);
        guardline_audit_client::enqueue(&txn, &event.build()).await?;
        txn.commit().await?;
        self.outbox.notify_one();
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
        let txn = guardline_runtime::storage::write_txn(&self.db).await?;
        crate::attempts::lock(&txn, &[format!("{tenant}/axb/{}", a.e164())]).await?;
        let pool: Vec<String> = privacy_number::Entity::find()
            .filter(privacy_number::Column::TenantId.eq(tenant))
            .order_by_asc(privacy_number::Column::Number)
            .all(&txn)
            .await?
            .into_iter()
            .map(|p| p.number)
            .collect();
        let busy: Vec<String> = binding::Entity::find()
            .filter(binding::Column::TenantId.eq(tenant))
            .filter(binding::Column::AgentLine.eq(a.e164()))
            .filter(binding::Column::ReleasedAt.is_null())
            .filter(binding::Column::ExpiresAt.gt(now))
            .all(&txn)
            .await?
            .into_iter()
            .map(|b| b.privacy_number)
            .collect();
        let Some(x) = pool.iter().find(|x| !busy.contains(x)).cloned() else {
            return Err(Error::ResourceExhausted(format!(
                "the privacy-number pool is exhausted: all {} numbers are bound to this agent line; release a binding or add numbers",
                pool.len()
            )));
        };
        let b = Binding {
            id: format!("bind-{}", uuid::Uuid::now_v7().simple()),
            privacy_number: x,
            expires_at: now + Duration::seconds(i64::from(ttl_seconds)),
        };
        binding::Entity::insert(binding::ActiveModel {
            id: ActiveValue::Set(b.id.clone()),
            tenant_id: ActiveValue::Set(tenant.into()),
            privacy_number: ActiveValue::Set(b.privacy_number.clone()),
            agent_line: ActiveValue::Set(a.e164().into()),
            agent_id: ActiveValue::Set(user.user.clone()),
            lead_id: ActiveValue::Set(lead_id.into()),
            created_at: ActiveValue::Set(now),
            expires_at: ActiveValue::Set(b.expires_at),
            released_at: ActiveValue::Set(None),
        })
        .exec(&txn)
        .await?;
        let event = EventBuilder::new(tenant, "dialer.binding.create")
            .actor(&user.user, "")
            .resource("binding", &b.id)
            .detail("lead_id", lead_id)
            .detail("ttl_seconds", ttl_seconds);
        guardline_audit_client::enqueue(&txn, &event.build()).await?;
        txn.commit().await?;
        self.outbox.notify_one();
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
        let b = binding::Entity::find()
            .filter(binding::Column::TenantId.eq(tenant))
            .filter(binding::Column::PrivacyNumber.eq(x.e164()))
            .filter(binding::Column::AgentLine.eq(a.e164()))
            .filter(binding::Column::ReleasedAt.is_null())
            .filter(binding::Column::ExpiresAt.gt(self.clock.now()))
            .one(&self.db)
            .await?
            .ok_or(Error::NotFound)?;
        let target = self.vault.dial_target(tenant, &b.lead_id).await?;
        let event = EventBuilder::new(tenant, "dialer.binding.resolve")
            .actor("", service)
            .resource("binding", &b.id)
            .detail("lead_id", &b.lead_id);
        guardline_audit_client::enqueue(&self.db, &event.build()).await?;
        self.outbox.notify_one();
        Ok((target.e164, b.id))
    }

    /// Ends a binding early: its agent, or a user with `policy.manage`.
    pub async fn release(&self, who: &Caller, tenant: &str, binding_id: &str) -> Result<()> {
        who.in_tenant(tenant)?;
        let b = binding::Entity::find_by_id(binding_id.to_owned())
            .one(&self.db)
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
            binding::Entity::update(binding::ActiveModel {
                id: ActiveValue::Unchanged(b.id.clone()),
                released_at: ActiveValue::Set(Some(self.clock.now())),
                ..Default::default()
            })
            .exec(&self.db)
            .await?;
            let (user, service) = who.actor();
            let event =
                EventBuilder::new(tenant, "dialer.binding.release").actor(user, service).resource("binding", &b.id);
            guardline_audit_client::enqueue(&self.db, &event.build()).await?;
            self.outbox.notify_one();
        }
        Ok(())
    }
}

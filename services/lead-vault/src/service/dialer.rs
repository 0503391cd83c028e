//! What the lead vault answers dialer-policy alone (allow-listed): the
//! number to dial with its blind index recomputed from it, and numbers
//! mapped to blind indexes under the tenant's lookup budget, batches
//! audited with their size.

use guardline_audit_client::EventBuilder;
use guardline_phone::Phone;

use super::{DialTarget, MAX_LOOKUPS, Vault, dnc_reason};
use crate::error::{Error, Result, VaultError};

impl Vault {
    /// For dialer-policy only (allow-listed): the number to dial, its blind
    /// index, the callee's time zone and the owner. Audited through the outbox.
    pub async fn dial_target(&self, tenant: &str, id: &str, index: u32) -> Result<DialTarget> {
        if tenant.is_empty() {
            return Err(Error::invalid("tenant_id", "required"));
        }
        let row = self.store.tenant_lead(tenant, id).await?.ok_or(Error::NotFound)?;
        self.check_mac(&row).await?;
        let pii = self.open(&row).await?;
        let e164 = pii
            .phones
            .get(index as usize)
            .cloned()
            .ok_or_else(|| Error::invalid("phone_index", format!("the lead has {} number(s)", pii.phones.len())))?;
        // From the number itself, never the stored index: an edited index
        // row would otherwise carry a listed number past every list.
        let phone = Phone::parse(&e164, None).map_err(|_| Error::Internal("a stored number does not parse".into()))?;
        let blind_index = phone.blind_index(&self.index_key(tenant).await?).to_vec();
        let event = EventBuilder::new(tenant, "lead.dial_target")
            .actor("", "dialer-policy")
            .resource("lead", id)
            .detail("phone_index", index);
        self.store.audit(event).await?;
        let internal_dnc = self.internal_dnc(tenant, &blind_index).await?;
        Ok(DialTarget {
            e164,
            blind_index,
            time_zone: row.time_zone,
            owner_id: row.owner_id,
            team_id: row.team_id,
            internal_dnc,
            address_region: pii.address.province,
        })
    }

    /// For dialer-policy: a number's blind index in `tenant` and why it is on
    /// the internal do-not-call list, if it is. Not audited: it reveals
    /// nothing the dialer did not send.
    pub async fn lookup_number(&self, tenant: &str, e164: &str) -> Result<(Vec<u8>, Option<String>)> {
        if tenant.is_empty() {
            return Err(Error::invalid("tenant_id", "required"));
        }
        let phone = Phone::parse(e164, None).map_err(|_| Error::invalid("e164", "not a valid E.164 number"))?;
        self.charge_lookups(tenant, 1)?;
        let blind_index = phone.blind_index(&self.index_key(tenant).await?).to_vec();
        let reason = self.internal_dnc(tenant, &blind_index).await?;
        Ok((blind_index, reason))
    }

    /// [`Vault::lookup_number`] for up to [`MAX_LOOKUPS`] numbers, in order:
    /// one index key, one query for the do-not-call rows.
    pub async fn lookup_numbers(&self, tenant: &str, e164: &[String]) -> Result<Vec<(Vec<u8>, Option<String>)>> {
        if tenant.is_empty() {
            return Err(Error::invalid("tenant_id", "required"));
        }
        if e164.len() > MAX_LOOKUPS {
            return Err(Error::invalid("e164", format!("at most {MAX_LOOKUPS} numbers per call")));
        }
        let mut phones = Vec::with_capacity(e164.len());
        for (i, n) in e164.iter().enumerate() {
            phones.push(
                Phone::parse(n, None).map_err(|_| Error::invalid(format!("e164[{i}]"), "not a valid E.164 number"))?,
            );
        }
        self.charge_lookups(tenant, phones.len() as u32)?;
        let key = self.index_key(tenant).await?;
        let indexes: Vec<Vec<u8>> = phones.iter().map(|p| p.blind_index(&key).to_vec()).collect();
        let listed = self.store.internal_dnc_among(tenant, indexes.clone()).await?;
        // The volume is audited: mapping numbers to indexes by enumeration
        // shows as a run of these.
        let event = EventBuilder::new(tenant, "lead.lookup_numbers")
            .actor("", "dialer-policy")
            .resource("tenant", tenant)
            .detail("count", indexes.len());
        self.store.audit(event).await?;
        Ok(indexes
            .into_iter()
            .map(|ix| {
                let why = listed.iter().find(|r| r.blind_index == ix).map(dnc_reason);
                (ix, why)
            })
            .collect())
    }

    /// Takes `n` numbers from the tenant's lookup budget.
    fn charge_lookups(&self, tenant: &str, n: u32) -> Result<()> {
        match self.lookups.as_ref().map(|b| b.take(tenant, n)) {
            Some(Err(wait)) => Err(VaultError::LookupBudgetExceeded { retry_after_ms: wait.as_millis() as u64 }.into()),
            _ => Ok(()),
        }
    }

    async fn internal_dnc(&self, tenant: &str, blind_index: &[u8]) -> Result<Option<String>> {
        Ok(self.store.internal_dnc(tenant, blind_index).await?.map(|r| dnc_reason(&r)))
    }
}

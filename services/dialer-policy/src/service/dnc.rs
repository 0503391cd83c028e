//! Do-not-call lists: the tenant's internal list (opt-outs, additions) and
//! campaign lists, both by the lead vault's blind index so that the dialer
//! never stores a number; and imports, including the national registry copy
//! (platform-wide, for the registry admins' service identities only).

use chrono::NaiveDate;
use guardline_audit_client::EventBuilder;

use crate::domain::numbers::LineParser;
use crate::error::{Error, Result};
use crate::service::{Caller, Dialer};
use crate::store::lists;
pub use crate::store::lists::{CAMPAIGN, INTERNAL};

/// Numbers per lead-vault `LookupNumbers` call.
const LOOKUP_BATCH: usize = 1000;
/// The audit log that platform-wide events (registry imports) go to.
pub const PLATFORM_TENANT: &str = "_platform";

/// Which tenant list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TenantList {
    /// Opt-outs and manual additions.
    Internal,
    /// A campaign's list.
    Campaign(String),
}

impl TenantList {
    fn key(&self) -> (&'static str, &str) {
        match self {
            Self::Internal => (INTERNAL, ""),
            Self::Campaign(c) => (CAMPAIGN, c),
        }
    }
}

/// What an import is for.
#[derive(Clone, Debug)]
pub enum ImportTarget {
    /// The national registry copy of a region, dated.
    National {
        /// ISO 3166 region.
        region: String,
        /// Date of the copy.
        date: NaiveDate,
    },
    /// A tenant list.
    Tenant {
        /// Tenant.
        tenant: String,
        /// List.
        list: TenantList,
    },
}

/// An import's outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Imported {
    /// Numbers loaded.
    pub loaded: u64,
    /// Lines refused.
    pub rejected: u64,
}

enum Change {
    Add(Vec<Vec<u8>>),
    Remove(Vec<Vec<u8>>),
}

impl Dialer {
    pub(crate) async fn blind_indexes(&self, tenant: &str, e164: &[String], extra: &[Vec<u8>]) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::with_capacity(e164.len() + extra.len());
        for (i, n) in e164.iter().enumerate() {
            crate::service::line(&format!("e164[{i}]"), n)?;
        }
        for (i, b) in extra.iter().enumerate() {
            if b.len() != 32 {
                return Err(Error::invalid(format!("blind_indexes[{i}]"), "a blind index is 32 bytes"));
            }
        }
        // The vault indexes numbers in batches (one key, one round trip each).
        for chunk in e164.chunks(LOOKUP_BATCH) {
            out.extend(self.vault.blind_indexes(tenant, chunk).await?);
        }
        out.extend(extra.iter().cloned());
        Ok(out)
    }

    /// Adds numbers (or blind indexes) to a tenant list (`dnc.manage`); audited with the count.
    pub async fn add_to_dnc(
        &self,
        who: &Caller,
        tenant: &str,
        list: TenantList,
        e164: &[String],
        blind: &[Vec<u8>],
        reason: &str,
    ) -> Result<u64> {
        who.require("dnc.manage", tenant, &[])?;
        if reason.trim().is_empty() {
            return Err(Error::invalid("reason", "say why"));
        }
        if let TenantList::Campaign(c) = &list
            && c.is_empty()
        {
            return Err(Error::invalid("campaign_id", "required for a campaign list"));
        }
        let keys = self.blind_indexes(tenant, e164, blind).await?;
        if keys.is_empty() {
            return Err(Error::invalid("e164", "at least one number or blind index"));
        }
        self.change(who, tenant, "dialer.dnc.add", &list, Change::Add(keys), reason).await
    }

    // Adds or removes numbers, audited in the same transaction.
    async fn change(
        &self,
        who: &Caller,
        tenant: &str,
        action: &str,
        list: &TenantList,
        change: Change,
        reason: &str,
    ) -> Result<u64> {
        let key = list.key();
        let tx = self.store.begin().await?;
        let count = match change {
            Change::Add(keys) => lists::add(&tx, tenant, key, keys, reason, self.clock.now()).await?,
            Change::Remove(keys) => lists::remove(&tx, tenant, key, keys).await?,
        };
        let (user, service) = who.actor();
        let event = EventBuilder::new(tenant, action)
            .actor(user, service)
            .resource("dnc_list", key.0)
            .detail("campaign_id", key.1)
            .detail("count", count)
            .detail("reason", reason);
        self.store.commit(tx, [event]).await?;
        Ok(count)
    }

    /// Removes numbers from a tenant list (`dnc.manage`); audited. Erasures
    /// the lead vault keeps are not on this list and cannot be removed.
    pub async fn remove_from_dnc(
        &self,
        who: &Caller,
        tenant: &str,
        list: TenantList,
        e164: &[String],
        reason: &str,
    ) -> Result<u64> {
        who.require("dnc.manage", tenant, &[])?;
        if reason.trim().is_empty() {
            return Err(Error::invalid("reason", "say why"));
        }
        let keys = self.blind_indexes(tenant, e164, &[]).await?;
        if keys.is_empty() {
            return Err(Error::invalid("e164", "at least one number"));
        }
        self.change(who, tenant, "dialer.dnc.remove", &list, Change::Remove(keys), reason).await
    }

    /// Checks who may import into `target` before any data is read.
    pub fn authorize_import(&self, who: &Caller, target: &ImportTarget) -> Result<()> {
        match target {
            ImportTarget::National { region, .. } => {
                if region.len() != 2 || !region.bytes().all(|b| b.is_ascii_uppercase()) {
                    return Err(Error::invalid("header.region", "an ISO 3166 code such as US"));
                }
                match who {
                    Caller::Service(s) if self.registry_admins.iter().any(|a| a == s) => Ok(()),
                    _ => Err(Error::PermissionDenied(
                        "the national registry is platform-wide: only the registry admins' services replace it".into(),
                    )),
                }
            }
            ImportTarget::Tenant { tenant, list } => {
                if let TenantList::Campaign(c) = list
                    && c.is_empty()
                {
                    return Err(Error::invalid("header.campaign_id", "required for a campaign list"));
                }
                who.require("dnc.manage", tenant, &[])
            }
        }
    }

    /// Loads a parsed file into `target`: a national copy replaces the
    /// region's copy atomically; a tenant list gains the numbers.
    pub async fn import(&self, who: &Caller, target: ImportTarget, parsed: LineParser) -> Result<Imported> {
        self.authorize_import(who, &target)?;
        let (numbers, rejected) = parsed.finish();
        match target {
            ImportTarget::National { region, date } => {
                let loaded = self.registry.install(&self.store, &region, date, numbers, self.clock.now()).await?;
                let (user, service) = who.actor();
                let event = EventBuilder::new(PLATFORM_TENANT, "dialer.registry.import")
                    .actor(user, service)
                    .resource("registry", &region)
                    .detail("copy_date", date)
                    .detail("numbers", loaded)
                    .detail("rejected", rejected);
                self.store.audit(event).await?;
                Ok(Imported { loaded, rejected })
            }
            ImportTarget::Tenant { tenant, list } => {
                let e164: Vec<String> = numbers.iter().map(|n| format!("+{n}")).collect();
                let keys = self.blind_indexes(&tenant, &e164, &[]).await?;
                let loaded = self.change(who, &tenant, "dialer.dnc.import", &list, Change::Add(keys), "import").await?;
                Ok(Imported { loaded, rejected })
            }
        }
    }
}

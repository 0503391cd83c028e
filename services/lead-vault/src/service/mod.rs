//! The lead vault's operations: encrypted records, scoped masked reads, and
//! reveal behind a synchronous audit event. Every PII field is sealed under
//! the lead's record key with associated data binding tenant, lead, field and
//! version; phone numbers are also indexed blindly for exact lookup.

mod actor;
pub mod bulk;
pub mod consent;
mod dialer;
pub mod erasure;
mod record_mac;
pub mod rotation;
pub mod settings;
pub mod update;

use std::sync::Arc;

pub use actor::{Actor, Caller};

use guardline_audit_client::Outcome;
use guardline_audit_client::{AuditClient, EventBuilder};
use guardline_authz::{Resource, Scope, Subject, decide, widest_scope};
use guardline_keys::{Envelope, SealedRecordKey, open_field, seal_field};
use serde::Serialize;

use crate::domain::lead::parse_phones;
pub use crate::domain::lead::{Address, DialTarget, Field, LeadInput, Pii, check_text, time_zone_or_derived};
use crate::domain::mask;
use crate::error::{Error, Result, VaultError};
use crate::store::{Owners, Store, lead};
use guardline_phone::Phone;

/// A lead as a caller may see it.
pub struct View {
    /// Stored row (ids, scope, status).
    pub row: lead::Model,
    /// Decrypted PII; the API layer masks it.
    pub pii: Pii,
}

const FIELDS: [&str; 5] = ["phones", "name", "address", "needs", "notes"];
const INDEX_KEY: &str = "phone-blind-index";
/// Why a number is on the internal do-not-call list, as the dialer shows it.
fn dnc_reason(r: &crate::store::internal_dnc::Model) -> String {
    format!("{} on {}", r.reason, r.added_at.format("%Y-%m-%d"))
}

/// The most numbers one `LookupNumbers` call takes.
pub const MAX_LOOKUPS: usize = 1000;
/// The reason given for a number that already belongs to a lead of the tenant.
pub(crate) const DUPLICATE: &str = "already belongs to a lead of this tenant";
const MAC_KEY: &str = "lead-mac";

/// The lead vault's state.
pub struct Vault {
    pub(crate) store: Store,
    envelope: Arc<Envelope>,
    audit: AuditClient,
    /// Reveals per user per day.
    pub reveal_quota: u32,
    /// Leads exported per tenant per day.
    pub export_quota: u64,
    /// Numbers looked up per tenant per second (None: no limit).
    pub lookups: Option<guardline_runtime::ratelimit::Budget>,
    /// The recordings service, asked to erase a lead's recordings on erasure.
    pub recordings: Option<Arc<dyn crate::service::erasure::RecordingsEraser>>,
    /// Opened tenant secrets, kept as long as data keys are
    /// (`DATA_KEY_TTL`); their clear value never changes, only their sealing.
    secrets: tokio::sync::Mutex<std::collections::HashMap<(String, String), CachedSecret>>,
    /// The server's time: consent activity, quotas by day, erasure deadlines.
    pub clock: guardline_runtime::clock::Clock,
    /// Format-1 record MACs still verify: true until the upgrade has found
    /// none left, so that a copy of an old MAC cannot vouch for an edited
    /// time zone afterwards.
    pub(crate) mac_v1_accepted: std::sync::atomic::AtomicBool,
    /// This replica's leases: a tenant's data-key rotation runs in one.
    pub(crate) leases: guardline_runtime::lease::Leases,
    /// Tenants whose rotation runs in this process.
    pub(crate) rotating: std::sync::Mutex<std::collections::HashSet<String>>,
}

struct CachedSecret {
    key: zeroize::Zeroizing<Vec<u8>>,
    opened: std::time::Instant,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault").field("reveal_quota", &self.reveal_quota).finish_non_exhaustive()
    }
}

impl Vault {
    /// Assembles the vault.
    pub fn new(store: Store, envelope: Arc<Envelope>, audit: AuditClient) -> Self {
        let leases = store.leases();
        Self {
            store,
            envelope,
            audit,
            reveal_quota: 50,
            export_quota: 10_000,
            lookups: None,
            recordings: None,
            secrets: Default::default(),
            clock: guardline_runtime::clock::Clock::system(),
            mac_v1_accepted: std::sync::atomic::AtomicBool::new(true),
            leases,
            rotating: Default::default(),
        }
    }

    /// Dates consent, quotas, deadlines and leases by `clock` (the server's).
    pub fn set_clock(&mut self, clock: guardline_runtime::clock::Clock) {
        self.leases = self.leases.clone().with_clock(clock.clone());
        self.clock = clock;
    }

    /// A per-tenant 256-bit secret of `kind` (blind-index key, MAC key),
    /// created on first use and stored sealed under the tenant data key.
    pub(crate) async fn tenant_secret(&self, tenant: &str, kind: &str) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        let id = (tenant.to_owned(), kind.to_owned());
        if let Some(c) = self.secrets.lock().await.get(&id)
            && c.opened.elapsed() < guardline_service::DATA_KEY_TTL
        {
            return Ok(c.key.clone());
        }
        if let Some(s) = self.store.secret(tenant, kind).await? {
            let key = self.envelope.open_secret(tenant, kind, tenant, &s.data_key_id, &s.sealed).await?;
            let cached = CachedSecret { key: key.clone(), opened: std::time::Instant::now() };
            let mut secrets = self.secrets.lock().await;
            secrets.retain(|_, c| c.opened.elapsed() < guardline_service::DATA_KEY_TTL);
            secrets.insert(id, cached);
            return Ok(key);
        }
        let mut key = vec![0u8; 32];
        aws_lc_rs::rand::fill(&mut key).map_err(|_| Error::Internal("random".into()))?;
        let (dk, sealed) = self.envelope.seal_secret(tenant, kind, tenant, &key).await?;
        if !self.store.insert_secret(tenant, kind, dk, sealed).await? {
            // Another replica created it first.
            return Box::pin(self.tenant_secret(tenant, kind)).await;
        }
        Ok(zeroize::Zeroizing::new(key))
    }

    /// The record MAC (format 2): HMAC-SHA256 over every clear column that
    /// decides access, compliance or the sealed fields' opening (scope,
    /// status, version, key, region, time zone, source, tags), prefixed by
    /// its format byte.
    pub(crate) async fn mac(&self, row: &lead::Model) -> Result<Vec<u8>> {
        let key = self.tenant_secret(&row.tenant_id, MAC_KEY).await?;
        Ok(record_mac::v2(&key, row))
    }

    /// Checks a row's MAC. A format-1 MAC (no region, time zone, source or
    /// tags) is accepted only until [`Vault::upgrade_macs`] has moved every
    /// row of the table to format 2.
    pub(crate) async fn check_mac(&self, row: &lead::Model) -> Result<()> {
        let key = self.tenant_secret(&row.tenant_id, MAC_KEY).await?;
        let legacy = self.mac_v1_accepted.load(std::sync::atomic::Ordering::Acquire);
        if !record_mac::verify(&key, row, legacy) {
            tracing::error!(lead = %row.id, "lead metadata changed outside the service");
            return Err(VaultError::IntegrityFailed.into());
        }
        Ok(())
    }

    /// Creates a lead. Nothing is written unless every field is valid and no
    /// number belongs to another lead of the tenant.
    pub async fn create(&self, who: &Subject, tenant: &str, input: LeadInput) -> Result<View> {
        let (owner, team) = placement(who, tenant, &input)?;
        let phones = parse_phones(&input.phones, &input.default_region)?;
        let region = (!input.default_region.is_empty()).then_some(input.default_region.as_str());
        input.check_texts()?;
        let time_zone = time_zone_or_derived(&input.time_zone, &phones[0])?;
        let key = self.tenant_secret(tenant, INDEX_KEY).await?;
        let id = format!("lead-{}", uuid::Uuid::now_v7().simple());
        let (rk, sealed_rk) = self.envelope.new_record_key(tenant, &id).await?;
        let version = 1u64;
        let seal = |field: &str, clear: &[u8]| seal_field(&rk, tenant, &id, field, version, clear);
        let e164: Vec<String> = phones.iter().map(|p| p.e164().to_owned()).collect();
        let mut row = lead::Model {
            id: id.clone(),
            tenant_id: tenant.into(),
            owner_id: owner,
            team_id: team,
            status: "new".into(),
            version: version as i64,
            source: input.source.clone(),
            // The region of the first number; the default region only for
            // numbers that belong to none (non-geographic).
            region: match phones[0].region() {
                "" => region.unwrap_or_default().to_owned(),
                r => r.to_owned(),
            },
            time_zone,
            tags: serde_json::to_string(&input.tags).unwrap_or_default(),
            key_data_key_id: sealed_rk.data_key_id.clone(),
            key_sealed: Some(sealed_rk.sealed.clone()),
            phones_sealed: seal("phones", to_json(&e164).as_bytes())?,
            name_sealed: seal("name", input.name.as_bytes())?,
            address_sealed: seal("address", to_json(&input.address).as_bytes())?,
            needs_sealed: seal("needs", input.needs.as_bytes())?,
            notes_sealed: seal("notes", input.notes.as_bytes())?,
            mac: Vec::new(),
            created_at: self.clock.now(),
        };
        row.mac = self.mac(&row).await?;
        let indexes: Vec<Vec<u8>> = phones.iter().map(|p| p.blind_index(&key).to_vec()).collect();
        let event = EventBuilder::new(tenant, "lead.create")
            .actor(&who.user, "")
            .resource("lead", &id)
            .detail("fields", FIELDS.join(","));
        if let Some(i) = self.store.insert_lead(&row, &indexes, event).await? {
            return Err(Error::invalid(format!("lead.phones[{i}]"), DUPLICATE));
        }
        Ok(View {
            row,
            pii: Pii { phones: e164, name: input.name, address: input.address, needs: input.needs, notes: input.notes },
        })
    }

    pub(crate) async fn open(&self, row: &lead::Model) -> Result<Pii> {
        let sealed = SealedRecordKey {
            data_key_id: row.key_data_key_id.clone(),
            sealed: row.key_sealed.clone().ok_or(Error::NotFound)?,
        };
        let rk = self.envelope.open_record_key(&row.tenant_id, &row.id, &sealed).await?;
        let v = row.version as u64;
        let field = |name: &'static str, sealed: &[u8]| -> Result<String> {
            let unreadable = |_| Error::from(VaultError::FieldUnreadable { field: name });
            let clear = open_field(&rk, &row.tenant_id, &row.id, name, v, sealed).map_err(unreadable)?;
            String::from_utf8(clear.to_vec()).map_err(|_| VaultError::FieldUnreadable { field: name }.into())
        };
        Ok(Pii {
            phones: serde_json::from_str(&field("phones", &row.phones_sealed)?)
                .map_err(|_| VaultError::FieldUnreadable { field: "phones" })?,
            name: field("name", &row.name_sealed)?,
            address: serde_json::from_str(&field("address", &row.address_sealed)?)
                .map_err(|_| VaultError::FieldUnreadable { field: "address" })?,
            needs: field("needs", &row.needs_sealed)?,
            notes: field("notes", &row.notes_sealed)?,
        })
    }

    /// A lead within the caller's `lead.read` scope; NOT_FOUND otherwise.
    pub async fn get(&self, who: &Subject, tenant: &str, id: &str) -> Result<View> {
        if who.tenant != tenant || widest_scope(who, "lead.read").is_none() {
            return Err(Error::PermissionDenied("no role grants lead.read in this tenant".into()));
        }
        let row = self.store.lead(id).await?.filter(|l| l.tenant_id == tenant).ok_or(Error::NotFound)?;
        // The metadata that decides access is trusted only once its MAC checks.
        self.check_mac(&row).await?;
        let res =
            Resource { tenant: tenant.into(), owner: Some(row.owner_id.clone()), team: Some(row.team_id.clone()) };
        if !decide(who, "lead.read", &res).allowed {
            return Err(Error::NotFound);
        }
        let pii = self.open(&row).await?;
        Ok(View { row, pii })
    }

    /// Leads within the caller's scope, newest first.
    pub async fn list(&self, who: &Subject, tenant: &str, before: Option<&str>, limit: u64) -> Result<Vec<View>> {
        if who.tenant != tenant {
            return Err(Error::PermissionDenied("cross-tenant access is never allowed".into()));
        }
        let scope =
            widest_scope(who, "lead.read").ok_or_else(|| Error::PermissionDenied("no role grants lead.read".into()))?;
        let owners = match scope {
            Scope::Own => Owners::Owner(who.user.clone()),
            Scope::Team => Owners::Teams(who.teams.iter().cloned().collect()),
            Scope::Tenant => Owners::All,
        };
        let rows = self.store.leads(tenant, owners, before, limit).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            self.check_mac(&row).await?;
            let pii = self.open(&row).await?;
            out.push(View { row, pii });
        }
        Ok(out)
    }

    /// One field in clear, after a synchronous audit event: refused
    /// (UNAVAILABLE) when audit cannot acknowledge it. Returns the value and
    /// the reveals left today.
    pub async fn reveal(
        &self,
        who: &Subject,
        tenant: &str,
        id: &str,
        field: Option<Field>,
        reason: &str,
    ) -> Result<(String, u32)> {
        // Authorization first: a caller who may not reveal learns nothing of
        // the request's rules.
        if !who.may_ever("lead.reveal", tenant) {
            return Err(Error::PermissionDenied("lead.reveal is not granted".into()));
        }
        let field =
            field.ok_or_else(|| Error::invalid("field", "name a field: PHONE, NAME, ADDRESS, NEEDS or NOTES"))?;
        let view = self.get(who, tenant, id).await?;
        let d = decide(
            who,
            "lead.reveal",
            &Resource {
                tenant: tenant.into(),
                owner: Some(view.row.owner_id.clone()),
                team: Some(view.row.team_id.clone()),
            },
        );
        if !d.allowed {
            return Err(Error::PermissionDenied(d.rule));
        }
        if reason.trim().len() < 4 || reason.len() > 500 {
            return Err(Error::invalid("reason", "say why, in 4 to 500 characters"));
        }
        let value = view.pii.value(field)?;
        // Quota first, audit second, count last: a reveal refused because
        // audit is down costs the user nothing.
        if self.reveals_today(tenant, &who.user).await? >= self.reveal_quota {
            return Err(VaultError::RevealQuotaUsedUp.into());
        }
        let event = EventBuilder::new(tenant, "lead.reveal")
            .actor(&who.user, "")
            .resource("lead", id)
            .outcome(Outcome::Allowed, reason.trim())
            .detail("field", field.name())
            .detail("count", 1);
        self.audit.append_now(vec![event.build()]).await?;
        let used = self.count_reveal(tenant, &who.user).await?;
        Ok((value, self.reveal_quota.saturating_sub(used)))
    }

    fn today(&self) -> String {
        self.clock.now().format("%Y-%m-%d").to_string()
    }

    async fn reveals_today(&self, tenant: &str, user: &str) -> Result<u32> {
        self.store.reveals(tenant, user, &self.today()).await
    }

    /// Counts one reveal for `user` today; returns the count including it.
    async fn count_reveal(&self, tenant: &str, user: &str) -> Result<u32> {
        self.store.count_reveal(tenant, user, &self.today()).await
    }

    /// Scans a tenant (`audit.read`): leads whose metadata MAC fails, whose
    /// fields do not open, or whose version is below the latest the audit
    /// log recorded for them (a row restored from an older copy, MAC and
    /// all). Returns (scanned, [(lead, problem)]).
    pub async fn verify_integrity(
        &self,
        who: &Subject,
        tenant: &str,
        ledger: &dyn VersionLedger,
    ) -> Result<(u64, Vec<(String, &'static str)>)> {
        let d = decide(who, "audit.read", &Resource { tenant: tenant.into(), ..Default::default() });
        if !d.allowed {
            return Err(Error::PermissionDenied(d.rule));
        }
        let rows = self.store.all_leads(tenant).await?;
        let latest = ledger.latest_versions(tenant).await?;
        let mut findings = Vec::new();
        for row in &rows {
            if self.check_mac(row).await.is_err() {
                findings.push((row.id.clone(), "mac_mismatch"));
            } else if latest.get(&row.id).is_some_and(|v| row.version < *v) {
                findings.push((row.id.clone(), "rolled_back"));
            } else if self.open(row).await.is_err() {
                findings.push((row.id.clone(), "undecryptable"));
            }
        }
        let event = EventBuilder::new(tenant, "lead.verify_integrity")
            .actor(&who.user, "")
            .detail("scanned", rows.len())
            .detail("findings", findings.len());
        self.store.audit(event).await?;
        Ok((rows.len() as u64, findings))
    }

    /// The audit client (synchronous appends).
    pub(crate) fn audit(&self) -> &AuditClient {
        &self.audit
    }

    /// The envelope (for changes that re-seal).
    pub(crate) fn envelope(&self) -> &Arc<Envelope> {
        &self.envelope
    }

    /// The tenant's blind-index key.
    pub(crate) async fn index_key(&self, tenant: &str) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        self.tenant_secret(tenant, INDEX_KEY).await
    }

    /// The masked rendering of a view's PII: (phones, name, address).
    pub fn masked(view: &View) -> (Vec<String>, String, String) {
        let phones = view
            .pii
            .phones
            .iter()
            .map(|p| Phone::parse(p, None).map(|p| p.masked()).unwrap_or_else(|_| "***".into()))
            .collect();
        (phones, mask::name(&view.pii.name), mask::address(&view.pii.address.province, &view.pii.address.city))
    }
}

/// Where the latest version of each lead was recorded outside its row: the
/// audit log, whose events of every update and transfer name the version
/// they wrote.
#[async_trait::async_trait]
pub trait VersionLedger: Send + Sync {
    /// The highest version recorded per lead of `tenant`.
    async fn latest_versions(&self, tenant: &str) -> Result<std::collections::HashMap<String, i64>>;
}

/// Who owns a new lead and in which team, if the caller may write it there.
fn placement(who: &Subject, tenant: &str, input: &LeadInput) -> Result<(String, String)> {
    let owner = if input.owner_id.is_empty() { who.user.clone() } else { input.owner_id.clone() };
    // The caller's team for their own leads; another owner's team must be
    // named (the vault does not know it, and guessing would put the lead
    // out of its team lead's sight).
    let team = match (input.team_id.is_empty(), owner == who.user) {
        (false, _) => input.team_id.clone(),
        (true, true) => who.teams.iter().next().cloned().unwrap_or_default(),
        (true, false) => String::new(),
    };
    let res = Resource { tenant: tenant.into(), owner: Some(owner.clone()), team: Some(team.clone()) };
    let d = decide(who, "lead.write", &res);
    if !d.allowed {
        return Err(Error::PermissionDenied(d.rule));
    }
    if team.is_empty() && owner != who.user {
        return Err(Error::invalid("lead.team_id", "required when the lead is for another owner"));
    }
    Ok((owner, team))
}

/// JSON of a plain value (serializing strings and structs of strings cannot fail).
fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

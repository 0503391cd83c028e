//! The lead vault's operations: encrypted records, scoped masked reads, and
//! reveal behind a synchronous audit event. Every PII field is sealed under
//! the lead's record key with associated data binding tenant, lead, field and
//! version; phone numbers are also indexed blindly for exact lookup.

use std::sync::Arc;

use guardline_audit_client::Outcome;
use guardline_audit_client::{AuditClient, EventBuilder};
use guardline_authz::{Resource, Scope, Subject, decide, widest_scope};
use guardline_keys::{Envelope, SealedRecordKey, open_field, seal_field};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::domain::mask;
use crate::error::{Error, Result};
use crate::store::{lead, phone_index, reveal_count, tenant_secret};
use guardline_phone::{Phone, PhoneError};

/// A structured address.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Address {
    /// Province or state.
    pub province: String,
    /// City.
    pub city: String,
    /// District.
    pub district: String,
    /// Street.
    pub street: String,
}

/// What dialer-policy needs to decide on a call.
#[derive(Clone)]
pub struct DialTarget {
    /// E.164 number.
    pub e164: String,
    /// Its blind index.
    pub blind_index: Vec<u8>,
    /// The callee's IANA time zone (empty when unknown).
    pub time_zone: String,
    /// Owning agent.
    pub owner_id: String,
    /// Owning team.
    pub team_id: String,
    /// Why the number is on the internal do-not-call list, if it is.
    pub internal_dnc: Option<String>,
    /// The address's province or state as written, for state laws.
    pub address_region: String,
}

/// What a caller submits for a lead, in clear.
#[derive(Clone, Default)]
pub struct LeadInput {
    /// Raw phone numbers.
    pub phones: Vec<String>,
    /// Region for national numbers.
    pub default_region: String,
    /// Name.
    pub name: String,
    /// Address.
    pub address: Address,
    /// Needs.
    pub needs: String,
    /// Notes.
    pub notes: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Source.
    pub source: String,
    /// Time zone.
    pub time_zone: String,
    /// Owner (the caller when empty).
    pub owner_id: String,
    /// Team (the caller's first team when empty).
    pub team_id: String,
}

/// The decrypted PII of a lead.
#[derive(Clone, Default)]
pub struct Pii {
    /// E.164 numbers.
    pub phones: Vec<String>,
    /// Name.
    pub name: String,
    /// Address.
    pub address: Address,
    /// Needs.
    pub needs: String,
    /// Notes.
    pub notes: String,
}

/// A lead as a caller may see it.
pub struct View {
    /// Stored row (ids, scope, status).
    pub row: lead::Model,
    /// Decrypted PII; the API layer masks it.
    pub pii: Pii,
}

/// A revealable field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// A phone, by position.
    Phone(usize),
    /// Name.
    Name,
    /// Full address.
    Address,
    /// Needs.
    Needs,
    /// Notes.
    Notes,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Self::Phone(_) => "phone",
            Self::Name => "name",
            Self::Address => "address",
            Self::Needs => "needs",
            Self::Notes => "notes",
        }
    }
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
    pub(crate) db: DatabaseConnection,
    envelope: Arc<Envelope>,
    audit: AuditClient,
    pub(crate) outbox: Arc<Notify>,
    /// Reveals per user per day.
    pub reveal_quota: u32,
    /// Leads exported per tenant per day.
    pub export_quota: u64,
    /// The recordings service, asked to erase a lead's recordings on erasure.
    pub recordings: Option<Arc<dyn crate::erasure::RecordingsEraser>>,
    /// Opened tenant secrets, kept as long as data keys are
    /// (`DATA_KEY_TTL`); their clear value never changes, only their sealing.
    secrets: tokio::sync::Mutex<std::collections::HashMap<(String, String), CachedSecret>>,
    /// The server's time: consent activity, quotas by day, erasure deadlines.
    pub clock: guardline_runtime::clock::Clock,
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

/// Checks free text: length and no control characters (newlines allowed).
/// The lead's IANA time zone: the one given, else the one its primary number
/// determines (see [`Phone::derived_time_zone`]); empty when the number's
/// country has several zones, so that the dialer respects all of them.
pub(crate) fn time_zone_or_derived(given: &str, primary: &Phone) -> Result<String> {
    if given.is_empty() {
        return Ok(primary.derived_time_zone().map(|tz| tz.name().to_owned()).unwrap_or_default());
    }
    given.parse::<chrono_tz::Tz>().map_err(|_| Error::invalid("lead.time_zone", "not an IANA time zone"))?;
    Ok(given.to_owned())
}

pub(crate) fn check_text(field: &str, v: &str, max: usize) -> Result<()> {
    if v.chars().count() > max || v.chars().any(|c| c.is_control() && c != '\n') {
        return Err(Error::invalid(field, format!("at most {max} printable characters")));
    }
    Ok(())
}

impl Vault {
    /// Assembles the vault.
    pub fn new(db: DatabaseConnection, envelope: Arc<Envelope>, audit: AuditClient, outbox: Arc<Notify>) -> Self {
        Self {
            db,
            envelope,
            audit,
            outbox,
            reveal_quota: 50,
            export_quota: 10_000,
            recordings: None,
            secrets: Default::default(),
            clock: guardline_runtime::clock::Clock::system(),
        }
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
        if let Some(s) = tenant_secret::Entity::find_by_id(id.clone()).one(&self.db).await? {
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
        let row = tenant_secret::ActiveModel {
            tenant_id: Set(tenant.into()),
            kind: Set(kind.into()),
            data_key_id: Set(dk),
            sealed: Set(sealed),
        };
        if tenant_secret::Entity::insert(row).exec(&self.db).await.is_err() {
            // Another replica created it first.
            return Box::pin(self.tenant_secret(tenant, kind)).await;
        }
        Ok(zeroize::Zeroizing::new(key))
    }

    /// The record MAC: HMAC-SHA256 over the metadata a database edit could
    /// use to widen access or hide changes.
    pub(crate) async fn mac(&self, row: &lead::Model) -> Result<Vec<u8>> {
        let key = self.tenant_secret(&row.tenant_id, MAC_KEY).await?;
        let mut msg = b"guardline/lead-mac/v1".to_vec();
        for part in [
            &row.id,
            &row.tenant_id,
            &row.owner_id,
            &row.team_id,
            &row.status,
            &row.version.to_string(),
            &row.key_data_key_id,
        ] {
            msg.extend_from_slice(&(part.len() as u32).to_be_bytes());
            msg.extend_from_slice(part.as_bytes());
        }
        let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key);
        Ok(aws_lc_rs::hmac::sign(&k, &msg).as_ref().to_vec())
    }

    pub(crate) async fn check_mac(&self, row: &lead::Model) -> Result<()> {
        let expected = self.mac(row).await?;
        if aws_lc_rs::constant_time::verify_slices_are_equal(&expected, &row.mac).is_err() {
            tracing::error!(lead = %row.id, "lead metadata changed outside the service");
            return Err(Error::DataLoss("the lead failed its integrity check".into()));
        }
        Ok(())
    }

    /// Creates a lead. Nothing is written unless every field is valid and no
    /// number belongs to another lead of the tenant.
    pub async fn create(&self, who: &Subject, tenant: &str, input: LeadInput) -> Result<View> {
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
        if input.phones.is_empty() {
            return Err(Error::invalid("lead.phones", "at least one phone number"));
        }
        let region = (!input.default_region.is_empty()).then_some(input.default_region.as_str());
        let mut phones = Vec::new();
        for (i, raw) in input.phones.iter().enumerate() {
            let p = Phone::parse(raw, region).map_err(|e| match e {
                PhoneError::Region => Error::invalid("lead.default_region", "not an ISO 3166 region code"),
                PhoneError::Invalid => Error::invalid(format!("lead.phones[{i}]"), "not a valid phone number"),
            })?;
            phones.push(p);
        }
        check_text("lead.name", &input.name, 200)?;
        check_text("lead.needs", &input.needs, 4000)?;
        check_text("lead.notes", &input.notes, 4000)?;
        for (f, v) in [
            ("lead.address.province", &input.address.province),
            ("lead.address.city", &input.address.city),
            ("lead.address.district", &input.address.district),
            ("lead.address.street", &input.address.street),
        ] {
            check_text(f, v, 200)?;
        }
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
        let txn = guardline_runtime::storage::write_txn(&self.db).await?;
        for (i, p) in phones.iter().enumerate() {
            let bi = p.blind_index(&key).to_vec();
            let taken = phone_index::Entity::find_by_id((tenant.to_owned(), bi.clone())).one(&txn).await?;
            if taken.is_some() {
                return Err(Error::invalid(format!("lead.phones[{i}]"), DUPLICATE));
            }
            phone_index::Entity::insert(phone_index::ActiveModel {
                tenant_id: Set(tenant.into()),
                blind_index: Set(bi),
                lead_id: Set(id.clone()),
                position: Set(i as i32),
            })
            .exec(&txn)
            .await?;
        }
        lead::Entity::insert(lead::ActiveModel::from(row.clone())).exec(&txn).await?;
        let event = EventBuilder::new(tenant, "lead.create")
            .actor(&who.user, "")
            .resource("lead", &id)
            .detail("fields", FIELDS.join(","));
        guardline_audit_client::enqueue(&txn, &event.build()).await?;
        txn.commit().await?;
        self.outbox.notify_one();
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
        let field = |name: &str, sealed: &[u8]| -> Result<String> {
            let clear = open_field(&rk, &row.tenant_id, &row.id, name, v, sealed)
                .map_err(|_| Error::DataLoss("a lead field failed authentication".into()))?;
            String::from_utf8(clear.to_vec()).map_err(|_| Error::DataLoss("a lead field is not text".into()))
        };
        Ok(Pii {
            phones: serde_json::from_str(&field("phones", &row.phones_sealed)?)
                .map_err(|_| Error::DataLoss("phones".into()))?,
            name: field("name", &row.name_sealed)?,
            address: serde_json::from_str(&field("address", &row.address_sealed)?)
                .map_err(|_| Error::DataLoss("address".into()))?,
            needs: field("needs", &row.needs_sealed)?,
            notes: field("notes", &row.notes_sealed)?,
        })
    }

    /// For dialer-policy only (allow-listed): the number to dial, its blind
    /// index, the callee's time zone and the owner. Audited through the outbox.
    pub async fn dial_target(&self, tenant: &str, id: &str, index: u32) -> Result<DialTarget> {
        if tenant.is_empty() {
            return Err(Error::invalid("tenant_id", "required"));
        }
        let row = lead::Entity::find_by_id(id.to_owned())
            .filter(lead::Column::TenantId.eq(tenant))
            .one(&self.db)
            .await?
            .ok_or(Error::NotFound)?;
        self.check_mac(&row).await?;
        let pii = self.open(&row).await?;
        let e164 = pii
            .phones
            .get(index as usize)
            .cloned()
            .ok_or_else(|| Error::invalid("phone_index", format!("the lead has {} number(s)", pii.phones.len())))?;
        let blind_index = phone_index::Entity::find()
            .filter(phone_index::Column::TenantId.eq(tenant))
            .filter(phone_index::Column::LeadId.eq(id))
            .filter(phone_index::Column::Position.eq(index as i32))
            .one(&self.db)
            .await?
            .ok_or(Error::NotFound)?
            .blind_index;
        let event = EventBuilder::new(tenant, "lead.dial_target")
            .actor("", "dialer-policy")
            .resource("lead", id)
            .detail("phone_index", index);
        let txn = guardline_runtime::storage::write_txn(&self.db).await?;
        guardline_audit_client::enqueue(&txn, &event.build()).await?;
        txn.commit().await?;
        self.outbox.notify_one();
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
        let key = self.index_key(tenant).await?;
        let indexes: Vec<Vec<u8>> = phones.iter().map(|p| p.blind_index(&key).to_vec()).collect();
        let listed = crate::store::internal_dnc::Entity::find()
            .filter(crate::store::internal_dnc::Column::TenantId.eq(tenant))
            .filter(crate::store::internal_dnc::Column::BlindIndex.is_in(indexes.clone()))
            .all(&self.db)
            .await?;
        Ok(indexes
            .into_iter()
            .map(|ix| {
                let why = listed.iter().find(|r| r.blind_index == ix).map(dnc_reason);
                (ix, why)
            })
            .collect())
    }

    async fn internal_dnc(&self, tenant: &str, blind_index: &[u8]) -> Result<Option<String>> {
        Ok(crate::store::internal_dnc::Entity::find_by_id((tenant.to_owned(), blind_index.to_vec()))
            .one(&self.db)
            .await?
            .map(|r| dnc_reason(&r)))
    }

    /// A lead within the caller's `lead.read` scope; NOT_FOUND otherwise.
    pub async fn get(&self, who: &Subject, tenant: &str, id: &str) -> Result<View> {
        if who.tenant != tenant || widest_scope(who, "lead.read").is_none() {
            return Err(Error::PermissionDenied("no role grants lead.read in this tenant".into()));
        }
        let row = lead::Entity::find_by_id(id.to_owned())
            .one(&self.db)
            .await?
            .filter(|l| l.tenant_id == tenant)
            .ok_or(Error::NotFound)?;
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
        let mut q = lead::Entity::find().filter(lead::Column::TenantId.eq(tenant)).order_by_desc(lead::Column::Id);
        q = match scope {
            Scope::Own => q.filter(lead::Column::OwnerId.eq(&who.user)),
            Scope::Team => q.filter(lead::Column::TeamId.is_in(who.teams.iter().cloned().collect::<Vec<_>>())),
            Scope::Tenant => q,
        };
        if let Some(b) = before {
            q = q.filter(lead::Column::Id.lt(b));
        }
        let rows = q.limit(limit.clamp(1, 1000)).all(&self.db).await?;
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
        field: Field,
        reason: &str,
    ) -> Result<(String, u32)> {
        // Authorization first: a caller who may not reveal learns nothing of
        // the request's rules.
        if !who.may_ever("lead.reveal", tenant) {
            return Err(Error::PermissionDenied("lead.reveal is not granted".into()));
        }
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
        let value = match field {
            Field::Phone(i) => {
                view.pii.phones.get(i).cloned().ok_or_else(|| Error::invalid("index", "no phone at that position"))?
            }
            Field::Name => view.pii.name.clone(),
            Field::Address => {
                let a = &view.pii.address;
                [&a.province, &a.city, &a.district, &a.street]
                    .iter()
                    .filter(|s| !s.is_empty())
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            }
            Field::Needs => view.pii.needs.clone(),
            Field::Notes => view.pii.notes.clone(),
        };
        // Quota first, audit second, count last: a reveal refused because
        // audit is down costs the user nothing.
        if self.reveals_today(tenant, &who.user).await? >= self.reveal_quota {
            return Err(Error::ResourceExhausted("daily reveal quota used up".into()));
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
        let key = (tenant.to_owned(), user.to_owned(), self.today());
        Ok(reveal_count::Entity::find_by_id(key).one(&self.db).await?.map_or(0, |r| r.count as u32))
    }

    /// Counts one reveal for `user` today; returns the count including it.
    async fn count_reveal(&self, tenant: &str, user: &str) -> Result<u32> {
        let day = self.today();
        let key = (tenant.to_owned(), user.to_owned(), day.clone());
        let txn = guardline_runtime::storage::write_txn(&self.db).await?;
        let n = match reveal_count::Entity::find_by_id(key.clone()).one(&txn).await? {
            Some(r) => {
                reveal_count::Entity::update_many()
                    .col_expr(reveal_count::Column::Count, Expr::value(r.count + 1))
                    .filter(reveal_count::Column::TenantId.eq(tenant))
                    .filter(reveal_count::Column::UserId.eq(user))
                    .filter(reveal_count::Column::Day.eq(&day))
                    .filter(reveal_count::Column::Count.eq(r.count))
                    .exec(&txn)
                    .await?;
                r.count + 1
            }
            None => {
                reveal_count::Entity::insert(reveal_count::ActiveModel {
                    tenant_id: Set(key.0),
                    user_id: Set(key.1),
                    day: Set(key.2),
                    count: Set(1),
                })
                .exec(&txn)
                .await?;
                1
            }
        };
        txn.commit().await?;
        Ok(n as u32)
    }

    /// Scans a tenant (`audit.read`): leads whose metadata MAC fails or whose
    /// fields do not open. Returns (scanned, [(lead, problem)]).
    pub async fn verify_integrity(&self, who: &Subject, tenant: &str) -> Result<(u64, Vec<(String, &'static str)>)> {
        let d = decide(who, "audit.read", &Resource { tenant: tenant.into(), ..Default::default() });
        if !d.allowed {
            return Err(Error::PermissionDenied(d.rule));
        }
        let rows = lead::Entity::find()
            .filter(lead::Column::TenantId.eq(tenant))
            .order_by_asc(lead::Column::Id)
            .all(&self.db)
            .await?;
        let mut findings = Vec::new();
        for row in &rows {
            if self.check_mac(row).await.is_err() {
                findings.push((row.id.clone(), "mac_mismatch"));
            } else if self.open(row).await.is_err() {
                findings.push((row.id.clone(), "undecryptable"));
            }
        }
        let event = EventBuilder::new(tenant, "lead.verify_integrity")
            .actor(&who.user, "")
            .detail("scanned", rows.len())
            .detail("findings", findings.len());
        let txn = guardline_runtime::storage::write_txn(&self.db).await?;
        guardline_audit_client::enqueue(&txn, &event.build()).await?;
        txn.commit().await?;
        self.outbox.notify_one();
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

/// JSON of a plain value (serializing strings and structs of strings cannot fail).
fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

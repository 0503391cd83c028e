//! Changes to leads: updates with an optimistic version check, and transfers
//! of ownership. Every change bumps the version, re-seals every field under
//! it (the version is in each field's associated data), renews the record
//! MAC, and is audited with the names of the changed fields, never values.

use guardline_audit_client::EventBuilder;
use guardline_authz::{Resource, Subject, decide};
use guardline_keys::{SealedRecordKey, seal_field};

use crate::domain::lead::{MAX_NAME, MAX_TEXT, check_address, check_text, parse_phones, time_zone_or_derived};
use crate::error::{Error, Result, VaultError};
use crate::service::{LeadInput, Pii, Vault, View};
use crate::store::{Written, lead};
use guardline_phone::Phone;

/// Fields an update may name.
pub const UPDATABLE: &[&str] = &["phones", "name", "address", "needs", "notes", "tags", "source", "time_zone"];

impl Vault {
    /// `row` (already carrying its new version, owner, status) with `pii`
    /// sealed under that version and its MAC renewed.
    pub(crate) async fn resealed(&self, mut row: lead::Model, pii: &Pii) -> Result<lead::Model> {
        let sealed = SealedRecordKey {
            data_key_id: row.key_data_key_id.clone(),
            sealed: row.key_sealed.clone().ok_or(Error::NotFound)?,
        };
        let rk = self.envelope().open_record_key(&row.tenant_id, &row.id, &sealed).await?;
        let v = row.version as u64;
        let (tenant, id) = (row.tenant_id.clone(), row.id.clone());
        let seal = |field: &str, clear: &[u8]| seal_field(&rk, &tenant, &id, field, v, clear);
        row.phones_sealed = seal("phones", serde_json::to_string(&pii.phones).unwrap_or_default().as_bytes())?;
        row.name_sealed = seal("name", pii.name.as_bytes())?;
        row.address_sealed = seal("address", serde_json::to_string(&pii.address).unwrap_or_default().as_bytes())?;
        row.needs_sealed = seal("needs", pii.needs.as_bytes())?;
        row.notes_sealed = seal("notes", pii.notes.as_bytes())?;
        row.mac = self.mac(&row).await?;
        Ok(row)
    }

    /// Applies the fields named in `fields` (`lead.write` on the lead).
    pub async fn update(
        &self,
        who: &Subject,
        tenant: &str,
        id: &str,
        expected: u64,
        input: LeadInput,
        fields: &[String],
    ) -> Result<View> {
        let View { row, mut pii } = self.get(who, tenant, id).await?;
        let d = decide(
            who,
            "lead.write",
            &Resource { tenant: tenant.into(), owner: Some(row.owner_id.clone()), team: Some(row.team_id.clone()) },
        );
        if !d.allowed {
            return Err(Error::PermissionDenied(d.rule));
        }
        if fields.is_empty() {
            return Err(Error::invalid("update_fields", "name at least one field"));
        }
        if let Some((i, _)) = fields.iter().enumerate().find(|(_, f)| !UPDATABLE.contains(&f.as_str())) {
            return Err(Error::invalid(format!("update_fields[{i}]"), format!("one of {}", UPDATABLE.join(", "))));
        }
        if expected != row.version as u64 {
            return Err(VaultError::LeadChanged.into());
        }
        let (mut next, new_phones) = merged(&row, &mut pii, &input, fields)?;
        next.version = row.version + 1;
        let indexes = match new_phones {
            Some(parsed) => {
                let key = self.index_key(tenant).await?;
                Some(parsed.iter().map(|p| p.blind_index(&key).to_vec()).collect::<Vec<_>>())
            }
            None => None,
        };
        let written = self.resealed(next, &pii).await?;
        let event = EventBuilder::new(tenant, "lead.update")
            .actor(&who.user, "")
            .resource("lead", id)
            .detail("fields", fields.join(","))
            .detail("version", written.version);
        match self.store.update_leads(&[(written.clone(), row.version)], indexes.as_deref(), vec![event]).await? {
            Written::Done => Ok(View { row: written, pii }),
            Written::Taken(i) => Err(Error::invalid(format!("lead.phones[{i}]"), crate::service::DUPLICATE)),
            Written::Changed => Err(changed()),
        }
    }

    /// Moves leads of `from` to `to` (`lead.transfer`); all of them when
    /// `ids` is empty. Returns how many moved.
    pub async fn transfer(&self, who: &Subject, tenant: &str, from: &str, to: &str, ids: &[String]) -> Result<u64> {
        let d = decide(who, "lead.transfer", &Resource { tenant: tenant.into(), ..Default::default() });
        if !d.allowed {
            return Err(Error::PermissionDenied(d.rule));
        }
        if from.is_empty() || to.is_empty() || from == to {
            return Err(Error::invalid("to_owner_id", "give two different owners"));
        }
        let rows = self.store.owned_by(tenant, from, ids).await?;
        let mut updates = Vec::with_capacity(rows.len());
        for row in &rows {
            self.check_mac(row).await?;
            let pii = self.open(row).await?;
            let next = lead::Model { owner_id: to.into(), version: row.version + 1, ..row.clone() };
            updates.push((self.resealed(next, &pii).await?, row.version));
        }
        // One event per lead, naming the version it now has: the audit log
        // is the ledger `VerifyIntegrity` checks rows against.
        let at = self.clock.now().to_rfc3339();
        let events = updates.iter().map(|(next, _)| {
            EventBuilder::new(tenant, "lead.transfer")
                .actor(&who.user, "")
                .resource("lead", &next.id)
                .detail("from", from)
                .detail("to", to)
                .detail("version", next.version)
                .detail("at", &at)
        });
        match self.store.update_leads(&updates, None, events.collect()).await? {
            Written::Done => Ok(rows.len() as u64),
            Written::Taken(_) | Written::Changed => Err(changed()),
        }
    }
}

/// The lead with the named fields of `input` merged in, each validated as
/// a creation would, and the new numbers if they change.
fn merged(
    row: &lead::Model,
    pii: &mut Pii,
    input: &LeadInput,
    fields: &[String],
) -> Result<(lead::Model, Option<Vec<Phone>>)> {
    // Validate as a creation would, on the merged record.
    let has = |f: &str| fields.iter().any(|x| x == f);
    let mut next = row.clone();
    let mut new_phones = None;
    if has("phones") {
        let parsed = parse_phones(&input.phones, &input.default_region)?;
        pii.phones = parsed.iter().map(|p| p.e164().to_owned()).collect();
        if !parsed[0].region().is_empty() {
            next.region = parsed[0].region().to_owned();
        }
        new_phones = Some(parsed);
    }
    if has("name") {
        check_text("lead.name", &input.name, MAX_NAME)?;
        pii.name = input.name.clone();
    }
    if has("address") {
        check_address(&input.address)?;
        pii.address = input.address.clone();
    }
    if has("needs") {
        check_text("lead.needs", &input.needs, MAX_TEXT)?;
        pii.needs = input.needs.clone();
    }
    if has("notes") {
        check_text("lead.notes", &input.notes, MAX_TEXT)?;
        pii.notes = input.notes.clone();
    }
    if has("tags") {
        next.tags = serde_json::to_string(&input.tags).unwrap_or_default();
    }
    if has("source") {
        next.source = input.source.clone();
    }
    if has("time_zone") {
        // Empty means "derive it from the primary number" (the new one
        // when the phones change in the same update).
        let primary = match &new_phones {
            Some(parsed) => parsed[0].clone(),
            None => Phone::parse(pii.phones.first().map(String::as_str).unwrap_or_default(), None)
                .map_err(|_| VaultError::FieldUnreadable { field: "phones" })?,
        };
        next.time_zone = time_zone_or_derived(&input.time_zone, &primary)?;
    }
    Ok((next, new_phones))
}

fn changed() -> Error {
    VaultError::LeadChanged.into()
}

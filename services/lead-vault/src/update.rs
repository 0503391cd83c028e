//! Changes to leads: updates with an optimistic version check, and transfers
//! of ownership. Every change bumps the version, re-seals every field under
//! it (the version is in each field's associated data), renews the record
//! MAC, and is audited with the names of the changed fields, never values.

use guardline_audit_client::EventBuilder;
use guardline_authz::{Resource, Subject, decide};
use guardline_keys::{SealedRecordKey, seal_field};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use crate::error::{Error, Result};
use crate::service::{LeadInput, Pii, Vault, View};
use crate::store::{lead, phone_index};
use guardline_phone::Phone;

/// Fields an update may name.
pub const UPDATABLE: &[&str] = &["phones", "name", "address", "needs", "notes", "tags", "source", "time_zone"];

impl Vault {
    /// Writes `row` (already carrying its new version, owner, status) with
    /// `pii` re-sealed under that version, if the stored version is still `expected`.
    pub(crate) async fn write_back(
        &self,
        txn: &impl ConnectionTrait,
        mut row: lead::Model,
        pii: &Pii,
        expected: i64,
    ) -> Result<lead::Model> {
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
        // Every column is written: an ActiveModel made from a Model marks them unchanged.
        let active = lead::ActiveModel::from(row.clone()).reset_all();
        let updated = lead::Entity::update_many()
            .set(active)
            .filter(lead::Column::Id.eq(&row.id))
            .filter(lead::Column::Version.eq(expected))
            .exec(txn)
            .await?;
        if updated.rows_affected != 1 {
            return Err(Error::Aborted("the lead changed meanwhile; read it again".into()));
        }
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
            return Err(Error::Aborted("the lead changed since it was read; read it again".into()));
        }
        // Validate as a creation would, on the merged record.
        let has = |f: &str| fields.iter().any(|x| x == f);
        let mut next = row.clone();
        let mut new_phones = None;
        if has("phones") {
            let region = (!input.default_region.is_empty()).then_some(input.default_region.as_str());
            let mut parsed = Vec::new();
            for (i, raw) in input.phones.iter().enumerate() {
                parsed.push(
                    Phone::parse(raw, region)
                        .map_err(|_| Error::invalid(format!("lead.phones[{i}]"), "not a valid phone number"))?,
                );
            }
            if parsed.is_empty() {
                return Err(Error::invalid("lead.phones", "at least one phone number"));
            }
            pii.phones = parsed.iter().map(|p| p.e164().to_owned()).collect();
            if !parsed[0].region().is_empty() {
                next.region = parsed[0].region().to_owned();
            }
            new_phones = Some(parsed);
        }
        if has("name") {
            crate::service::check_text("lead.name", &input.name, 200)?;
            pii.name = input.name.clone();
        }
        if has("address") {
            pii.address = input.address.clone();
        }
        if has("needs") {
            crate::service::check_text("lead.needs", &input.needs, 4000)?;
            pii.needs = input.needs.clone();
        }
        if has("notes") {
            crate::service::check_text("lead.notes", &input.notes, 4000)?;
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
                    .map_err(|_| Error::DataLoss("the stored primary number does not parse".into()))?,
            };
            next.time_zone = crate::service::time_zone_or_derived(&input.time_zone, &primary)?;
        }
        next.version = row.version + 1;
        let txn = guardline_runtime::storage::write_txn(&self.db).await?;
        if let Some(parsed) = new_phones {
            let key = self.index_key(tenant).await?;
            phone_index::Entity::delete_many()
                .filter(phone_index::Column::TenantId.eq(tenant))
                .filter(phone_index::Column::LeadId.eq(id))
                .exec(&txn)
                .await?;
            for (i, p) in parsed.iter().enumerate() {
                let bi = p.blind_index(&key).to_vec();
                if phone_index::Entity::find_by_id((tenant.to_owned(), bi.clone())).one(&txn).await?.is_some() {
                    return Err(Error::invalid(format!("lead.phones[{i}]"), crate::service::DUPLICATE));
                }
                phone_index::Entity::insert(phone_index::ActiveModel {
                    tenant_id: Set(tenant.into()),
                    blind_index: Set(bi),
                    lead_id: Set(id.into()),
                    position: Set(i as i32),
                })
                .exec(&txn)
                .await?;
            }
        }
        let written = self.write_back(&txn, next, &pii, row.version).await?;
        let event = EventBuilder::new(tenant, "lead.update")
            .actor(&who.user, "")
            .resource("lead", id)
            .detail("fields", fields.join(","))
            .detail("version", written.version);
        guardline_audit_client::enqueue(&txn, &event.build()).await?;
        txn.commit().await?;
        self.outbox.notify_one();
        Ok(View { row: written, pii })
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
        let mut q =
            lead::Entity::find().filter(lead::Column::TenantId.eq(tenant)).filter(lead::Column::OwnerId.eq(from));
        if !ids.is_empty() {
            q = q.filter(lead::Column::Id.is_in(ids.to_vec()));
        }
        let rows = q.all(&self.db).await?;
        let txn = guardline_runtime::storage::write_txn(&self.db).await?;
        for row in &rows {
            self.check_mac(row).await?;
            let pii = self.open(row).await?;
            let next = lead::Model { owner_id: to.into(), version: row.version + 1, ..row.clone() };
            self.write_back(&txn, next, &pii, row.version).await?;
        }
        let event = EventBuilder::new(tenant, "lead.transfer")
            .actor(&who.user, "")
            .resource("user", from)
            .detail("to", to)
            .detail("count", rows.len())
            .detail("at", self.clock.now().to_rfc3339());
        guardline_audit_client::enqueue(&txn, &event.build()).await?;
        txn.commit().await?;
        self.outbox.notify_one();
        Ok(rows.len() as u64)
    }
}

//! Erasure by crypto-shredding. `request_erasure` opens a case with a
//! deadline; `execute_erasure` asks recordings to erase the lead's
//! recordings (a legal hold blocks the case), then in one transaction
//! deletes the lead's sealed record key and ciphertexts, moves its blind
//! indexes to the tenant's internal do-not-call list and queues the receipt
//! for audit. Consent records stay: they hold the blind index and evidence
//! hashes, no PII.

use chrono::Duration;
use guardline_audit_client::EventBuilder;
use guardline_authz::{Resource, Subject, decide};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use crate::error::{Error, Result};
use crate::service::Vault;
use crate::store::{erasure_case, internal_dnc, lead, phone_index};
use guardline_phone::Phone;

/// Case states as stored.
pub mod state {
    /// Waiting for execution.
    pub const OPEN: &str = "open";
    /// Executed.
    pub const DONE: &str = "done";
    /// Blocked by a legal hold.
    pub const BLOCKED: &str = "blocked";
}

/// The recordings service as erasure needs it: erase every recording of a
/// lead, except those under legal hold. Returns (erased, held recording ids).
#[async_trait::async_trait]
pub trait RecordingsEraser: Send + Sync {
    /// Erases the lead's recordings.
    async fn erase_lead(&self, tenant: &str, lead: &str) -> Result<(u64, Vec<String>)>;
}

/// Whom the data subject names.
#[derive(Clone, Debug)]
pub enum ErasureSubject {
    /// A lead id.
    Lead(String),
    /// A phone number (E.164, or national with the tenant's region).
    Phone(String),
}

impl Vault {
    fn require_erasure(who: &Subject, tenant: &str) -> Result<()> {
        let d = decide(who, "erasure.execute", &Resource { tenant: tenant.into(), ..Default::default() });
        if d.allowed { Ok(()) } else { Err(Error::PermissionDenied(d.rule)) }
    }

    /// Opens an erasure case (or returns the lead's open one).
    pub async fn request_erasure(
        &self,
        who: &Subject,
        tenant: &str,
        subject: ErasureSubject,
    ) -> Result<erasure_case::Model> {
        Self::require_erasure(who, tenant)?;
        let lead_id = match subject {
            ErasureSubject::Lead(id) if id.is_empty() => return Err(Error::invalid("lead_id", "required")),
            ErasureSubject::Lead(id) => {
                let found =
                    lead::Entity::find_by_id(id.clone()).filter(lead::Column::TenantId.eq(tenant)).one(&self.db);
                found.await?.ok_or(Error::NotFound)?.id
            }
            ErasureSubject::Phone(p) => {
                let phone = Phone::parse(&p, None)
                    .map_err(|_| Error::invalid("phone", "not a valid phone number in E.164 form (+8613812345678)"))?;
                let key = self.index_key(tenant).await?;
                let bi = phone.blind_index(&key).to_vec();
                phone_index::Entity::find_by_id((tenant.to_owned(), bi))
                    .one(&self.db)
                    .await?
                    .ok_or(Error::NotFound)?
                    .lead_id
            }
        };
        let open = erasure_case::Entity::find()
            .filter(erasure_case::Column::TenantId.eq(tenant))
            .filter(erasure_case::Column::LeadId.eq(&lead_id))
            .filter(erasure_case::Column::State.ne(state::DONE))
            .one(&self.db)
            .await?;
        if let Some(open) = open {
            return Ok(open);
        }
        let deadline = self.settings(tenant).await?.erasure_deadline_days;
        let now = self.clock.now();
        let case = erasure_case::Model {
            id: format!("erasure-{}", uuid::Uuid::now_v7().simple()),
            tenant_id: tenant.into(),
            lead_id,
            state: state::OPEN.into(),
            requested_at: now,
            due_at: now + Duration::days(i64::from(deadline)),
            executed_at: None,
            blocked_reason: String::new(),
            requested_by: who.user.clone(),
        };
        let txn = guardline_runtime::storage::write_txn(&self.db).await?;
        erasure_case::Entity::insert(erasure_case::ActiveModel::from(case.clone())).exec(&txn).await?;
        let event = EventBuilder::new(tenant, "erasure.request")
            .actor(&who.user, "")
            .resource("erasure_case", &case.id)
            .detail("lead_id", &case.lead_id)
            .detail("due_at", case.due_at.to_rfc3339());
        guardline_audit_client::enqueue(&txn, &event.build()).await?;
        txn.commit().await?;
        self.outbox.notify_one();
        Ok(case)
    }

    /// Executes a case: recordings first (a legal hold blocks), then the lead.
    pub async fn execute_erasure(&self, who: &Subject, tenant: &str, case_id: &str) -> Result<erasure_case::Model> {
        Self::require_erasure(who, tenant)?;
        if case_id.is_empty() {
            return Err(Error::invalid("case_id", "required"));
        }
        let case = erasure_case::Entity::find_by_id(case_id.to_owned())
            .filter(erasure_case::Column::TenantId.eq(tenant))
            .one(&self.db)
            .await?
            .ok_or(Error::NotFound)?;
        if case.state == state::DONE {
            return Err(Error::FailedPrecondition("the case was already executed".into()));
        }
        let recordings = self.recordings.as_ref().ok_or_else(|| Error::Unavailable("recordings".into()))?;
        let (recordings_erased, held) = recordings.erase_lead(tenant, &case.lead_id).await?;
        if !held.is_empty() {
            let reason = format!("{} recording(s) under legal hold", held.len());
            erasure_case::Entity::update_many()
                .col_expr(erasure_case::Column::State, state::BLOCKED.into())
                .col_expr(erasure_case::Column::BlockedReason, reason.clone().into())
                .filter(erasure_case::Column::Id.eq(case_id))
                .exec(&self.db)
                .await?;
            return Ok(erasure_case::Model { state: state::BLOCKED.into(), blocked_reason: reason, ..case });
        }
        let now = self.clock.now();
        let txn = guardline_runtime::storage::write_txn(&self.db).await?;
        let indexes = phone_index::Entity::find()
            .filter(phone_index::Column::TenantId.eq(tenant))
            .filter(phone_index::Column::LeadId.eq(&case.lead_id))
            .all(&txn)
            .await?;
        for ix in &indexes {
            let listed =
                internal_dnc::Entity::find_by_id((tenant.to_owned(), ix.blind_index.clone())).one(&txn).await?;
            if listed.is_none() {
                let row = internal_dnc::ActiveModel {
                    tenant_id: Set(tenant.into()),
                    blind_index: Set(ix.blind_index.clone()),
                    reason: Set("erasure".into()),
                    added_at: Set(now),
                };
                internal_dnc::Entity::insert(row).exec(&txn).await?;
            }
        }
        phone_index::Entity::delete_many()
            .filter(phone_index::Column::TenantId.eq(tenant))
            .filter(phone_index::Column::LeadId.eq(&case.lead_id))
            .exec(&txn)
            .await?;
        // The only copy of the record key goes with the row: every ciphertext
        // of the lead is unreadable from here on.
        let removed = lead::Entity::delete_many()
            .filter(lead::Column::TenantId.eq(tenant))
            .filter(lead::Column::Id.eq(&case.lead_id))
            .exec(&txn)
            .await?
            .rows_affected;
        erasure_case::Entity::update_many()
            .col_expr(erasure_case::Column::State, state::DONE.into())
            .col_expr(erasure_case::Column::ExecutedAt, Some(now).into())
            .col_expr(erasure_case::Column::BlockedReason, String::new().into())
            .filter(erasure_case::Column::Id.eq(case_id))
            .exec(&txn)
            .await?;
        let receipt = EventBuilder::new(tenant, "erasure.execute")
            .actor(&who.user, "")
            .resource("erasure_case", case_id)
            .detail("lead_id", &case.lead_id)
            .detail("record_key_destroyed", removed == 1)
            .detail("fields", "phones,name,address,needs,notes")
            .detail("dnc_added", indexes.len())
            .detail("recordings_erased", recordings_erased)
            .detail("executed_at", now.to_rfc3339());
        guardline_audit_client::enqueue(&txn, &receipt.build()).await?;
        txn.commit().await?;
        self.outbox.notify_one();
        Ok(erasure_case::Model {
            state: state::DONE.into(),
            executed_at: Some(now),
            blocked_reason: String::new(),
            ..case
        })
    }

    /// Cases of the tenant, newest first.
    pub async fn list_erasure_cases(
        &self,
        who: &Subject,
        tenant: &str,
        state: Option<&str>,
        overdue_only: bool,
    ) -> Result<Vec<erasure_case::Model>> {
        Self::require_erasure(who, tenant)?;
        let mut q = erasure_case::Entity::find().filter(erasure_case::Column::TenantId.eq(tenant));
        if let Some(s) = state {
            q = q.filter(erasure_case::Column::State.eq(s));
        }
        if overdue_only {
            q = q
                .filter(erasure_case::Column::State.ne(state::DONE))
                .filter(erasure_case::Column::DueAt.lt(self.clock.now()));
        }
        Ok(q.order_by_desc(erasure_case::Column::RequestedAt).all(&self.db).await?)
    }
}

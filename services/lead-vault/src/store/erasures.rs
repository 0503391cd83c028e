//! Erasure cases, and the erasure itself: the lead row (with the only copy
//! of its record key) and its phone index go, its numbers join the internal
//! do-not-call list, in one transaction with the receipt.

use chrono::{DateTime, Utc};
use guardline_audit_client::{Conn, EventBuilder};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::{Store, erasure_case, internal_dnc, lead, phone_index};
use crate::domain::erasure::{BLOCKED, DONE};
use crate::error::Result;

impl Store {
    /// The lead a number (by blind index) belongs to.
    pub async fn lead_of_number(&self, tenant: &str, blind_index: Vec<u8>) -> Result<Option<String>> {
        let row = phone_index::Entity::find_by_id((tenant.to_owned(), blind_index)).one(self.db.conn()).await?;
        Ok(row.map(|r| r.lead_id))
    }

    /// A lead's case that is not done, if any.
    pub async fn open_case(&self, tenant: &str, lead: &str) -> Result<Option<erasure_case::Model>> {
        Ok(erasure_case::Entity::find()
            .filter(erasure_case::Column::TenantId.eq(tenant))
            .filter(erasure_case::Column::LeadId.eq(lead))
            .filter(erasure_case::Column::State.ne(DONE))
            .one(self.db.conn())
            .await?)
    }

    /// Opens a case.
    pub async fn insert_case(&self, case: &erasure_case::Model, event: EventBuilder) -> Result<()> {
        let tx = self.db.begin().await?;
        let txn = tx.conn();
        erasure_case::Entity::insert(erasure_case::ActiveModel::from(case.clone())).exec(txn).await?;
        self.db.commit(tx, [event]).await
    }

    /// A case of the tenant.
    pub async fn case(&self, tenant: &str, id: &str) -> Result<Option<erasure_case::Model>> {
        Ok(erasure_case::Entity::find_by_id(id.to_owned())
            .filter(erasure_case::Column::TenantId.eq(tenant))
            .one(self.db.conn())
            .await?)
    }

    /// Marks a case blocked, with why.
    pub async fn block_case(&self, id: &str, reason: &str) -> Result<()> {
        erasure_case::Entity::update_many()
            .col_expr(erasure_case::Column::State, BLOCKED.into())
            .col_expr(erasure_case::Column::BlockedReason, reason.into())
            .filter(erasure_case::Column::Id.eq(id))
            .exec(self.db.conn())
            .await?;
        Ok(())
    }

    /// Erases a lead for case `case` at `now`; `receipt(record key
    /// destroyed, numbers added to the do-not-call list)` is the audit event.
    pub async fn erase_lead(
        &self,
        tenant: &str,
        (case, lead_id): (&str, &str),
        now: DateTime<Utc>,
        receipt: impl FnOnce(bool, usize) -> EventBuilder,
    ) -> Result<()> {
        let tx = self.db.begin().await?;
        let txn = tx.conn();
        let indexes = phone_index::Entity::find()
            .filter(phone_index::Column::TenantId.eq(tenant))
            .filter(phone_index::Column::LeadId.eq(lead_id))
            .all(txn)
            .await?;
        for ix in &indexes {
            let listed = internal_dnc::Entity::find_by_id((tenant.to_owned(), ix.blind_index.clone())).one(txn).await?;
            if listed.is_none() {
                let row = internal_dnc::ActiveModel {
                    tenant_id: Set(tenant.into()),
                    blind_index: Set(ix.blind_index.clone()),
                    reason: Set("erasure".into()),
                    added_at: Set(now),
                };
                internal_dnc::Entity::insert(row).exec(txn).await?;
            }
        }
        phone_index::Entity::delete_many()
            .filter(phone_index::Column::TenantId.eq(tenant))
            .filter(phone_index::Column::LeadId.eq(lead_id))
            .exec(txn)
            .await?;
        // The only copy of the record key goes with the row: every ciphertext
        // of the lead is unreadable from here on.
        let removed = lead::Entity::delete_many()
            .filter(lead::Column::TenantId.eq(tenant))
            .filter(lead::Column::Id.eq(lead_id))
            .exec(txn)
            .await?
            .rows_affected;
        erasure_case::Entity::update_many()
            .col_expr(erasure_case::Column::State, DONE.into())
            .col_expr(erasure_case::Column::ExecutedAt, Some(now).into())
            .col_expr(erasure_case::Column::BlockedReason, String::new().into())
            .filter(erasure_case::Column::Id.eq(case))
            .exec(txn)
            .await?;
        self.db.commit(tx, [receipt(removed == 1, indexes.len())]).await
    }

    /// The tenant's cases, newest first: in `state` if given, and not done
    /// and due before `overdue_at` if given.
    pub async fn cases(
        &self,
        tenant: &str,
        state: Option<&str>,
        overdue_at: Option<DateTime<Utc>>,
    ) -> Result<Vec<erasure_case::Model>> {
        let mut q = erasure_case::Entity::find().filter(erasure_case::Column::TenantId.eq(tenant));
        if let Some(s) = state {
            q = q.filter(erasure_case::Column::State.eq(s));
        }
        if let Some(at) = overdue_at {
            q = q.filter(erasure_case::Column::State.ne(DONE)).filter(erasure_case::Column::DueAt.lt(at));
        }
        Ok(q.order_by_desc(erasure_case::Column::RequestedAt).all(self.db.conn()).await?)
    }
}

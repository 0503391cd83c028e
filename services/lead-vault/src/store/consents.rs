//! The consent ledger's rows.

use chrono::{DateTime, Utc};
use guardline_audit_client::{Conn, EventBuilder};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::{Store, consent, erasure_case};
use crate::error::Result;

impl Store {
    /// Records a consent.
    pub async fn insert_consent(&self, model: &consent::Model, event: EventBuilder) -> Result<()> {
        let tx = self.db.begin().await?;
        let txn = tx.conn();
        consent::Entity::insert(consent::ActiveModel::from(model.clone())).exec(txn).await?;
        self.db.commit(tx, [event]).await
    }

    /// A consent by id, whatever its tenant (the caller checks).
    pub async fn consent(&self, id: &str) -> Result<Option<consent::Model>> {
        Ok(consent::Entity::find_by_id(id.to_owned()).one(self.db.conn()).await?)
    }

    /// Marks a consent withdrawn at `at`.
    pub async fn withdraw_consent(&self, id: &str, at: DateTime<Utc>, event: EventBuilder) -> Result<()> {
        let tx = self.db.begin().await?;
        let txn = tx.conn();
        consent::Entity::update_many()
            .col_expr(consent::Column::WithdrawnAt, Expr::value(at))
            .filter(consent::Column::Id.eq(id))
            .exec(txn)
            .await?;
        self.db.commit(tx, [event]).await
    }

    /// A lead's consents (for one purpose, or all), oldest first.
    pub async fn consents(&self, tenant: &str, lead: &str, purpose: Option<&str>) -> Result<Vec<consent::Model>> {
        let mut q = consent::Entity::find()
            .filter(consent::Column::TenantId.eq(tenant))
            .filter(consent::Column::LeadId.eq(lead))
            .order_by_asc(consent::Column::Id);
        if let Some(p) = purpose {
            q = q.filter(consent::Column::Purpose.eq(p));
        }
        Ok(q.all(self.db.conn()).await?)
    }

    /// Whether a lead has a done erasure case.
    pub async fn erasure_done(&self, tenant: &str, lead: &str) -> Result<bool> {
        Ok(erasure_case::Entity::find()
            .filter(erasure_case::Column::TenantId.eq(tenant))
            .filter(erasure_case::Column::LeadId.eq(lead))
            .filter(erasure_case::Column::State.eq(crate::domain::erasure::DONE))
            .one(self.db.conn())
            .await?
            .is_some())
    }
}

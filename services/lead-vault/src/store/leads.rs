//! Leads, their blind phone index, tenant secrets, reveal counters and the
//! internal do-not-call list as the vault's use-cases read and write them.

use guardline_audit_client::{Conn, EventBuilder};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::{Store, export_count, internal_dnc, lead, phone_index, reveal_count, tenant_secret};
use crate::error::Result;

/// Whose leads a listing may return.
#[derive(Debug, Clone)]
pub enum Owners {
    /// One owner's.
    Owner(String),
    /// Those of these teams.
    Teams(Vec<String>),
    /// The whole tenant's.
    All,
}

/// How a write of changed leads ended; on anything but `Done` nothing was
/// written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Every lead written, with the event.
    Done,
    /// The new number at this position belongs to another lead.
    Taken(usize),
    /// A lead's stored version is no longer the expected one.
    Changed,
}

impl Store {
    /// Writes changed leads, each `(row, expected stored version)`, with
    /// their events; with `indexes`, the first lead's numbers are replaced by
    /// these blind indexes (by position).
    pub async fn update_leads(
        &self,
        updates: &[(lead::Model, i64)],
        indexes: Option<&[Vec<u8>]>,
        events: Vec<EventBuilder>,
    ) -> Result<Written> {
        let tx = self.db.begin().await?;
        let txn = tx.conn();
        if let (Some(indexes), Some((row, _))) = (indexes, updates.first()) {
            phone_index::Entity::delete_many()
                .filter(phone_index::Column::TenantId.eq(&row.tenant_id))
                .filter(phone_index::Column::LeadId.eq(&row.id))
                .exec(txn)
                .await?;
            for (i, bi) in indexes.iter().enumerate() {
                if phone_index::Entity::find_by_id((row.tenant_id.clone(), bi.clone())).one(txn).await?.is_some() {
                    return Ok(Written::Taken(i));
                }
                phone_index::Entity::insert(phone_index::ActiveModel {
                    tenant_id: Set(row.tenant_id.clone()),
                    blind_index: Set(bi.clone()),
                    lead_id: Set(row.id.clone()),
                    position: Set(i as i32),
                })
                .exec(txn)
                .await?;
            }
        }
        for (row, expected) in updates {
            // Every column is written: an ActiveModel made from a Model marks them unchanged.
            let active = lead::ActiveModel::from(row.clone()).reset_all();
            let updated = lead::Entity::update_many()
                .set(active)
                .filter(lead::Column::Id.eq(&row.id))
                .filter(lead::Column::Version.eq(*expected))
                .exec(txn)
                .await?;
            if updated.rows_affected != 1 {
                return Ok(Written::Changed);
            }
        }
        self.db.commit(tx, events).await?;
        Ok(Written::Done)
    }

    /// Leads after `after` (by id, every tenant) whose MAC is of format 1
    /// (32 bytes), at most `limit`.
    pub async fn legacy_mac_leads(&self, after: &str, limit: u64) -> Result<Vec<lead::Model>> {
        Ok(lead::Entity::find()
            .filter(lead::Column::Id.gt(after))
            .filter(Expr::cust("length(mac) = 32"))
            .order_by_asc(lead::Column::Id)
            .limit(limit)
            .all(self.db.conn())
            .await?)
    }

    /// Replaces each row's MAC, in one transaction, where the row is still
    /// as it was read (same version and MAC). Returns how many were replaced.
    pub async fn replace_macs(&self, rows: &[(lead::Model, Vec<u8>)]) -> Result<u64> {
        let tx = self.db.begin().await?;
        let mut n = 0;
        for (row, mac) in rows {
            n += lead::Entity::update_many()
                .col_expr(lead::Column::Mac, Expr::value(mac.clone()))
                .filter(lead::Column::Id.eq(&row.id))
                .filter(lead::Column::Version.eq(row.version))
                .filter(lead::Column::Mac.eq(row.mac.clone()))
                .exec(tx.conn())
                .await?
                .rows_affected;
        }
        self.db.commit(tx, []).await?;
        Ok(n)
    }

    /// Overwrites a lead row whatever it holds (tests that play a database
    /// insider).
    #[cfg(test)]
    pub(crate) async fn overwrite_lead(&self, row: lead::Model) -> Result<()> {
        let id = row.id.clone();
        let active = lead::ActiveModel::from(row).reset_all();
        lead::Entity::update_many().set(active).filter(lead::Column::Id.eq(id)).exec(self.db.conn()).await?;
        Ok(())
    }

    /// Leads of `owner` in the tenant (only those in `ids` unless empty).
    pub async fn owned_by(&self, tenant: &str, owner: &str, ids: &[String]) -> Result<Vec<lead::Model>> {
        let mut q =
            lead::Entity::find().filter(lead::Column::TenantId.eq(tenant)).filter(lead::Column::OwnerId.eq(owner));
        if !ids.is_empty() {
            q = q.filter(lead::Column::Id.is_in(ids.to_vec()));
        }
        Ok(q.all(self.db.conn()).await?)
    }

    /// A tenant secret of `kind`, sealed, if it exists.
    pub async fn secret(&self, tenant: &str, kind: &str) -> Result<Option<tenant_secret::Model>> {
        Ok(tenant_secret::Entity::find_by_id((tenant.to_owned(), kind.to_owned())).one(self.db.conn()).await?)
    }

    /// Stores a new sealed secret; `false` when another replica stored one
    /// first (the key is taken). Any other failure is an error: it must not
    /// pass for a lost race, or the caller would read and insert forever.
    pub async fn insert_secret(&self, tenant: &str, kind: &str, data_key_id: String, sealed: Vec<u8>) -> Result<bool> {
        let row = tenant_secret::ActiveModel {
            tenant_id: Set(tenant.into()),
            kind: Set(kind.into()),
            data_key_id: Set(data_key_id),
            sealed: Set(sealed),
        };
        match tenant_secret::Entity::insert(row).exec(self.db.conn()).await {
            Ok(_) => Ok(true),
            Err(e) if matches!(e.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_))) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Inserts a lead with its numbers' blind indexes (by position). When
    /// an index already belongs to a lead of the tenant, nothing is written
    /// and its position is returned.
    pub async fn insert_lead(
        &self,
        row: &lead::Model,
        indexes: &[Vec<u8>],
        event: EventBuilder,
    ) -> Result<Option<usize>> {
        let tx = self.db.begin().await?;
        let txn = tx.conn();
        for (i, bi) in indexes.iter().enumerate() {
            let taken = phone_index::Entity::find_by_id((row.tenant_id.clone(), bi.clone())).one(txn).await?;
            if taken.is_some() {
                return Ok(Some(i));
            }
            phone_index::Entity::insert(phone_index::ActiveModel {
                tenant_id: Set(row.tenant_id.clone()),
                blind_index: Set(bi.clone()),
                lead_id: Set(row.id.clone()),
                position: Set(i as i32),
            })
            .exec(txn)
            .await?;
        }
        lead::Entity::insert(lead::ActiveModel::from(row.clone())).exec(txn).await?;
        self.db.commit(tx, [event]).await?;
        Ok(None)
    }

    /// A lead by id, whatever its tenant (the caller checks).
    pub async fn lead(&self, id: &str) -> Result<Option<lead::Model>> {
        Ok(lead::Entity::find_by_id(id.to_owned()).one(self.db.conn()).await?)
    }

    /// A lead of `tenant`.
    pub async fn tenant_lead(&self, tenant: &str, id: &str) -> Result<Option<lead::Model>> {
        Ok(lead::Entity::find_by_id(id.to_owned())
            .filter(lead::Column::TenantId.eq(tenant))
            .one(self.db.conn())
            .await?)
    }

    /// The blind index of a lead's first number.
    pub async fn primary_blind_index(&self, tenant: &str, lead: &str) -> Result<Option<Vec<u8>>> {
        Ok(phone_index::Entity::find()
            .filter(phone_index::Column::TenantId.eq(tenant))
            .filter(phone_index::Column::LeadId.eq(lead))
            .order_by_asc(phone_index::Column::Position)
            .one(self.db.conn())
            .await?
            .map(|p| p.blind_index))
    }

    /// The internal do-not-call row of a number, if listed.
    pub async fn internal_dnc(&self, tenant: &str, blind_index: &[u8]) -> Result<Option<internal_dnc::Model>> {
        Ok(internal_dnc::Entity::find_by_id((tenant.to_owned(), blind_index.to_vec())).one(self.db.conn()).await?)
    }

    /// The internal do-not-call rows among `indexes`.
    pub async fn internal_dnc_among(&self, tenant: &str, indexes: Vec<Vec<u8>>) -> Result<Vec<internal_dnc::Model>> {
        Ok(internal_dnc::Entity::find()
            .filter(internal_dnc::Column::TenantId.eq(tenant))
            .filter(internal_dnc::Column::BlindIndex.is_in(indexes))
            .all(self.db.conn())
            .await?)
    }

    /// A page of a tenant's leads, newest first.
    pub async fn leads(
        &self,
        tenant: &str,
        owners: Owners,
        before: Option<&str>,
        limit: u64,
    ) -> Result<Vec<lead::Model>> {
        let mut q = lead::Entity::find().filter(lead::Column::TenantId.eq(tenant)).order_by_desc(lead::Column::Id);
        q = match owners {
            Owners::Owner(user) => q.filter(lead::Column::OwnerId.eq(user)),
            Owners::Teams(teams) => q.filter(lead::Column::TeamId.is_in(teams)),
            Owners::All => q,
        };
        if let Some(b) = before {
            q = q.filter(lead::Column::Id.lt(b));
        }
        Ok(q.limit(limit.clamp(1, 1000)).all(self.db.conn()).await?)
    }

    /// Every lead of a tenant, oldest first.
    pub async fn all_leads(&self, tenant: &str) -> Result<Vec<lead::Model>> {
        Ok(lead::Entity::find()
            .filter(lead::Column::TenantId.eq(tenant))
            .order_by_asc(lead::Column::Id)
            .all(self.db.conn())
            .await?)
    }

    /// Reveals `user` made on `day`.
    pub async fn reveals(&self, tenant: &str, user: &str, day: &str) -> Result<u32> {
        let key = (tenant.to_owned(), user.to_owned(), day.to_owned());
        Ok(reveal_count::Entity::find_by_id(key).one(self.db.conn()).await?.map_or(0, |r| r.count as u32))
    }

    /// Counts one reveal for `user` on `day`; returns the count including it.
    pub async fn count_reveal(&self, tenant: &str, user: &str, day: &str) -> Result<u32> {
        let key = (tenant.to_owned(), user.to_owned(), day.to_owned());
        let tx = self.db.begin().await?;
        let txn = tx.conn();
        let n = match reveal_count::Entity::find_by_id(key.clone()).one(txn).await? {
            Some(r) => {
                reveal_count::Entity::update_many()
                    .col_expr(reveal_count::Column::Count, Expr::value(r.count + 1))
                    .filter(reveal_count::Column::TenantId.eq(tenant))
                    .filter(reveal_count::Column::UserId.eq(user))
                    .filter(reveal_count::Column::Day.eq(day))
                    .filter(reveal_count::Column::Count.eq(r.count))
                    .exec(txn)
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
                .exec(txn)
                .await?;
                1
            }
        };
        self.db.commit(tx, []).await?;
        Ok(n as u32)
    }

    /// Leads the tenant exported on `day`.
    pub async fn exports(&self, tenant: &str, day: &str) -> Result<u64> {
        let row = export_count::Entity::find_by_id((tenant.to_owned(), day.to_owned())).one(self.db.conn()).await?;
        Ok(row.map_or(0, |c| c.count as u64))
    }

    /// Sets the tenant's export count of `day`.
    pub async fn set_exports(&self, tenant: &str, day: &str, count: u64) -> Result<()> {
        let row =
            export_count::ActiveModel { tenant_id: Set(tenant.into()), day: Set(day.into()), count: Set(count as i64) };
        export_count::Entity::insert(row)
            .on_conflict(
                sea_orm::sea_query::OnConflict::columns([export_count::Column::TenantId, export_count::Column::Day])
                    .update_column(export_count::Column::Count)
                    .to_owned(),
            )
            .exec(self.db.conn())
            .await?;
        Ok(())
    }
}

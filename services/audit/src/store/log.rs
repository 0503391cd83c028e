//! The log's rows: entries with the signed head each produced, the pruned
//! prefix's frontier, per-tenant retention and the head-signing keys.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Statement,
};

use super::{event, pruned, setting, signing_key};
use crate::domain::merkle::Hash;
use crate::domain::verify::Record;
use crate::error::Result;

/// Filters of a query.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Tenant.
    pub tenant: String,
    /// Actor user id.
    pub actor_user: Option<String>,
    /// Action.
    pub action: Option<String>,
    /// Resource type and id.
    pub resource: Option<(String, String)>,
    /// Outcome.
    pub outcome: Option<String>,
    /// From (inclusive).
    pub from: Option<DateTime<Utc>>,
    /// To (exclusive).
    pub to: Option<DateTime<Utc>>,
}

/// The audit database.
#[derive(Clone, Debug)]
pub struct Store {
    db: DatabaseConnection,
}

impl Store {
    /// The store over `db`.
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// The pool, for the alert store.
    pub(super) fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Leases on this database (background jobs run in one replica).
    pub fn leases(&self, clock: guardline_runtime::clock::Clock) -> guardline_runtime::lease::Leases {
        guardline_runtime::lease::Leases::new(self.db.clone(), clock)
    }

    /// The head-signing keys, oldest first.
    pub async fn signing_keys(&self) -> Result<Vec<signing_key::Model>> {
        Ok(signing_key::Entity::find().order_by_asc(signing_key::Column::CreatedAt).all(&self.db).await?)
    }

    /// Stores a new head-signing key (sealed).
    pub async fn insert_signing_key(&self, row: signing_key::Model) -> Result<()> {
        signing_key::Entity::insert(signing_key::ActiveModel::from(row)).exec(&self.db).await?;
        Ok(())
    }

    /// The first index still stored and the frontier of the pruned prefix.
    pub async fn pruned(&self, tenant: &str) -> Result<Option<(u64, Vec<Hash>)>> {
        let row = pruned::Entity::find_by_id(tenant.to_owned()).one(&self.db).await?;
        Ok(row.map(|p| (p.first_index as u64, p.frontier.chunks(32).filter_map(|c| c.try_into().ok()).collect())))
    }

    /// A tenant's retention in days, if it set one.
    pub async fn retention(&self, tenant: &str) -> Result<Option<i32>> {
        Ok(setting::Entity::find_by_id(tenant.to_owned()).one(&self.db).await?.map(|s| s.retention_days))
    }

    /// Sets a tenant's retention in days.
    pub async fn set_retention(&self, tenant: &str, days: i32) -> Result<()> {
        let row = setting::ActiveModel { tenant_id: Set(tenant.to_owned()), retention_days: Set(days) };
        if setting::Entity::find_by_id(tenant.to_owned()).one(&self.db).await?.is_some() {
            row.update(&self.db).await?;
        } else {
            setting::Entity::insert(row).exec(&self.db).await?;
        }
        Ok(())
    }

    /// The index of the tenant's first entry at or after `cutoff`.
    pub async fn first_since(&self, tenant: &str, cutoff: DateTime<Utc>) -> Result<Option<u64>> {
        let first: Option<i64> = event::Entity::find()
            .select_only()
            .column(event::Column::Idx)
            .filter(event::Column::TenantId.eq(tenant))
            .filter(event::Column::Time.gte(cutoff))
            .order_by_asc(event::Column::Idx)
            .into_tuple()
            .one(&self.db)
            .await?;
        Ok(first.map(|i| i as u64))
    }

    /// Deletes the entries below index `k`, keeping their frontier.
    pub async fn prune_below(&self, tenant: &str, k: u64, frontier: &[Hash]) -> Result<()> {
        let row = pruned::ActiveModel {
            tenant_id: Set(tenant.to_owned()),
            first_index: Set(k as i64),
            frontier: Set(frontier.concat()),
        };
        let txn = guardline_runtime::storage::write_txn(&self.db).await?;
        if pruned::Entity::find_by_id(tenant.to_owned()).one(&txn).await?.is_some() {
            row.update(&txn).await?;
        } else {
            pruned::Entity::insert(row).exec(&txn).await?;
        }
        // The entries go; their leaf hashes stay, in the same transaction.
        let backend = self.db.get_database_backend();
        let keep = match backend {
            DatabaseBackend::Postgres => {
                "INSERT INTO audit_pruned_leaves (tenant_id, idx, leaf_hash) \
                 SELECT tenant_id, idx, leaf_hash FROM audit_events WHERE tenant_id = $1 AND idx < $2"
            }
            _ => {
                "INSERT INTO audit_pruned_leaves (tenant_id, idx, leaf_hash) \
                 SELECT tenant_id, idx, leaf_hash FROM audit_events WHERE tenant_id = ? AND idx < ?"
            }
        };
        txn.execute_raw(Statement::from_sql_and_values(backend, keep, [tenant.into(), (k as i64).into()])).await?;
        event::Entity::delete_many()
            .filter(event::Column::TenantId.eq(tenant))
            .filter(event::Column::Idx.lt(k as i64))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(())
    }

    /// which ids were already stored (then within that transaction).
    pub async fn insert_entries(
        &self,
        ids_by_tenant: Vec<(String, Vec<String>)>,
        build: impl FnOnce(&std::collections::HashSet<(String, String)>) -> Result<Vec<event::Model>>,
    ) -> Result<()> {
        let txn = guardline_runtime::storage::write_txn(&self.db).await?;
        // One query per tenant of the batch finds the ids already stored.
        let mut seen = std::collections::HashSet::new();
        for (tenant, ids) in ids_by_tenant {
            let existing: Vec<String> = event::Entity::find()
                .select_only()
                .column(event::Column::EventId)
                .filter(event::Column::TenantId.eq(&tenant))
                .filter(event::Column::EventId.is_in(ids))
                .into_tuple()
                .all(&txn)
                .await?;
            seen.extend(existing.into_iter().map(|id| (tenant.clone(), id)));
        }
        for row in build(&seen)? {
            event::Entity::insert(event::ActiveModel::from(row)).exec(&txn).await?;
        }
        // Durable before acknowledged.
        txn.commit().await?;
        Ok(())
    }

    /// A tenant's newest entry.
    pub async fn newest(&self, tenant: &str) -> Result<Option<event::Model>> {
        Ok(event::Entity::find()
            .filter(event::Column::TenantId.eq(tenant))
            .order_by_desc(event::Column::Idx)
            .one(&self.db)
            .await?)
    }

    /// The entry of an event.
    pub async fn entry_of(&self, tenant: &str, event_id: &str) -> Result<Option<event::Model>> {
        Ok(event::Entity::find()
            .filter(event::Column::TenantId.eq(tenant))
            .filter(event::Column::EventId.eq(event_id))
            .one(&self.db)
            .await?)
    }

    /// Entries matching `f`, newest first, below index `before`.
    pub async fn query(&self, f: &Filter, before: Option<i64>, limit: u64) -> Result<Vec<event::Model>> {
        let mut q =
            event::Entity::find().filter(event::Column::TenantId.eq(&f.tenant)).order_by_desc(event::Column::Idx);
        if let Some(a) = &f.actor_user {
            q = q.filter(event::Column::ActorUser.eq(a));
        }
        if let Some(a) = &f.action {
            q = q.filter(event::Column::Action.eq(a));
        }
        if let Some((t, id)) = &f.resource {
            q = q.filter(event::Column::ResourceType.eq(t)).filter(event::Column::ResourceId.eq(id));
        }
        if let Some(o) = &f.outcome {
            q = q.filter(event::Column::Outcome.eq(o));
        }
        if let Some(t) = f.from {
            q = q.filter(event::Column::Time.gte(t));
        }
        if let Some(t) = f.to {
            q = q.filter(event::Column::Time.lt(t));
        }
        if let Some(b) = before {
            q = q.filter(event::Column::Idx.lt(b));
        }
        Ok(q.limit(limit.clamp(1, 1000)).all(&self.db).await?)
    }

    /// Up to `limit` (all when None) entries from index `from`, in index order.
    pub async fn records(&self, tenant: &str, from: u64, limit: Option<u64>) -> Result<Vec<Record>> {
        let rows = event::Entity::find()
            .filter(event::Column::TenantId.eq(tenant))
            .filter(event::Column::Idx.gte(from as i64))
            .order_by_asc(event::Column::Idx)
            .limit(limit)
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| Record {
                index: r.idx as u64,
                entry: r.entry,
                head_timestamp_ms: r.head_ts,
                head_kid: r.head_kid,
                head_signature: r.head_sig,
            })
            .collect())
    }
}

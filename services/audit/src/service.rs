//! The log: appends with a signed head per entry, proofs at any size,
//! queries, and whole-log verification. Appends are serialized per process
//! (one writer); the (tenant, index) key makes a second writer fail rather
//! than fork the log.

use guardline_runtime::clock::Clock;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use guardline_keys::{Envelope, PLATFORM};
use sea_orm::{ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use tokio::sync::Mutex;

use crate::domain::canonical::Event;
use crate::domain::merkle::{Hash, Tree, leaf_hash};
use crate::domain::sth::{HeadSigner, TreeHead};
use crate::domain::validate;
use crate::domain::verify::{Finding, Record, verify_log};
use crate::error::{Error, Result};
use crate::store::{event, signing_key};

/// A signed tree head as stored with the entry that produced it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedHead {
    /// The head.
    pub head: TreeHead,
    /// Key id.
    pub kid: String,
    /// Ed25519 signature.
    pub signature: Vec<u8>,
}

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

/// The audit log of every tenant.
pub struct Log {
    db: DatabaseConnection,
    signer: HeadSigner,
    keys: HashMap<String, Vec<u8>>,
    trees: Mutex<HashMap<String, Tree>>,
    clock: Clock,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log").field("signer", &self.signer).finish_non_exhaustive()
    }
}

const KEY_KIND: &str = "audit-head-key";
/// Retention when a tenant set none: three years.
pub const DEFAULT_RETENTION_DAYS: i32 = 3 * 365;
/// Retention is never shorter than this.
pub const MIN_RETENTION_DAYS: i32 = 180;

impl Log {
    /// The server's time.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// Opens the log, creating the head-signing key on first start.
    pub async fn open(db: DatabaseConnection, envelope: Arc<Envelope>) -> Result<Self> {
        Self::open_on(db, envelope, Clock::system()).await
    }

    /// As [`Log::open`], with heads and keys dated by `clock`.
    pub async fn open_on(db: DatabaseConnection, envelope: Arc<Envelope>, clock: Clock) -> Result<Self> {
        let mut rows = signing_key::Entity::find().order_by_asc(signing_key::Column::CreatedAt).all(&db).await?;
        if rows.is_empty() {
            let kid = format!("a-{}", uuid::Uuid::now_v7().simple());
            let pkcs8 = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new())
                .map_err(|_| Error::Internal("ed25519 key generation failed".into()))?;
            let signer =
                HeadSigner::from_pkcs8(&kid, pkcs8.as_ref()).ok_or_else(|| Error::Internal("ed25519 key".into()))?;
            let (dk_id, sealed) = envelope.seal_secret(PLATFORM, KEY_KIND, &kid, pkcs8.as_ref()).await?;
            let row = signing_key::Model {
                kid,
                data_key_id: dk_id,
                sealed,
                public_key: signer.public_key(),
                created_at: clock.now(),
            };
            signing_key::Entity::insert(signing_key::ActiveModel::from(row.clone())).exec(&db).await?;
            rows.push(row);
        }
        let keys = rows.iter().map(|r| (r.kid.clone(), r.public_key.clone())).collect();
        let newest = rows.last().ok_or_else(|| Error::Internal("no signing key".into()))?;
        let pkcs8 = envelope.open_secret(PLATFORM, KEY_KIND, &newest.kid, &newest.data_key_id, &newest.sealed).await?;
        let signer =
            HeadSigner::from_pkcs8(&newest.kid, &pkcs8).ok_or_else(|| Error::DataLoss("audit signing key".into()))?;
        Ok(Self { db, signer, keys, trees: Mutex::new(HashMap::new()), clock })
    }

    /// Public keys of tree heads, by key id.
    pub fn public_keys(&self) -> &HashMap<String, Vec<u8>> {
        &self.keys
    }

    /// The tree of a tenant's pruned prefix (empty if nothing was pruned).
    async fn base_tree(&self, tenant: &str) -> Result<Tree> {
        let Some(p) = crate::store::pruned::Entity::find_by_id(tenant.to_owned()).one(&self.db).await? else {
            return Ok(Tree::new());
        };
        let frontier: Vec<Hash> = p.frontier.chunks(32).filter_map(|c| c.try_into().ok()).collect();
        Tree::with_frontier(p.first_index as u64, &frontier)
            .ok_or_else(|| Error::DataLoss("the pruned frontier does not match its index".into()))
    }

    /// The first index still stored and the pruned frontier.
    pub async fn pruned(&self, tenant: &str) -> Result<(u64, Vec<Hash>)> {
        Ok(match crate::store::pruned::Entity::find_by_id(tenant.to_owned()).one(&self.db).await? {
            Some(p) => (p.first_index as u64, p.frontier.chunks(32).filter_map(|c| c.try_into().ok()).collect()),
            None => (0, vec![]),
        })
    }

    /// Deletes the entries older than the retention as of `as_of` (a prefix of
    /// the log), keeping the frontier hashes. Returns (pruned now, first index).
    pub async fn prune(&self, tenant: &str, as_of: DateTime<Utc>) -> Result<(u64, u64)> {
        use sea_orm::ActiveModelTrait;
        let days = crate::store::setting::Entity::find_by_id(tenant.to_owned())
            .one(&self.db)
            .await?
            .map_or(DEFAULT_RETENTION_DAYS, |s| s.retention_days);
        let cutoff = as_of - chrono::Duration::days(i64::from(days.max(MIN_RETENTION_DAYS)));
        let mut trees = self.trees.lock().await;
        if !trees.contains_key(tenant) {
            let t = self.load_tree(tenant).await?;
            trees.insert(tenant.to_owned(), t);
        }
        let tree = trees.get(tenant).ok_or_else(|| Error::Internal("tree".into()))?;
        let first_kept: Option<i64> = event::Entity::find()
            .select_only()
            .column(event::Column::Idx)
            .filter(event::Column::TenantId.eq(tenant))
            .filter(event::Column::Time.gte(cutoff))
            .order_by_asc(event::Column::Idx)
            .into_tuple()
            .one(&self.db)
            .await?;
        let k = first_kept.map_or(tree.len(), |i| i as u64);
        let before = tree.pruned();
        if k <= before {
            return Ok((0, before));
        }
        let frontier = tree.frontier(k).map_err(|e| Error::Internal(e.to_string()))?;
        let row = crate::store::pruned::ActiveModel {
            tenant_id: Set(tenant.to_owned()),
            first_index: Set(k as i64),
            frontier: Set(frontier.concat()),
        };
        let txn = guardline_runtime::storage::write_txn(&self.db).await?;
        if crate::store::pruned::Entity::find_by_id(tenant.to_owned()).one(&txn).await?.is_some() {
            row.update(&txn).await?;
        } else {
            crate::store::pruned::Entity::insert(row).exec(&txn).await?;
        }
        event::Entity::delete_many()
            .filter(event::Column::TenantId.eq(tenant))
            .filter(event::Column::Idx.lt(k as i64))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        trees.remove(tenant);
        Ok((k - before, k))
    }

    async fn load_tree(&self, tenant: &str) -> Result<Tree> {
        let rows: Vec<Vec<u8>> = event::Entity::find()
            .select_only()
            .column(event::Column::LeafHash)
            .filter(event::Column::TenantId.eq(tenant))
            .order_by_asc(event::Column::Idx)
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut tree = self.base_tree(tenant).await?;
        for h in rows {
            tree.push(h.try_into().map_err(|_| Error::DataLoss("stored leaf hash has the wrong length".into()))?);
        }
        Ok(tree)
    }

    /// Appends a batch atomically: all events are valid and stored (or
    /// acknowledged as duplicates), or none is. Returns (stored, duplicate) ids.
    pub async fn append(&self, events: Vec<Event>) -> Result<(Vec<String>, Vec<String>)> {
        for (i, e) in events.iter().enumerate() {
            validate::check(i, e).map_err(|v| Error::invalid(v.field, v.reason))?;
        }
        let mut trees = self.trees.lock().await;
        let touched: HashSet<String> = events.iter().map(|e| e.tenant_id.clone()).collect();
        let res = self.append_locked(&mut trees, events).await;
        if res.is_err() {
            // The in-memory trees may hold leaves that were not committed.
            for t in touched {
                trees.remove(&t);
            }
        }
        res
    }

    async fn append_locked(
        &self,
        trees: &mut HashMap<String, Tree>,
        events: Vec<Event>,
    ) -> Result<(Vec<String>, Vec<String>)> {
        let (mut stored, mut dups) = (Vec::new(), Vec::new());
        let txn = guardline_runtime::storage::write_txn(&self.db).await?;
        // One query per tenant of the batch finds the ids already stored.
        let mut by_tenant: HashMap<&str, Vec<String>> = HashMap::new();
        for e in &events {
            by_tenant.entry(e.tenant_id.as_str()).or_default().push(e.id.clone());
        }
        let mut seen: HashSet<(String, String)> = HashSet::new();
        for (tenant, ids) in by_tenant {
            let existing: Vec<String> = event::Entity::find()
                .select_only()
                .column(event::Column::EventId)
                .filter(event::Column::TenantId.eq(tenant))
                .filter(event::Column::EventId.is_in(ids))
                .into_tuple()
                .all(&txn)
                .await?;
            seen.extend(existing.into_iter().map(|id| (tenant.to_owned(), id)));
        }
        for e in events {
            if !seen.insert((e.tenant_id.clone(), e.id.clone())) {
                dups.push(e.id);
                continue;
            }
            if !trees.contains_key(&e.tenant_id) {
                let t = self.load_tree(&e.tenant_id).await?;
                trees.insert(e.tenant_id.clone(), t);
            }
            let tree = trees.get_mut(&e.tenant_id).ok_or_else(|| Error::Internal("tree".into()))?;
            let entry = e.encode();
            let leaf = leaf_hash(&entry);
            let idx = tree.len();
            tree.push(leaf);
            let head = TreeHead {
                tenant_id: e.tenant_id.clone(),
                tree_size: idx + 1,
                timestamp_ms: self.clock.now().timestamp_millis(),
                root: tree.root(idx + 1).map_err(|e| Error::Internal(e.to_string()))?,
            };
            let sig = self.signer.sign(&head);
            event::Entity::insert(event::ActiveModel {
                tenant_id: Set(e.tenant_id.clone()),
                idx: Set(idx as i64),
                event_id: Set(e.id.clone()),
                time: Set(e.time),
                actor_user: Set(e.actor_user.clone()),
                action: Set(e.action.clone()),
                resource_type: Set(e.resource_type.clone()),
                resource_id: Set(e.resource_id.clone()),
                outcome: Set(e.outcome.clone()),
                entry: Set(entry),
                leaf_hash: Set(leaf.to_vec()),
                head_ts: Set(head.timestamp_ms),
                head_kid: Set(self.signer.kid.clone()),
                head_sig: Set(sig),
            })
            .exec(&txn)
            .await?;
            stored.push(e.id);
        }
        // Durable before acknowledged.
        txn.commit().await?;
        Ok((stored, dups))
    }

    /// The root of a tenant's tree at `size`.
    pub async fn root_at(&self, tenant: &str, size: u64) -> Result<Hash> {
        self.with_tree(tenant, |t| t.root(size)).await?.map_err(|e| Error::Internal(e.to_string()))
    }

    /// The head signed with a tenant's newest entry.
    pub async fn head(&self, tenant: &str) -> Result<Option<SignedHead>> {
        let row = event::Entity::find()
            .filter(event::Column::TenantId.eq(tenant))
            .order_by_desc(event::Column::Idx)
            .one(&self.db)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let size = row.idx as u64 + 1;
        let root = self.with_tree(tenant, |t| t.root(size)).await?.map_err(|e| Error::Internal(e.to_string()))?;
        Ok(Some(SignedHead {
            head: TreeHead { tenant_id: tenant.into(), tree_size: size, timestamp_ms: row.head_ts, root },
            kid: row.head_kid,
            signature: row.head_sig,
        }))
    }

    async fn with_tree<T>(&self, tenant: &str, f: impl FnOnce(&Tree) -> T) -> Result<T> {
        let mut trees = self.trees.lock().await;
        if !trees.contains_key(tenant) {
            let t = self.load_tree(tenant).await?;
            trees.insert(tenant.to_owned(), t);
        }
        let tree = trees.get(tenant).ok_or_else(|| Error::Internal("tree".into()))?;
        Ok(f(tree))
    }

    /// The leaf index of an event and its inclusion proof at `size`.
    pub async fn inclusion(&self, tenant: &str, event_id: &str, size: u64) -> Result<(u64, Vec<Hash>)> {
        let row = event::Entity::find()
            .filter(event::Column::TenantId.eq(tenant))
            .filter(event::Column::EventId.eq(event_id))
            .one(&self.db)
            .await?
            .ok_or(Error::NotFound)?;
        let idx = row.idx as u64;
        let proof = self
            .with_tree(tenant, |t| t.inclusion_proof(idx, size))
            .await?
            .map_err(|e| Error::invalid("tree_size", e.to_string()))?;
        Ok((idx, proof))
    }

    /// A consistency proof between two sizes.
    pub async fn consistency(&self, tenant: &str, first: u64, second: u64) -> Result<Vec<Hash>> {
        self.with_tree(tenant, |t| t.consistency_proof(first, second))
            .await?
            .map_err(|e| Error::invalid("second_size", e.to_string()))
    }

    /// Events matching `f`, newest first, below index `before`.
    pub async fn query(&self, f: &Filter, before: Option<i64>, limit: u64) -> Result<Vec<(i64, Event)>> {
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
        let rows = q.limit(limit.clamp(1, 1000)).all(&self.db).await?;
        rows.into_iter()
            .map(|r| {
                Event::decode(&r.entry)
                    .map(|e| (r.idx, e))
                    .ok_or_else(|| Error::DataLoss(format!("audit entry {} is corrupt", r.idx)))
            })
            .collect()
    }

    /// Every stored entry of a tenant with its signed head, in index order.
    pub async fn records(&self, tenant: &str) -> Result<Vec<Record>> {
        self.records_page(tenant, 0, None).await
    }

    /// Up to `limit` (all when None) stored entries from index `from`, in index order.
    pub async fn records_page(&self, tenant: &str, from: u64, limit: Option<u64>) -> Result<Vec<Record>> {
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

    /// Sets a tenant's retention (the caller checked the 180-day floor).
    pub async fn set_retention(&self, tenant: &str, days: u32) -> Result<u32> {
        use sea_orm::ActiveModelTrait;
        let days_i = i32::try_from(days).map_err(|_| Error::invalid("retention_days", "too large"))?;
        let row = crate::store::setting::ActiveModel { tenant_id: Set(tenant.to_owned()), retention_days: Set(days_i) };
        if crate::store::setting::Entity::find_by_id(tenant.to_owned()).one(&self.db).await?.is_some() {
            row.update(&self.db).await?;
        } else {
            crate::store::setting::Entity::insert(row).exec(&self.db).await?;
        }
        Ok(days)
    }

    /// Verifies a tenant's whole stored log against its signed heads.
    pub async fn verify(&self, tenant: &str) -> Result<Finding> {
        Ok(verify_log(tenant, self.base_tree(tenant).await?, &self.records(tenant).await?, &self.keys))
    }
}

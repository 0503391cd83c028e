//! The log: appends with a signed head per entry, proofs at any size,
//! queries, and whole-log verification. Appends are serialized per process
//! (one writer); the (tenant, index) key makes a second writer fail rather
//! than fork the log.

use guardline_runtime::clock::Clock;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use guardline_keys::{Envelope, PLATFORM};
use tokio::sync::Mutex;

pub use super::signing::{Rotated, Signing};
use crate::domain::canonical::Event;
use crate::domain::merkle::{Hash, Tree, leaf_hash};
use crate::domain::monitor::Head;
use crate::domain::pin::{Keys, Pins};
use crate::domain::sth::TreeHead;
use crate::domain::validate;
use crate::domain::verify::{Finding, Record, verify_log};
use crate::error::{AuditError, Error, Result};
use crate::store::event;
pub use crate::store::log::Filter;
use crate::store::log::Store;

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

/// The audit log of every tenant.
pub struct Log {
    store: Store,
    signing: Signing,
    /// Tenants appended to since their last checkpoint was published.
    unpublished: std::sync::Mutex<HashSet<String>>,
    trees: Mutex<HashMap<String, Tree>>,
    clock: Clock,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log").field("signing", &self.signing).finish_non_exhaustive()
    }
}

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
    pub async fn open(store: Store, envelope: Arc<Envelope>) -> Result<Self> {
        Self::open_on(store, envelope, Clock::system(), None).await
    }

    /// As [`Log::open`], with heads and keys dated by `clock`, trusting only
    /// the keys `pins` names when given; see [`Signing::open`] for the
    /// checks that refuse the start.
    pub async fn open_on(store: Store, envelope: Arc<Envelope>, clock: Clock, pins: Option<Pins>) -> Result<Self> {
        let signing = Signing::open(&store, envelope, &clock, pins).await?;
        Ok(Self { store, signing, unpublished: Default::default(), trees: Mutex::new(HashMap::new()), clock })
    }

    /// Rotates the head-signing key (see [`Signing::rotate`]), between two
    /// appends, and records the rotation in the platform's log, signed by
    /// the key that signs from now on.
    pub async fn rotate_signing_key(&self, actor_service: &str, reason: &str) -> Result<Rotated> {
        // Checked before anything changes: the event must be accepted after.
        if reason.trim().is_empty() || reason.chars().count() > 500 {
            return Err(Error::invalid("reason", "required, at most 500 characters"));
        }
        let rotated = {
            let _appends = self.trees.lock().await;
            self.signing.rotate(&self.store, &self.clock).await?
        };
        let event = Event {
            id: uuid::Uuid::now_v7().to_string(),
            tenant_id: PLATFORM.into(),
            time: self.clock.now(),
            actor_service: actor_service.into(),
            action: "audit.signing_key.rotate".into(),
            resource_type: "signing_key".into(),
            resource_id: rotated.kid.clone(),
            outcome: "allowed".into(),
            details: [
                ("fingerprint".to_owned(), rotated.fingerprint.clone()),
                ("active".to_owned(), rotated.active.to_string()),
                ("previous".to_owned(), rotated.previous.clone()),
                ("reason".to_owned(), reason.to_owned()),
            ]
            .into(),
            ..Default::default()
        };
        self.append(vec![event]).await?;
        Ok(rotated)
    }

    /// The trusted public keys of tree heads, by key id: checked against
    /// their sealed private keys at start, and pinned where pins are set.
    pub fn public_keys(&self) -> Keys {
        self.signing.trusted()
    }

    /// The tree of a tenant's pruned prefix (empty if nothing was pruned).
    async fn base_tree(&self, tenant: &str) -> Result<Tree> {
        let Some((first, frontier)) = self.store.pruned(tenant).await? else {
            return Ok(Tree::new());
        };
        Tree::with_frontier(first, &frontier).ok_or_else(|| AuditError::FrontierMismatch.into())
    }

    /// The first index still stored and the pruned frontier.
    pub async fn pruned(&self, tenant: &str) -> Result<(u64, Vec<Hash>)> {
        Ok(self.store.pruned(tenant).await?.unwrap_or_default())
    }

    /// Deletes the entries older than the retention as of `as_of` (a prefix of
    /// the log), keeping the frontier hashes; with `dry_run` only counts them.
    /// Returns (pruned now, first index).
    pub async fn prune(&self, tenant: &str, as_of: DateTime<Utc>, dry_run: bool) -> Result<(u64, u64)> {
        let days = self.store.retention(tenant).await?.unwrap_or(DEFAULT_RETENTION_DAYS);
        let cutoff = as_of - chrono::Duration::days(i64::from(days.max(MIN_RETENTION_DAYS)));
        let mut trees = self.trees.lock().await;
        if !trees.contains_key(tenant) {
            let t = self.load_tree(tenant).await?;
            trees.insert(tenant.to_owned(), t);
        }
        let tree = trees.get(tenant).ok_or_else(|| Error::Internal("tree".into()))?;
        let k = self.store.first_since(tenant, cutoff).await?.unwrap_or(tree.len());
        let before = tree.pruned();
        if k <= before {
            return Ok((0, before));
        }
        if dry_run {
            return Ok((k - before, before));
        }
        let frontier = tree.frontier(k).map_err(|e| Error::Internal(e.to_string()))?;
        self.store.prune_below(tenant, k, &frontier).await?;
        trees.remove(tenant);
        Ok((k - before, k))
    }

    async fn load_tree(&self, tenant: &str) -> Result<Tree> {
        let rows = self.store.leaf_hashes(tenant).await?;
        let mut tree = self.base_tree(tenant).await?;
        for h in rows {
            tree.push(h.try_into().map_err(|_| AuditError::LeafHashCorrupt)?);
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
        let mut by_tenant: HashMap<String, Vec<String>> = HashMap::new();
        for e in &events {
            by_tenant.entry(e.tenant_id.clone()).or_default().push(e.id.clone());
        }
        for tenant in by_tenant.keys() {
            if !trees.contains_key(tenant) {
                let t = self.load_tree(tenant).await?;
                trees.insert(tenant.clone(), t);
            }
        }
        let (mut stored, mut dups) = (Vec::new(), Vec::new());
        let build = |seen: &HashSet<(String, String)>| {
            let mut seen = seen.clone();
            let mut rows = Vec::new();
            for e in events {
                if !seen.insert((e.tenant_id.clone(), e.id.clone())) {
                    dups.push(e.id);
                    continue;
                }
                let tree = trees.get_mut(&e.tenant_id).ok_or_else(|| Error::Internal("tree".into()))?;
                rows.push(self.leaf(tree, &e)?);
                stored.push(e.id);
            }
            Ok(rows)
        };
        let tenants: Vec<String> = by_tenant.keys().cloned().collect();
        self.store.insert_entries(by_tenant.into_iter().collect(), build).await?;
        if let Ok(mut u) = self.unpublished.lock() {
            u.extend(tenants.iter().cloned());
        }
        let sizes = &guardline_runtime::metrics::business().audit_tree_size;
        for t in tenants.iter().filter_map(|t| trees.get(t)) {
            sizes.record(t.len(), &[]);
        }
        Ok((stored, dups))
    }

    /// Appends `e` to `tree` and signs the head at the new size: the row.
    fn leaf(&self, tree: &mut Tree, e: &Event) -> Result<event::Model> {
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
        let signer = self.signing.signer();
        let sig = signer.sign(&head);
        Ok(event::Model {
            tenant_id: e.tenant_id.clone(),
            idx: idx as i64,
            event_id: e.id.clone(),
            time: e.time,
            actor_user: e.actor_user.clone(),
            action: e.action.clone(),
            resource_type: e.resource_type.clone(),
            resource_id: e.resource_id.clone(),
            outcome: e.outcome.clone(),
            entry,
            leaf_hash: leaf.to_vec(),
            head_ts: head.timestamp_ms,
            head_kid: signer.kid.clone(),
            head_sig: sig,
        })
    }

    /// The tenants appended to since this was last asked (a checkpoint
    /// publisher's work list).
    pub fn take_unpublished(&self) -> Vec<String> {
        self.unpublished.lock().map(|mut u| u.drain().collect()).unwrap_or_default()
    }

    /// The tenant's newest head as a C2SP checkpoint of `origin`, signed by
    /// the key that signs now.
    pub async fn checkpoint(&self, tenant: &str, origin: &str) -> Result<Option<(Head, String)>> {
        let Some(h) = self.head(tenant).await? else { return Ok(None) };
        let head = Head { size: h.head.tree_size, root: h.head.root };
        let note = crate::domain::checkpoint::sign(origin, head, &self.signing.signer()).map_err(Error::Internal)?;
        Ok(Some((head, note)))
    }

    /// The root of a tenant's tree at `size`.
    pub async fn root_at(&self, tenant: &str, size: u64) -> Result<Hash> {
        self.with_tree(tenant, |t| t.root(size)).await?.map_err(|e| Error::Internal(e.to_string()))
    }

    /// The head signed with a tenant's newest entry.
    pub async fn head(&self, tenant: &str) -> Result<Option<SignedHead>> {
        let Some(row) = self.store.newest(tenant).await? else { return Ok(None) };
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
        let row = self.store.entry_of(tenant, event_id).await?.ok_or(Error::NotFound)?;
        let idx = row.idx as u64;
        let proof = self
            .with_tree(tenant, |t| t.inclusion_proof(idx, size))
            .await?
            .map_err(|e| Error::invalid("tree_size", e.to_string()))?;
        Ok((idx, proof))
    }

    /// A consistency proof between two sizes. From a size older than a
    /// prune (a monitor's remembered head), the proof is made on a tree
    /// rebuilt from every leaf hash, the pruned ones kept for this.
    pub async fn consistency(&self, tenant: &str, first: u64, second: u64) -> Result<Vec<Hash>> {
        let (pruned, _) = self.pruned(tenant).await?;
        let proof = if first > 0 && first < pruned {
            let kept = self.store.pruned_leaf_hashes(tenant).await?;
            if kept.len() as u64 != pruned {
                let why = format!("entries before {pruned} were pruned before their hashes were kept");
                return Err(Error::invalid("first_size", why));
            }
            let mut full = Tree::new();
            for h in kept.into_iter().chain(self.store.leaf_hashes(tenant).await?) {
                full.push(h.try_into().map_err(|_| AuditError::LeafHashCorrupt)?);
            }
            full.consistency_proof(first, second)
        } else {
            self.with_tree(tenant, |t| t.consistency_proof(first, second)).await?
        };
        proof.map_err(|e| Error::invalid("second_size", e.to_string()))
    }

    /// Events matching `f`, newest first, below index `before`.
    pub async fn query(&self, f: &Filter, before: Option<i64>, limit: u64) -> Result<Vec<(i64, Event)>> {
        let rows = self.store.query(f, before, limit).await?;
        rows.into_iter()
            .map(|r| {
                Event::decode(&r.entry)
                    .map(|e| (r.idx, e))
                    .ok_or_else(|| AuditError::EntryCorrupt { index: r.idx }.into())
            })
            .collect()
    }

    /// Every stored entry of a tenant with its signed head, in index order.
    pub async fn records(&self, tenant: &str) -> Result<Vec<Record>> {
        self.records_page(tenant, 0, None).await
    }

    /// Up to `limit` (all when None) stored entries from index `from`, in index order.
    pub async fn records_page(&self, tenant: &str, from: u64, limit: Option<u64>) -> Result<Vec<Record>> {
        self.store.records(tenant, from, limit).await
    }

    /// Sets a tenant's retention (the caller checked the 180-day floor).
    pub async fn set_retention(&self, tenant: &str, days: u32) -> Result<u32> {
        let days_i = i32::try_from(days).map_err(|_| Error::invalid("retention_days", "too large"))?;
        self.store.set_retention(tenant, days_i).await?;
        Ok(days)
    }

    /// Verifies a tenant's whole stored log against its signed heads.
    pub async fn verify(&self, tenant: &str) -> Result<Finding> {
        Ok(verify_log(tenant, self.base_tree(tenant).await?, &self.records(tenant).await?, &self.public_keys()))
    }
}

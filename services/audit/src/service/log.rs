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

use crate::domain::canonical::Event;
use crate::domain::merkle::{Hash, Tree, leaf_hash};
use crate::domain::pin::{Keys, Pins, fingerprint};
use crate::domain::sth::{HeadSigner, TreeHead};
use crate::domain::validate;
use crate::domain::verify::{Finding, Record, verify_log};
use crate::error::{AuditError, Error, Result};
pub use crate::store::log::Filter;
use crate::store::log::Store;
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

/// The audit log of every tenant.
pub struct Log {
    store: Store,
    signer: HeadSigner,
    keys: Keys,
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
    pub async fn open(store: Store, envelope: Arc<Envelope>) -> Result<Self> {
        Self::open_on(store, envelope, Clock::system(), None).await
    }

    /// As [`Log::open`], with heads and keys dated by `clock`, trusting only
    /// the keys `pins` names when given. Every stored public key must be its
    /// sealed private key's (opened through the key provider, bound to its
    /// key id): a key row planted in the database stops the start.
    pub async fn open_on(store: Store, envelope: Arc<Envelope>, clock: Clock, pins: Option<Pins>) -> Result<Self> {
        let mut rows = store.signing_keys().await?;
        if rows.is_empty() {
            rows.push(Self::new_signing_key(&store, &envelope, &clock).await?);
        }
        let mut signers = Vec::with_capacity(rows.len());
        for row in &rows {
            let pkcs8 = envelope.open_secret(PLATFORM, KEY_KIND, &row.kid, &row.data_key_id, &row.sealed).await;
            let signer = pkcs8.ok().and_then(|p| HeadSigner::from_pkcs8(&row.kid, &p));
            match signer {
                Some(s) if s.public_key() == row.public_key => signers.push(s),
                _ => return Err(AuditError::SigningKeyMismatch { kid: row.kid.clone() }.into()),
            }
        }
        let checked: Keys = rows.iter().map(|r| (r.kid.clone(), r.public_key.clone())).collect();
        let keys = match &pins {
            Some(p) => p.filter(&checked),
            None => checked,
        };
        let signer = signers.pop().ok_or_else(|| Error::Internal("no signing key".into()))?;
        let pinned = pins.as_ref().is_none_or(|p| p.trusts(&signer.public_key()));
        tracing::info!(kid = %signer.kid, fingerprint = %fingerprint(&signer.public_key()), pinned, "audit head-signing key");
        if !pinned {
            tracing::error!(kid = %signer.kid, "the head-signing key is not among --trusted-keys: its heads will not verify");
        }
        Ok(Self { store, signer, keys, trees: Mutex::new(HashMap::new()), clock })
    }

    async fn new_signing_key(store: &Store, envelope: &Envelope, clock: &Clock) -> Result<signing_key::Model> {
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
        store.insert_signing_key(row.clone()).await?;
        Ok(row)
    }

    /// The trusted public keys of tree heads, by key id: checked against
    /// their sealed private keys at start, and pinned where pins are set.
    pub fn public_keys(&self) -> &Keys {
        &self.keys
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
        let sig = self.signer.sign(&head);
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
            head_kid: self.signer.kid.clone(),
            head_sig: sig,
        })
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

    /// A consistency proof between two sizes.
    pub async fn consistency(&self, tenant: &str, first: u64, second: u64) -> Result<Vec<Hash>> {
        self.with_tree(tenant, |t| t.consistency_proof(first, second))
            .await?
            .map_err(|e| Error::invalid("second_size", e.to_string()))
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
        Ok(verify_log(tenant, self.base_tree(tenant).await?, &self.records(tenant).await?, &self.keys))
    }
}

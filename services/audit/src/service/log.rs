//! The log: appends with a signed head per entry, proofs at any size,
//! queries, and whole-log verification. A tenant's appends are sequenced
//! through the database (its sequencer row is locked for the transaction
//! that stores the entries, the tiles they complete and the new size), so
//! any number of replicas extend one tree; the (tenant, index) key refuses
//! a second writer that bypassed the lock.

use guardline_runtime::clock::Clock;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use guardline_keys::{Envelope, PLATFORM};
use tokio::sync::RwLock;

pub use super::signing::{Rotated, Signing};
use super::trees::{Held, Trees, apply};
use crate::domain::canonical::Event;
use crate::domain::merkle::{Hash, Tree, leaf_hash};
use crate::domain::monitor::Head;
use crate::domain::pin::{Keys, Pins};
use crate::domain::sth::TreeHead;
use crate::domain::tiles::{TiledTree, Tiles};
use crate::domain::validate;
use crate::domain::verify::{Finding, Record, verify_page};
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
    trees: Trees,
    /// Appends hold it shared, a key rotation exclusively.
    rotating: RwLock<()>,
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
        let trees = Trees::new(store.clone());
        Ok(Self { store, signing, unpublished: Default::default(), trees, rotating: RwLock::new(()), clock })
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
            let _appends = self.rotating.write().await;
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

    /// The tree of a tenant's pruned prefix (empty if nothing was pruned):
    /// where whole-log verification starts.
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
        let size = self.store.committed_size(tenant).await?;
        let k = self.store.first_since(tenant, cutoff).await?.unwrap_or(size).min(size);
        let (before, _) = self.pruned(tenant).await?;
        if k <= before {
            return Ok((0, before));
        }
        if dry_run {
            return Ok((k - before, before));
        }
        let frontier =
            self.trees.read(tenant, k, |v| v.frontier(k)).await?.map_err(|e| Error::Internal(e.to_string()))?;
        self.store.prune_below(tenant, k, &frontier).await?;
        self.trees.pruned(tenant, k).await;
        Ok((k - before, k))
    }

    /// Appends a batch atomically: all events are valid and stored (or
    /// acknowledged as duplicates), or none is. Returns (stored, duplicate)
    /// ids. Each tenant's sequencer row is locked for the transaction, so
    /// of all replicas one extends a tenant's tree at a time, from what the
    /// last one committed.
    pub async fn append(&self, events: Vec<Event>) -> Result<(Vec<String>, Vec<String>)> {
        for (i, e) in events.iter().enumerate() {
            validate::check(i, e).map_err(|v| Error::invalid(v.field, v.reason))?;
        }
        let _no_rotation = self.rotating.read().await;
        self.signing.sync(&self.store, &self.clock).await?;
        let mut by_tenant: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for e in &events {
            by_tenant.entry(e.tenant_id.clone()).or_default().push(e.id.clone());
        }
        // In name order, in memory and in the database: no deadlock.
        let mut held = self.trees.lock_all(by_tenant.keys()).await;
        let res = self.append_locked(&mut held, by_tenant, events).await;
        if res.is_err() {
            // The trees may hold leaves that were not committed.
            for tree in held.values_mut() {
                **tree = TiledTree::new();
            }
        }
        res
    }

    async fn append_locked(
        &self,
        trees: &mut Held,
        by_tenant: BTreeMap<String, Vec<String>>,
        events: Vec<Event>,
    ) -> Result<(Vec<String>, Vec<String>)> {
        let txn = self.store.begin_append().await?;
        let mut seen = HashSet::new();
        for (tenant, ids) in by_tenant {
            let tree = trees.get_mut(&tenant).ok_or_else(|| Error::Internal("tree".into()))?;
            let mut committed = txn.lock(&tenant).await?;
            let stored = txn.stored_size(&tenant).await?;
            if stored > committed {
                txn.adopt(&tenant, committed, stored).await?;
                committed = stored;
            }
            if tree.len() != committed {
                if tree.len() > committed {
                    **tree = TiledTree::new();
                }
                let held = tree.complete_tiles();
                apply(tree, txn.catch_up(&tenant, committed, held).await?);
            }
            seen.extend(txn.existing(&tenant, ids).await?.into_iter().map(|id| (tenant.clone(), id)));
        }
        let (mut stored, mut dups, mut rows) = (Vec::new(), Vec::new(), Vec::new());
        let mut tiles: BTreeMap<String, Vec<(u64, Hash)>> = BTreeMap::new();
        for e in events {
            if !seen.insert((e.tenant_id.clone(), e.id.clone())) {
                dups.push(e.id);
                continue;
            }
            let tree = trees.get_mut(&e.tenant_id).ok_or_else(|| Error::Internal("tree".into()))?;
            let (row, tile) = self.leaf(tree, &e)?;
            tiles.entry(e.tenant_id.clone()).or_default().extend(tile);
            rows.push(row);
            stored.push(e.id);
        }
        txn.insert(rows).await?;
        for (tenant, tree) in trees.iter() {
            txn.put_tiles(tenant, tiles.get(tenant.as_str()).map_or(&[], Vec::as_slice)).await?;
            txn.set_size(tenant, tree.len()).await?;
        }
        // Durable before acknowledged.
        txn.commit().await?;
        if let Ok(mut u) = self.unpublished.lock() {
            u.extend(trees.keys().cloned());
        }
        let sizes = &guardline_runtime::metrics::business().audit_tree_size;
        for tree in trees.values() {
            sizes.record(tree.len(), &[]);
        }
        Ok((stored, dups))
    }

    /// Appends `e` to `tree` and signs the head at the new size: the row,
    /// and the tile it completed.
    fn leaf(&self, tree: &mut TiledTree, e: &Event) -> Result<(event::Model, Option<(u64, Hash)>)> {
        let entry = e.encode();
        let leaf = leaf_hash(&entry);
        let idx = tree.len();
        let tile = tree.push(leaf);
        // The newest root reads only the levels above the tiles and the
        // filling tile, both in memory.
        let root = tree.view(&Tiles::new()).root(idx + 1).map_err(|e| Error::Internal(e.to_string()))?;
        let head = TreeHead {
            tenant_id: e.tenant_id.clone(),
            tree_size: idx + 1,
            timestamp_ms: self.clock.now().timestamp_millis(),
            root,
        };
        let signer = self.signing.signer();
        let sig = signer.sign(&head);
        let row = event::Model {
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
        };
        Ok((row, tile))
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
        self.trees.read(tenant, size, |v| v.root(size)).await?.map_err(|e| Error::Internal(e.to_string()))
    }

    /// The head signed with a tenant's newest entry.
    pub async fn head(&self, tenant: &str) -> Result<Option<SignedHead>> {
        let Some(row) = self.store.newest(tenant).await? else { return Ok(None) };
        let size = row.idx as u64 + 1;
        let root = self.root_at(tenant, size).await?;
        Ok(Some(SignedHead {
            head: TreeHead { tenant_id: tenant.into(), tree_size: size, timestamp_ms: row.head_ts, root },
            kid: row.head_kid,
            signature: row.head_sig,
        }))
    }

    /// The leaf index of an event and its inclusion proof at `size`.
    pub async fn inclusion(&self, tenant: &str, event_id: &str, size: u64) -> Result<(u64, Vec<Hash>)> {
        let row = self.store.entry_of(tenant, event_id).await?.ok_or(Error::NotFound)?;
        let idx = row.idx as u64;
        let proof = self
            .trees
            .read(tenant, size, |v| v.inclusion_proof(idx, size))
            .await?
            .map_err(|e| Error::invalid("tree_size", e.to_string()))?;
        Ok((idx, proof))
    }

    /// A consistency proof between two sizes, also from a size older than
    /// a prune (a monitor's remembered head): the pruned leaves' hashes are
    /// kept for this.
    pub async fn consistency(&self, tenant: &str, first: u64, second: u64) -> Result<Vec<Hash>> {
        let proof = self.trees.read(tenant, second, |v| v.consistency_proof(first, second)).await;
        let unkept = |e: &Error| matches!(e.refusal::<AuditError>(), Some(AuditError::LeavesMissing { .. }));
        match proof {
            Err(e) if unkept(&e) && first < self.pruned(tenant).await?.0 => {
                let why = "entries before that size were pruned before their hashes were kept";
                Err(Error::invalid("first_size", why))
            }
            p => p?.map_err(|e| Error::invalid("second_size", e.to_string())),
        }
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

    /// Verifies a tenant's whole stored log against its signed heads, a
    /// page at a time: memory stays that of one page, whatever the log's length.
    pub async fn verify(&self, tenant: &str) -> Result<Finding> {
        const PAGE: u64 = 5_000;
        let (mut tree, keys) = (self.base_tree(tenant).await?, self.public_keys());
        loop {
            let page = self.records_page(tenant, tree.len(), Some(PAGE)).await?;
            if let Err(finding) = verify_page(tenant, &mut tree, &page, &keys) {
                return Ok(finding);
            }
            if (page.len() as u64) < PAGE {
                return Ok(Finding::Intact { size: tree.len() });
            }
            tree.compact();
        }
    }
}

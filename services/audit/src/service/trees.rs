//! Each tenant's tree as this replica holds it: the levels above the tiles
//! and the filling tile ([`TiledTree`]), brought up to what the store
//! committed before every use, since another replica may have appended.
//! Appends lock a tenant's tree here and its sequencer row in the store.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::domain::merkle::ProofError;
use crate::domain::tiles::{TileError, TiledTree, View};
use crate::error::{Error, Result};
use crate::store::log::Store;
use crate::store::tree::Committed;

/// The trees locked for one append, by tenant.
pub type Held = BTreeMap<String, OwnedMutexGuard<TiledTree>>;

/// The trees of the tenants this replica has served.
#[derive(Debug)]
pub struct Trees {
    store: Store,
    map: std::sync::Mutex<HashMap<String, Arc<Mutex<TiledTree>>>>,
}

/// Brings a tree to what the store committed.
pub fn apply(tree: &mut TiledTree, c: Committed) {
    tree.extend(c.roots, c.edge);
    tree.set_pruned(c.pruned);
}

impl Trees {
    /// No tree held yet.
    pub fn new(store: Store) -> Self {
        Self { store, map: Default::default() }
    }

    fn get(&self, tenant: &str) -> Arc<Mutex<TiledTree>> {
        let mut map = self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry(tenant.to_owned()).or_default().clone()
    }

    /// Locks the trees of `tenants`, in name order.
    pub async fn lock_all<'a>(&self, tenants: impl Iterator<Item = &'a String>) -> Held {
        let mut held = Held::new();
        let mut names: Vec<&String> = tenants.collect();
        names.sort();
        for t in names {
            held.insert(t.clone(), self.get(t).lock_owned().await);
        }
        held
    }

    /// Runs `op` on the tenant's tree, caught up to at least `need` leaves
    /// when the store has them, over the complete tiles it reads.
    pub async fn read<T>(
        &self,
        tenant: &str,
        need: u64,
        op: impl Fn(&View<'_>) -> std::result::Result<T, TileError>,
    ) -> Result<std::result::Result<T, ProofError>> {
        let arc = self.get(tenant);
        let mut tree = arc.lock().await;
        self.sync(tenant, &mut tree, need).await?;
        let wanted = tree.tiles_for(&op);
        let tiles = self.store.tiles(tenant, &wanted).await?;
        match op(&tree.view(&tiles)) {
            Ok(t) => Ok(Ok(t)),
            Err(TileError::Proof(p)) => Ok(Err(p)),
            Err(TileError::Missing(t)) => Err(Error::Internal(format!("tile {t} was not loaded"))),
        }
    }

    /// Marks the tenant's leaves before `first` as pruned.
    pub async fn pruned(&self, tenant: &str, first: u64) {
        self.get(tenant).lock().await.set_pruned(first);
    }

    async fn sync(&self, tenant: &str, tree: &mut TiledTree, need: u64) -> Result<()> {
        let mut size = self.store.committed_size(tenant).await?;
        // Entries a version without a sequencer appended are adopted under
        // the lock, as an append would; a size asked beyond what is stored
        // (a caller's mistake, or probe) takes no lock.
        if size < need && self.store.stored_size(tenant).await? > size {
            let txn = self.store.begin_append().await?;
            let committed = txn.lock(tenant).await?;
            let stored = txn.stored_size(tenant).await?;
            if stored > committed {
                txn.adopt(tenant, committed, stored).await?;
            }
            txn.commit().await?;
            size = committed.max(stored);
        }
        if tree.len() > size {
            *tree = TiledTree::new();
        }
        if tree.len() < size {
            apply(tree, self.store.catch_up(tenant, size, tree.complete_tiles()).await?);
        }
        Ok(())
    }
}

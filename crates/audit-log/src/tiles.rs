//! The tree held as tiles, in the shape of C2SP tlog-tiles (Trillian
//! Tessera, Sunlight): the leaves are grouped in tiles of 256, each complete
//! tile's root is stored once, and only what sits above the tiles is held in
//! memory, with the leaves of the one tile still filling. A root or proof
//! needs the leaves of at most a few complete tiles, which the caller reads
//! from its store: [`TiledTree::tiles_for`] names them, the operation then
//! runs over them.
//!
//! Memory is one hash per 128 leaves (the levels above the tiles) plus the
//! partial tile: 2.5 MB at 10M entries, where a tree of every node held 640 MB.
//! The tests check every root and proof against the in-memory [`Tree`].

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

use crate::merkle::{Hash, ProofError, Subtrees, Tree, empty_root, frontier_of, path, subproof};

/// Leaves per tile is 2^`TILE_HEIGHT`.
pub const TILE_HEIGHT: u32 = 8;
/// Leaves per tile.
pub const TILE_WIDTH: u64 = 1 << TILE_HEIGHT;

/// The complete tiles an operation reads, each as the tree of its leaves.
pub type Tiles = HashMap<u64, Tree>;

/// A log's tree above its tiles, with the leaves of the tile still filling.
#[derive(Clone, Debug, Default)]
pub struct TiledTree {
    /// A tree whose leaves are the complete tiles' roots.
    upper: Tree,
    /// The leaves of the partial tile (fewer than [`TILE_WIDTH`]).
    edge: Tree,
    /// Leaves before this index were pruned: no inclusion proof or root for them.
    pruned: u64,
}

/// Why a tiled operation did not run.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TileError {
    /// The operation itself is not possible at these sizes.
    #[error(transparent)]
    Proof(#[from] ProofError),
    /// A tile it needs was not supplied.
    #[error("tile {0} was not loaded")]
    Missing(u64),
}

impl TiledTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self { upper: Tree::new(), edge: Tree::new(), pruned: 0 }
    }

    /// Number of leaves.
    pub fn len(&self) -> u64 {
        self.upper.len() * TILE_WIDTH + self.edge.len()
    }

    /// Whether the tree has no leaf.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Complete tiles.
    pub fn complete_tiles(&self) -> u64 {
        self.upper.len()
    }

    /// Marks the leaves before `first` as pruned.
    pub fn set_pruned(&mut self, first: u64) {
        self.pruned = first;
    }

    /// Appends a leaf hash; when it completes a tile, returns that tile's
    /// index and root, which the caller stores with the leaf.
    pub fn push(&mut self, leaf: Hash) -> Option<(u64, Hash)> {
        self.edge.push(leaf);
        if self.edge.len() < TILE_WIDTH {
            return None;
        }
        let root = self.edge.subtree(0, TILE_WIDTH);
        let tile = self.upper.len();
        self.upper.push(root);
        self.edge = Tree::new();
        Some((tile, root))
    }

    /// Catches up with what another writer committed: the roots of the
    /// tiles completed since, then the leaves of the tile now filling.
    pub fn extend(&mut self, tile_roots: impl IntoIterator<Item = Hash>, edge: impl IntoIterator<Item = Hash>) {
        for root in tile_roots {
            self.upper.push(root);
        }
        self.edge = Tree::from_leaves(edge);
    }

    /// The complete tiles an operation on this tree reads (run it once with
    /// no tiles to find them).
    pub fn tiles_for<T>(&self, op: impl FnOnce(&View<'_>) -> T) -> BTreeSet<u64> {
        let empty = Tiles::new();
        let view = View { tree: self, tiles: &empty, missing: RefCell::default() };
        op(&view);
        view.missing.into_inner()
    }

    /// The tree over `tiles` for one operation.
    pub fn view<'a>(&'a self, tiles: &'a Tiles) -> View<'a> {
        View { tree: self, tiles, missing: RefCell::default() }
    }
}

/// A [`TiledTree`] with the complete tiles one operation reads.
#[derive(Debug)]
pub struct View<'a> {
    tree: &'a TiledTree,
    tiles: &'a Tiles,
    missing: RefCell<BTreeSet<u64>>,
}

impl Subtrees for View<'_> {
    fn node(&self, level: u32, i: u64) -> Hash {
        if level >= TILE_HEIGHT {
            return self.tree.upper.node(level - TILE_HEIGHT, i);
        }
        let (tile, within) = ((i << level) / TILE_WIDTH, (i << level) % TILE_WIDTH);
        let leaves = if tile == self.tree.upper.len() { Some(&self.tree.edge) } else { self.tiles.get(&tile) };
        match leaves.filter(|t| t.len() >= within + (1 << level)) {
            Some(t) => t.subtree(within, 1 << level),
            None => {
                self.missing.borrow_mut().insert(tile);
                [0; 32]
            }
        }
    }
}

impl View<'_> {
    fn done<T>(&self, out: T) -> Result<T, TileError> {
        match self.missing.borrow().first() {
            Some(t) => Err(TileError::Missing(*t)),
            None => Ok(out),
        }
    }

    fn len(&self) -> u64 {
        self.tree.len()
    }

    /// The root hash of the first `size` leaves.
    pub fn root(&self, size: u64) -> Result<Hash, TileError> {
        match size {
            0 => Ok(empty_root()),
            s if s > self.len() => Err(ProofError::SizeBeyondTree(s, self.len()).into()),
            s if s < self.tree.pruned => Err(ProofError::Pruned(self.tree.pruned).into()),
            s => self.done(self.subtree(0, s)),
        }
    }

    /// PATH(m, D[0:n]) (RFC 9162 §2.1.3.1), leaf to root.
    pub fn inclusion_proof(&self, m: u64, n: u64) -> Result<Vec<Hash>, TileError> {
        if n > self.len() {
            return Err(ProofError::SizeBeyondTree(n, self.len()).into());
        }
        if m >= n {
            return Err(ProofError::LeafBeyondSize(m, n).into());
        }
        if m < self.tree.pruned {
            return Err(ProofError::Pruned(self.tree.pruned).into());
        }
        let mut out = Vec::new();
        path(self, m, 0, n, &mut out);
        self.done(out)
    }

    /// PROOF(m, D[0:n]) (RFC 9162 §2.1.4.1), empty when m == n. A size
    /// older than a prune is answered when the pruned leaves' tiles are
    /// supplied (their hashes are kept).
    pub fn consistency_proof(&self, m: u64, n: u64) -> Result<Vec<Hash>, TileError> {
        if n > self.len() {
            return Err(ProofError::SizeBeyondTree(n, self.len()).into());
        }
        if m == 0 || m > n {
            return Err(ProofError::BadRange.into());
        }
        let mut out = Vec::new();
        if m < n {
            subproof(self, m, 0, n, true, &mut out);
        }
        self.done(out)
    }

    /// The hashes of the maximal complete subtrees covering the first `k`
    /// leaves: what must be kept to prune them.
    pub fn frontier(&self, k: u64) -> Result<Vec<Hash>, TileError> {
        if k > self.len() {
            return Err(ProofError::SizeBeyondTree(k, self.len()).into());
        }
        self.done(frontier_of(self, k))
    }
}

#[cfg(test)]
mod tests;

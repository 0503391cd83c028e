//! The RFC 9162 (Certificate Transparency 2.0) Merkle tree, section 2.1:
//! leaf hash `SHA-256(0x00 || entry)`, interior hash `SHA-256(0x01 || l || r)`,
//! and the inclusion (§2.1.3.1) and consistency (§2.1.4.1) proofs, for any
//! tree size up to the current one.
//!
//! Complete subtrees are cached per level, so a root or proof at any size
//! costs O(log² n) hash operations. Proofs follow the RFC's recursive
//! definitions literally; the tests check them with `ct-merkle`, an
//! independent implementation, for sizes 1, 2, 3, 2^k and 2^k+1.

/// A SHA-256 digest.
pub type Hash = [u8; 32];

fn sha256(parts: &[&[u8]]) -> Hash {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// `SHA-256(0x00 || entry)`.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    sha256(&[&[0x00], entry])
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    sha256(&[&[0x01], left, right])
}

/// The root of the empty tree: `SHA-256()`.
pub fn empty_root() -> Hash {
    sha256(&[])
}

/// The largest power of two strictly smaller than `n` (n ≥ 2).
pub(crate) fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// Why a proof cannot be produced.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The tree size asked for is larger than the tree.
    #[error("tree size {0} is larger than the log ({1})")]
    SizeBeyondTree(u64, u64),
    /// The leaf index is not below the tree size.
    #[error("leaf {0} is not in a tree of size {1}")]
    LeafBeyondSize(u64, u64),
    /// A consistency proof needs 0 < first ≤ second.
    #[error("consistency needs 0 < first size <= second size")]
    BadRange,
    /// The leaves asked about were pruned under the retention policy.
    #[error("entries before index {0} were pruned under the retention policy")]
    Pruned(u64),
}

/// The complete subtrees of one level still kept: node `first + j` is
/// `nodes[j]`, the hash of the 2^level leaves from `(first + j) * 2^level`.
#[derive(Clone, Debug, Default)]
struct Level {
    first: u64,
    nodes: Vec<Hash>,
}

impl Level {
    /// Nodes of the level, kept or pruned.
    fn count(&self) -> u64 {
        self.first + self.nodes.len() as u64
    }

    fn node(&self, i: u64) -> Hash {
        self.nodes[(i - self.first) as usize]
    }
}

/// An append-only tree of leaf hashes with cached complete subtrees. After a
/// prune only the frontier nodes and what follows them are held, so memory
/// is the kept entries', whatever the pruned prefix's size.
#[derive(Clone, Debug, Default)]
pub struct Tree {
    levels: Vec<Level>,
    // Leaves before this index were pruned; of them only the frontier nodes
    // are held, which is all any later root or proof reads.
    pruned: u64,
}

impl Tree {
    /// An empty tree.
    pub fn new() -> Self {
        Self { levels: vec![Level::default()], pruned: 0 }
    }

    /// A tree whose first `pruned` leaves are gone, represented only by the
    /// hashes of the maximal complete subtrees covering them (left to right,
    /// as [`Tree::frontier`] returns them). Roots and proofs for sizes and
    /// leaves at or past `pruned` work as before. It holds one hash per
    /// frontier node, so no `pruned` (as read from an export's header) can
    /// make it allocate more than 64 hashes.
    pub fn with_frontier(pruned: u64, frontier: &[Hash]) -> Option<Self> {
        let blocks: Vec<u32> = (0..64).rev().filter(|b| pruned & (1 << b) != 0).collect();
        if blocks.len() != frontier.len() {
            return None;
        }
        let top = blocks.first().map_or(0, |b| *b as usize);
        let mut levels: Vec<Level> = (0..=top).map(|l| Level { first: pruned >> l, nodes: Vec::new() }).collect();
        for (bit, hash) in blocks.iter().zip(frontier) {
            let level = &mut levels[*bit as usize];
            level.first -= 1;
            level.nodes.push(*hash);
        }
        Some(Self { levels, pruned })
    }

    /// The hashes of the maximal complete subtrees covering the first `k`
    /// leaves, left to right: what must be kept to prune them.
    pub fn frontier(&self, k: u64) -> Result<Vec<Hash>, ProofError> {
        if k > self.len() {
            return Err(ProofError::SizeBeyondTree(k, self.len()));
        }
        if k < self.pruned {
            return Err(ProofError::Pruned(self.pruned));
        }
        Ok(frontier_of(self, k))
    }

    /// Leaves before this index were pruned.
    pub fn pruned(&self) -> u64 {
        self.pruned
    }

    /// A tree over `leaves`, in order.
    pub fn from_leaves(leaves: impl IntoIterator<Item = Hash>) -> Self {
        let mut t = Self::new();
        for l in leaves {
            t.push(l);
        }
        t
    }

    /// Number of leaves.
    pub fn len(&self) -> u64 {
        self.levels.first().map_or(0, Level::count)
    }

    /// Whether the tree has no leaf.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The leaf hash at `idx`, unless pruned.
    pub fn leaf(&self, idx: u64) -> Option<Hash> {
        let level = self.levels.first()?;
        level.nodes.get(usize::try_from(idx.checked_sub(level.first)?).ok()?).copied()
    }

    /// Appends a leaf hash, completing every subtree it closes.
    pub fn push(&mut self, leaf: Hash) {
        if self.levels.is_empty() {
            self.levels.push(Level::default());
        }
        self.levels[0].nodes.push(leaf);
        let mut k = 0;
        while self.levels[k].count().is_multiple_of(2) {
            let n = self.levels[k].count();
            let parent = node_hash(&self.levels[k].node(n - 2), &self.levels[k].node(n - 1));
            if self.levels.len() == k + 1 {
                self.levels.push(Level { first: n / 2 - 1, nodes: Vec::new() });
            }
            self.levels[k + 1].nodes.push(parent);
            k += 1;
        }
    }

    /// Drops every node no later root or proof past the current size reads:
    /// what remains is the frontier, at most 64 hashes. A verifier that
    /// reads a long log page by page compacts between pages.
    pub fn compact(&mut self) {
        let n = self.len();
        let frontier = frontier_of(self, n);
        if let Some(t) = Self::with_frontier(n, &frontier) {
            *self = t;
        }
    }

    /// The root hash of the first `size` leaves.
    pub fn root(&self, size: u64) -> Result<Hash, ProofError> {
        match size {
            0 => Ok(empty_root()),
            s if s > self.len() => Err(ProofError::SizeBeyondTree(s, self.len())),
            s if s < self.pruned => Err(ProofError::Pruned(self.pruned)),
            s => Ok(self.subtree(0, s)),
        }
    }

    /// PATH(m, D[0:n]), leaf to root (RFC 9162 §2.1.3.1).
    pub fn inclusion_proof(&self, m: u64, n: u64) -> Result<Vec<Hash>, ProofError> {
        if n > self.len() {
            return Err(ProofError::SizeBeyondTree(n, self.len()));
        }
        if m >= n {
            return Err(ProofError::LeafBeyondSize(m, n));
        }
        if m < self.pruned {
            return Err(ProofError::Pruned(self.pruned));
        }
        let mut out = Vec::new();
        path(self, m, 0, n, &mut out);
        Ok(out)
    }

    /// PROOF(m, D[0:n]) (RFC 9162 §2.1.4.1); empty when m == n.
    pub fn consistency_proof(&self, m: u64, n: u64) -> Result<Vec<Hash>, ProofError> {
        if n > self.len() {
            return Err(ProofError::SizeBeyondTree(n, self.len()));
        }
        if m == 0 || m > n {
            return Err(ProofError::BadRange);
        }
        if m < self.pruned {
            return Err(ProofError::Pruned(self.pruned));
        }
        let mut out = Vec::new();
        if m < n {
            subproof(self, m, 0, n, true, &mut out);
        }
        Ok(out)
    }
}

impl Subtrees for Tree {
    fn node(&self, level: u32, i: u64) -> Hash {
        self.levels[level as usize].node(i)
    }
}

/// A tree's complete subtrees, however they are held: the proofs below are
/// written once over this (an in-memory [`Tree`], or tiles read from a store).
pub trait Subtrees {
    /// The hash of complete subtree `i` of 2^`level` leaves.
    fn node(&self, level: u32, i: u64) -> Hash;

    /// MTH(D[start : start + len]), len ≥ 1, within the tree.
    fn subtree(&self, start: u64, len: u64) -> Hash {
        if len.is_power_of_two() && start.is_multiple_of(len) {
            return self.node(len.trailing_zeros(), start / len);
        }
        let k = split(len);
        node_hash(&self.subtree(start, k), &self.subtree(start + k, len - k))
    }
}

/// The maximal complete subtrees covering the first `k` leaves, left to right.
pub(crate) fn frontier_of(t: &impl Subtrees, k: u64) -> Vec<Hash> {
    let mut out = Vec::new();
    let mut start = 0;
    for bit in (0..64u32).rev().filter(|b| k & (1 << b) != 0) {
        out.push(t.subtree(start, 1 << bit));
        start += 1 << bit;
    }
    out
}

/// PATH(m, D[start : start + n]); pushes the deepest sibling first.
pub(crate) fn path(t: &impl Subtrees, m: u64, start: u64, n: u64, out: &mut Vec<Hash>) {
    if n == 1 {
        return;
    }
    let k = split(n);
    if m < k {
        path(t, m, start, k, out);
        out.push(t.subtree(start + k, n - k));
    } else {
        path(t, m - k, start + k, n - k, out);
        out.push(t.subtree(start, k));
    }
}

/// SUBPROOF(m, D[start : start + n], b).
pub(crate) fn subproof(t: &impl Subtrees, m: u64, start: u64, n: u64, b: bool, out: &mut Vec<Hash>) {
    if m == n {
        if !b {
            out.push(t.subtree(start, n));
        }
        return;
    }
    let k = split(n);
    if m <= k {
        subproof(t, m, start, k, b, out);
        out.push(t.subtree(start + k, n - k));
    } else {
        subproof(t, m - k, start + k, n - k, false, out);
        out.push(t.subtree(start, k));
    }
}

/// Whether `path` proves that the tree of `old` (size, root) is a prefix
/// of the tree of `new` (RFC 9162 §2.1.4.2), checked by `ct-merkle`, an
/// implementation independent of the one that makes our proofs. Equal
/// sizes need equal roots and an empty path.
pub fn verify_consistency(old: (u64, &Hash), new: (u64, &Hash), path: &[Hash]) -> bool {
    use ct_merkle::{ConsistencyProof, RootHash};
    use sha2::Sha256;
    if old.0 == new.0 {
        return old.1 == new.1 && path.is_empty();
    }
    let root = |(size, hash): (u64, &Hash)| RootHash::<Sha256>::new((*hash).into(), size);
    let digests: Vec<ct_merkle::digest::Output<Sha256>> = path.iter().map(|h| (*h).into()).collect();
    let proof = ConsistencyProof::<Sha256>::from_digests(digests.iter());
    root(new).verify_consistency(&root(old), &proof).is_ok()
}

#[cfg(test)]
mod tests;

//! Our proofs, checked by ct-merkle's RFC 9162 verifier.

use ct_merkle::{ConsistencyProof, HashableLeaf, InclusionProof, RootHash};
use sha2::Sha256;

use super::*;

struct Entry(Vec<u8>);

impl HashableLeaf for Entry {
    fn hash<H: ct_merkle::digest::Update>(&self, hasher: &mut H) {
        hasher.update(&self.0);
    }
}

fn entry(i: u64) -> Vec<u8> {
    format!("event-{i}").into_bytes()
}

fn tree(n: u64) -> Tree {
    Tree::from_leaves((0..n).map(|i| leaf_hash(&entry(i))))
}

fn ct_root(t: &Tree, size: u64) -> RootHash<Sha256> {
    let r = t.root(size).expect("root");
    RootHash::new(r.into(), size)
}

fn digests(proof: &[Hash]) -> Vec<ct_merkle::digest::Output<Sha256>> {
    proof.iter().map(|h| (*h).into()).collect()
}

/// Sizes the issue names: 1, 2, 3, 2^k and 2^k + 1, plus a few in between.
const SIZES: &[u64] = &[1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 64, 65];

#[test]
fn hashes_follow_rfc9162() {
    assert_eq!(leaf_hash(b"")[..4], [0x6e, 0x34, 0x0b, 0x9c], "SHA-256(0x00)");
    // The root of one leaf is its leaf hash; of two, the node hash of both.
    let t = tree(2);
    assert_eq!(t.root(1).expect("root"), leaf_hash(&entry(0)));
    assert_eq!(t.root(2).expect("root"), node_hash(&leaf_hash(&entry(0)), &leaf_hash(&entry(1))));
    assert_eq!(t.root(0).expect("root"), empty_root());
}

#[test]
fn roots_match_an_independent_implementation() {
    for &n in SIZES {
        let mut reference = ct_merkle::mem_backed_tree::MemoryBackedTree::<Sha256, Entry>::new();
        for i in 0..n {
            reference.push(Entry(entry(i)));
        }
        assert_eq!(reference.root().as_bytes().as_slice(), tree(n).root(n).expect("root"), "size {n}");
    }
}

#[test]
fn every_inclusion_proof_verifies_at_every_size() {
    let t = tree(65);
    for &n in SIZES {
        let root = ct_root(&t, n);
        for m in 0..n {
            let proof =
                InclusionProof::<Sha256>::from_digests(digests(&t.inclusion_proof(m, n).expect("proof")).iter());
            root.verify_inclusion(&Entry(entry(m)), m, &proof).unwrap_or_else(|e| panic!("leaf {m} of {n}: {e:?}"));
            // The wrong entry or index fails.
            assert!(root.verify_inclusion(&Entry(entry(m + 1000)), m, &proof).is_err());
        }
    }
}

#[test]
fn every_consistency_proof_verifies() {
    let t = tree(65);
    for &n in SIZES {
        for m in 1..=n {
            let proof =
                ConsistencyProof::<Sha256>::from_digests(digests(&t.consistency_proof(m, n).expect("proof")).iter());
            ct_root(&t, n).verify_consistency(&ct_root(&t, m), &proof).unwrap_or_else(|e| panic!("{m} -> {n}: {e:?}"));
        }
    }
    // A forked history is not consistent.
    let forked = Tree::from_leaves((0..9).map(|i| leaf_hash(&entry(if i == 3 { 99 } else { i }))));
    let proof = ConsistencyProof::<Sha256>::from_digests(digests(&t.consistency_proof(5, 9).expect("proof")).iter());
    assert!(ct_root(&t, 9).verify_consistency(&ct_root(&forked, 5), &proof).is_err());
}

#[test]
fn verify_consistency_accepts_our_proofs_and_nothing_else() {
    let t = tree(33);
    let at = |n: u64| t.root(n).expect("root");
    for (m, n) in [(1, 2), (3, 7), (8, 16), (9, 33), (32, 33)] {
        let path = t.consistency_proof(m, n).expect("proof");
        assert!(verify_consistency((m, &at(m)), (n, &at(n)), &path), "{m} -> {n}");
        let mut bent = path.clone();
        bent[0][0] ^= 1;
        assert!(!verify_consistency((m, &at(m)), (n, &at(n)), &bent), "{m} -> {n}: a changed node");
        assert!(!verify_consistency((m, &at(m + 1)), (n, &at(n)), &path), "{m} -> {n}: another old root");
        assert!(!verify_consistency((m, &at(m)), (n, &at(n)), &path[1..]), "{m} -> {n}: a node short");
    }
    // Equal sizes: the same root, nothing to prove.
    assert!(verify_consistency((5, &at(5)), (5, &at(5)), &[]));
    assert!(!verify_consistency((5, &at(5)), (5, &at(6)), &[]), "rewritten at the same size");
    assert!(!verify_consistency((6, &at(6)), (5, &at(5)), &[]), "a shrunken log");
}

#[test]
fn out_of_range_requests_are_refused() {
    let t = tree(5);
    assert_eq!(t.inclusion_proof(5, 5), Err(ProofError::LeafBeyondSize(5, 5)));
    assert_eq!(t.inclusion_proof(0, 6), Err(ProofError::SizeBeyondTree(6, 5)));
    assert_eq!(t.consistency_proof(0, 3), Err(ProofError::BadRange));
    assert_eq!(t.consistency_proof(4, 3), Err(ProofError::BadRange));
    assert_eq!(t.consistency_proof(3, 3).expect("empty"), Vec::<Hash>::new());
}

#[test]
fn a_tree_pruned_to_its_frontier_proves_the_rest() {
    let full = tree(65);
    for k in [1, 2, 3, 5, 6, 8, 31, 32, 33, 64] {
        let frontier = full.frontier(k).expect("frontier");
        assert_eq!(frontier.len() as u32, k.count_ones());
        let mut pruned = Tree::with_frontier(k, &frontier).expect("seeded");
        for i in k..65 {
            pruned.push(leaf_hash(&entry(i)));
        }
        assert_eq!(pruned.len(), 65);
        for n in k.max(1)..=65 {
            assert_eq!(pruned.root(n), full.root(n), "root {n} after pruning {k}");
            for m in k..n {
                assert_eq!(pruned.inclusion_proof(m, n), full.inclusion_proof(m, n), "leaf {m} of {n}, pruned {k}");
            }
            for m in k.max(1)..=n {
                assert_eq!(pruned.consistency_proof(m, n), full.consistency_proof(m, n), "{m} -> {n}, pruned {k}");
            }
        }
        if k > 1 {
            assert_eq!(pruned.inclusion_proof(0, 65), Err(ProofError::Pruned(k)));
        }
    }
    assert!(Tree::with_frontier(6, &[[0; 32]]).is_none(), "6 = 4 + 2 needs two hashes");
}

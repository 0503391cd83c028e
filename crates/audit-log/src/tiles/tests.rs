//! The tiled tree answers exactly as the tree of every node does.

use super::*;
use crate::merkle::leaf_hash;

fn leaf(i: u64) -> Hash {
    leaf_hash(format!("event-{i}").as_bytes())
}

/// A tiled tree of `n` leaves, with the complete tiles a store would hold.
fn tiled(n: u64) -> (TiledTree, Tiles) {
    let mut t = TiledTree::new();
    let mut roots = Vec::new();
    for i in 0..n {
        if let Some((tile, root)) = t.push(leaf(i)) {
            assert_eq!(tile, roots.len() as u64);
            roots.push(root);
        }
    }
    let store = (0..n / TILE_WIDTH)
        .map(|tile| (tile, Tree::from_leaves((tile * TILE_WIDTH..(tile + 1) * TILE_WIDTH).map(leaf))))
        .collect();
    (t, store)
}

/// Runs `op` as the service does: find the tiles, load only those, run.
fn run<T>(t: &TiledTree, store: &Tiles, op: impl Fn(&View<'_>) -> Result<T, TileError>) -> Result<T, TileError> {
    let needed = t.tiles_for(|v| op(v));
    assert!(needed.len() <= 3, "an operation reads at most a few tiles, not {}", needed.len());
    let loaded: Tiles = needed.iter().map(|k| (*k, store[k].clone())).collect();
    op(&t.view(&loaded))
}

const SIZES: &[u64] = &[1, 2, 255, 256, 257, 300, 511, 512, 513, 767, 768, 1024, 1025, 1300];

#[test]
fn roots_and_proofs_match_the_whole_tree() {
    let whole = Tree::from_leaves((0..1300).map(leaf));
    let (t, store) = tiled(1300);
    assert_eq!(t.len(), 1300);
    for &n in SIZES {
        assert_eq!(run(&t, &store, |v| v.root(n)).expect("root"), whole.root(n).expect("root"), "root {n}");
        assert_eq!(run(&t, &store, |v| v.frontier(n)).expect("frontier"), whole.frontier(n).expect("frontier"));
        for m in [0, 1, n / 2, n.saturating_sub(257), n - 1].into_iter().filter(|m| *m < n) {
            let got = run(&t, &store, |v| v.inclusion_proof(m, n)).expect("inclusion");
            assert_eq!(got, whole.inclusion_proof(m, n).expect("inclusion"), "inclusion {m} of {n}");
        }
        for m in [1, n / 3 + 1, 256, 257, n] {
            if m <= n {
                let got = run(&t, &store, |v| v.consistency_proof(m, n)).expect("consistency");
                assert_eq!(got, whole.consistency_proof(m, n).expect("consistency"), "consistency {m}..{n}");
            }
        }
    }
}

#[test]
fn a_replica_catches_up_from_stored_tiles() {
    let (writer, store) = tiled(1000);
    // Another replica had 300 leaves; the store now holds 1000.
    let (mut reader, _) = tiled(300);
    let known = reader.complete_tiles();
    let roots = (known..writer.complete_tiles()).map(|k| store[&k].subtree(0, TILE_WIDTH));
    reader.extend(roots, (1000 / TILE_WIDTH * TILE_WIDTH..1000).map(leaf));
    assert_eq!(reader.len(), 1000);
    let empty = Tiles::new();
    assert_eq!(reader.view(&empty).root(1000), writer.view(&empty).root(1000));
}

#[test]
fn a_missing_tile_is_named_and_pruned_leaves_are_refused() {
    let (mut t, _) = tiled(600);
    let empty = Tiles::new();
    // The newest size reads only the partial tile, held in memory.
    assert!(t.view(&empty).root(600).is_ok());
    assert_eq!(t.view(&empty).inclusion_proof(3, 600), Err(TileError::Missing(0)));
    t.set_pruned(300);
    assert_eq!(t.view(&empty).inclusion_proof(3, 600), Err(TileError::Proof(ProofError::Pruned(300))));
    assert_eq!(t.view(&empty).root(10), Err(TileError::Proof(ProofError::Pruned(300))));
    assert_eq!(t.view(&empty).root(601), Err(TileError::Proof(ProofError::SizeBeyondTree(601, 600))));
}

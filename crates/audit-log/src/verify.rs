//! Whole-log verification, offline: recompute the tree from the stored
//! entries and check, at every index, the tree head signed when that entry was
//! appended. The first failure names the index where the log was changed,
//! removed from, or reordered.

use std::collections::HashMap;

use super::canonical::Event;
use super::merkle::{Tree, leaf_hash};
use super::sth::{TreeHead, verify as verify_signature};

/// One stored entry with the head signed when it was appended.
#[derive(Clone, Debug)]
pub struct Record {
    /// Leaf index.
    pub index: u64,
    /// Canonical entry bytes.
    pub entry: Vec<u8>,
    /// Time of the head at size `index + 1`, ms since the epoch.
    pub head_timestamp_ms: i64,
    /// Key id of its signature.
    pub head_kid: String,
    /// Signature of that head.
    pub head_signature: Vec<u8>,
}

/// What verification found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// Every entry and head checks out.
    Intact {
        /// Entries verified.
        size: u64,
    },
    /// The first index where the log differs from what was signed.
    Tampered {
        /// Leaf index.
        index: u64,
        /// What is wrong there.
        problem: String,
    },
}

/// Verifies `records` (in stored order) of `tenant` against `keys`, which
/// must be the pinned keys only (see [`crate::pin`]): a head signed by any
/// other key is a finding. `tree` holds what was pruned before the records.
pub fn verify_log(tenant: &str, mut tree: Tree, records: &[Record], keys: &HashMap<String, Vec<u8>>) -> Finding {
    match verify_page(tenant, &mut tree, records, keys) {
        Ok(()) => Finding::Intact { size: tree.len() },
        Err(f) => f,
    }
}

/// As [`verify_log`], for one page of a long log: `tree` is what the pages
/// before left (it may be [`Tree::compact`]ed between pages, so a log of any
/// length verifies in the memory of one page).
pub fn verify_page(
    tenant: &str,
    tree: &mut Tree,
    records: &[Record],
    keys: &HashMap<String, Vec<u8>>,
) -> Result<(), Finding> {
    let tampered = |index: u64, problem: &str| Finding::Tampered { index, problem: problem.to_owned() };
    for r in records {
        let expected = tree.len();
        if r.index != expected {
            let problem = if r.index > expected { "entry removed" } else { "entry duplicated or reordered" };
            return Err(tampered(expected, problem));
        }
        match Event::decode(&r.entry) {
            Some(e) if e.tenant_id == tenant => {}
            Some(_) => return Err(tampered(expected, "entry moved from another tenant")),
            None => return Err(tampered(expected, "entry is not a canonical event")),
        }
        tree.push(leaf_hash(&r.entry));
        let root = tree.root(expected + 1).map_err(|_| tampered(expected, "tree error"))?;
        let head =
            TreeHead { tenant_id: tenant.to_owned(), tree_size: expected + 1, timestamp_ms: r.head_timestamp_ms, root };
        let Some(key) = keys.get(&r.head_kid) else {
            return Err(tampered(expected, &format!("signed by key {}, which is not pinned", r.head_kid)));
        };
        if !verify_signature(key, &head, &r.head_signature) {
            return Err(tampered(expected, "entry differs from what was signed"));
        }
    }
    Ok(())
}

/// Logs signed entry by entry, for the crate's tests.
#[cfg(test)]
pub(crate) mod fixture {
    use super::*;
    use crate::sth::HeadSigner;

    /// `n` events of tenant `t1` (ids `e0`…, actions from `action`), each
    /// with the head signed by `signer` at its size; and the last head.
    pub(crate) fn signed_log(
        n: u64,
        signer: &HeadSigner,
        action: impl Fn(u64) -> String,
    ) -> (Vec<Record>, Option<(TreeHead, Vec<u8>)>) {
        let mut tree = Tree::new();
        let (mut records, mut last) = (Vec::new(), None);
        for i in 0..n {
            let e = Event {
                id: format!("e{i}"),
                tenant_id: "t1".into(),
                action: action(i),
                outcome: "allowed".into(),
                ..Default::default()
            };
            let entry = e.encode();
            tree.push(leaf_hash(&entry));
            let head = TreeHead {
                tenant_id: "t1".into(),
                tree_size: i + 1,
                timestamp_ms: i as i64,
                root: tree.root(i + 1).expect("root"),
            };
            let head_signature = signer.sign(&head);
            records.push(Record {
                index: i,
                entry,
                head_timestamp_ms: i as i64,
                head_kid: signer.kid.clone(),
                head_signature: head_signature.clone(),
            });
            last = Some((head, head_signature));
        }
        (records, last)
    }
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::signature::Ed25519KeyPair;

    use super::*;
    use crate::sth::HeadSigner;

    fn log(n: u64) -> (Vec<Record>, HashMap<String, Vec<u8>>) {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).expect("key");
        let signer = HeadSigner::from_pkcs8("k1", pkcs8.as_ref()).expect("signer");
        let (records, _) = fixture::signed_log(n, &signer, |_| "a".into());
        (records, [("k1".to_owned(), signer.public_key())].into())
    }

    #[test]
    fn an_intact_log_verifies() {
        let (r, k) = log(10);
        assert_eq!(verify_log("t1", Tree::new(), &r, &k), Finding::Intact { size: 10 });
    }

    #[test]
    fn a_log_verifies_page_by_page_in_the_memory_of_a_page() {
        let (mut r, k) = log(40);
        let mut tree = Tree::new();
        for page in r.chunks(7) {
            verify_page("t1", &mut tree, page, &k).expect("intact");
            tree.compact();
        }
        assert_eq!(tree.len(), 40);
        // A change in a later page is still named, after compaction.
        r[33].entry[0] ^= 1;
        let mut tree = Tree::new();
        let found = r.chunks(7).find_map(|page| {
            let res = verify_page("t1", &mut tree, page, &k).err();
            tree.compact();
            res
        });
        assert!(matches!(found, Some(Finding::Tampered { index: 33, .. })), "{found:?}");
    }

    #[test]
    fn a_changed_byte_is_named() {
        let (mut r, k) = log(10);
        let last = r[6].entry.len() - 1;
        r[6].entry[last] ^= 1;
        assert!(matches!(verify_log("t1", Tree::new(), &r, &k), Finding::Tampered { index: 6, .. }));
    }

    #[test]
    fn a_removed_row_is_named() {
        let (mut r, k) = log(10);
        r.remove(4);
        assert_eq!(
            verify_log("t1", Tree::new(), &r, &k),
            Finding::Tampered { index: 4, problem: "entry removed".into() }
        );
    }

    #[test]
    fn swapped_rows_are_named() {
        let (mut r, k) = log(10);
        let (a, b) = (r[3].entry.clone(), r[7].entry.clone());
        r[3].entry = b;
        r[7].entry = a;
        assert!(matches!(verify_log("t1", Tree::new(), &r, &k), Finding::Tampered { index: 3, .. }));
    }

    #[test]
    fn another_tenants_entry_or_key_is_refused() {
        let (r, k) = log(3);
        assert!(matches!(verify_log("t2", Tree::new(), &r, &k), Finding::Tampered { index: 0, .. }));
        assert!(matches!(verify_log("t1", Tree::new(), &r, &HashMap::new()), Finding::Tampered { index: 0, .. }));
    }
}

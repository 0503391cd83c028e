//! A monitor's judgement of a log against the head it saw before: the log
//! may only grow. Truncation (fewer entries than seen) and forks (the seen
//! head is not a prefix of today's, by an RFC 9162 consistency proof) are
//! said plainly.

use super::merkle::{Hash, verify_consistency};

/// A verified tree head: its size and root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// Number of entries.
    pub size: u64,
    /// RFC 9162 root hash.
    pub root: Hash,
}

/// What the monitor concludes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// No head was remembered: today's is the first.
    First,
    /// The same head as before.
    Unchanged,
    /// The log grew from the remembered head, proven consistent.
    Grew {
        /// The size seen before.
        from: u64,
    },
    /// The log has fewer entries than were seen.
    Truncated {
        /// The size seen before.
        seen: u64,
        /// The size now.
        now: u64,
    },
    /// The log is not an extension of the head seen before.
    Forked {
        /// The size seen before.
        seen: u64,
    },
}

impl Verdict {
    /// Whether the log kept its history.
    pub fn is_consistent(&self) -> bool {
        matches!(self, Self::First | Self::Unchanged | Self::Grew { .. })
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::First => write!(f, "first head seen; remembered for the next run"),
            Self::Unchanged => write!(f, "unchanged since the head seen before"),
            Self::Grew { from } => write!(f, "consistent with the head seen before (size {from}): the log only grew"),
            Self::Truncated { seen, now } => {
                write!(f, "TRUNCATED: the log has {now} entries, {seen} were seen before")
            }
            Self::Forked { seen } => {
                write!(f, "FORKED: the log is not an extension of the head seen before (size {seen})")
            }
        }
    }
}

/// Judges today's verified head against the remembered one. `proof` is the
/// consistency proof from the remembered size to today's; it is needed only
/// when the log grew.
pub fn judge(remembered: Option<Head>, now: Head, proof: Option<&[Hash]>) -> Verdict {
    let Some(seen) = remembered else { return Verdict::First };
    if now.size < seen.size {
        return Verdict::Truncated { seen: seen.size, now: now.size };
    }
    if now.size == seen.size {
        return if now.root == seen.root { Verdict::Unchanged } else { Verdict::Forked { seen: seen.size } };
    }
    match proof {
        Some(p) if verify_consistency((seen.size, &seen.root), (now.size, &now.root), p) => {
            Verdict::Grew { from: seen.size }
        }
        _ => Verdict::Forked { seen: seen.size },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{Tree, leaf_hash};

    fn tree(entries: &[&str]) -> Tree {
        Tree::from_leaves(entries.iter().map(|e| leaf_hash(e.as_bytes())))
    }

    fn head(t: &Tree, size: u64) -> Head {
        Head { size, root: t.root(size).expect("root") }
    }

    #[test]
    fn growth_is_proven_and_truncation_and_forks_are_named() {
        let t = tree(&["a", "b", "c", "d", "e", "f", "g"]);
        let (seen, now) = (head(&t, 3), head(&t, 7));
        let proof = t.consistency_proof(3, 7).expect("proof");
        assert_eq!(judge(Some(seen), now, Some(&proof)), Verdict::Grew { from: 3 });
        assert_eq!(judge(None, now, None), Verdict::First);
        assert_eq!(judge(Some(now), now, None), Verdict::Unchanged);
        // The newest entries cut: fewer than seen, whatever the signatures say.
        assert_eq!(judge(Some(now), seen, None), Verdict::Truncated { seen: 7, now: 3 });
        // History rewritten below the seen size, then grown: no proof links them.
        let forked = tree(&["a", "B", "c", "d", "e", "f", "g"]);
        let forked_proof = forked.consistency_proof(3, 7).expect("proof");
        assert_eq!(judge(Some(seen), head(&forked, 7), Some(&forked_proof)), Verdict::Forked { seen: 3 });
        assert_eq!(judge(Some(seen), head(&forked, 3), None), Verdict::Forked { seen: 3 }, "same size, other root");
        assert_eq!(judge(Some(seen), now, None), Verdict::Forked { seen: 3 }, "growth without a proof is not taken");
        assert!(!Verdict::Truncated { seen: 7, now: 3 }.is_consistent());
        assert!(Verdict::Truncated { seen: 7, now: 3 }.to_string().starts_with("TRUNCATED"));
    }
}

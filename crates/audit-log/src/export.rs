//! The export format (JSON Lines, documented in `docs/audit-log-format.md`)
//! and its offline verification.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use super::merkle::Tree;
use super::pin::{Keys, Pins};
use super::sth::{TreeHead, verify as verify_signature};
use super::verify::{Finding, Record, verify_log};

/// The format name in the header line.
pub const FORMAT: &str = "guardline-audit-export/1";

/// One line of an export.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Line {
    /// First line: what follows, and the keys that signed it.
    Header {
        /// [`FORMAT`].
        format: String,
        /// Tenant id.
        tenant_id: String,
        /// Public keys (base64 Ed25519) by key id.
        keys: HashMap<String, String>,
        /// Entries before this index were pruned under the retention policy.
        #[serde(default)]
        pruned_before: u64,
        /// Hashes (base64) of the complete subtrees covering the pruned entries.
        #[serde(default)]
        frontier: Vec<String>,
    },
    /// One log entry with the head signed when it was appended.
    Entry {
        /// Leaf index.
        index: u64,
        /// Canonical entry, base64.
        entry: String,
        /// Head time, ms.
        head_timestamp_ms: i64,
        /// Head key id.
        head_kid: String,
        /// Head signature, base64.
        head_signature: String,
    },
    /// Last line: the signed tree head the export ends at.
    TreeHead {
        /// Tree size.
        tree_size: u64,
        /// Root hash, base64.
        root_hash: String,
        /// Time, ms.
        timestamp_ms: i64,
        /// Key id.
        key_id: String,
        /// Signature, base64.
        signature: String,
    },
}

impl Line {
    /// The JSON line, with its newline.
    pub fn to_json_line(&self) -> String {
        let mut s = serde_json::to_string(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// An entry line from a stored record.
    pub fn entry(r: &Record) -> Self {
        Line::Entry {
            index: r.index,
            entry: B64.encode(&r.entry),
            head_timestamp_ms: r.head_timestamp_ms,
            head_kid: r.head_kid.clone(),
            head_signature: B64.encode(&r.head_signature),
        }
    }
}

/// The export's first line: the tenant, the heads' keys and the tree of the
/// pruned prefix.
fn header(line: Option<Line>) -> Result<(String, Keys, Tree), String> {
    match line {
        Some(Line::Header { format, tenant_id, keys, pruned_before, frontier }) if format == FORMAT => {
            let keys = keys
                .into_iter()
                .map(|(k, v)| B64.decode(v).map(|v| (k, v)).map_err(|_| "header: a key is not base64".to_owned()))
                .collect::<Result<HashMap<_, _>, _>>()?;
            let frontier = frontier
                .iter()
                .map(|h| B64.decode(h).ok().and_then(|b| <[u8; 32]>::try_from(b).ok()))
                .collect::<Option<Vec<_>>>()
                .ok_or("header: a frontier hash is not 32 bytes of base64")?;
            let base = Tree::with_frontier(pruned_before, &frontier)
                .ok_or("header: the frontier does not match pruned_before")?;
            Ok((tenant_id, keys, base))
        }
        _ => Err(format!("line 1: not a {FORMAT} header")),
    }
}

/// An export read line by line, nothing verified yet.
struct Parsed {
    tenant: String,
    carried: Keys,
    base: Tree,
    records: Vec<Record>,
    final_head: Option<(u64, String, i64, String, String)>,
}

fn parse(text: &str) -> Result<Parsed, String> {
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let parse = |(n, l): (usize, &str)| serde_json::from_str::<Line>(l).map_err(|e| format!("line {}: {e}", n + 1));
    let (tenant, carried, base) = header(lines.next().map(parse).transpose()?)?;
    let mut records = Vec::new();
    let mut final_head = None;
    for item in lines {
        let n = item.0 + 1;
        match parse(item)? {
            Line::Entry { index, entry, head_timestamp_ms, head_kid, head_signature } => {
                let entry = B64.decode(entry).map_err(|_| format!("line {n}: entry is not base64"))?;
                let head_signature =
                    B64.decode(head_signature).map_err(|_| format!("line {n}: signature is not base64"))?;
                records.push(Record { index, entry, head_timestamp_ms, head_kid, head_signature });
            }
            Line::TreeHead { tree_size, root_hash, timestamp_ms, key_id, signature } => {
                final_head = Some((tree_size, root_hash, timestamp_ms, key_id, signature));
            }
            Line::Header { .. } => return Err(format!("line {n}: a second header")),
        }
    }
    Ok(Parsed { tenant, carried, base, records, final_head })
}

/// The tenant of an export, the pinned keys among those it carries, and
/// the tree its entries recompute (from the pruned frontier on): what a
/// published checkpoint is compared with, once [`verify_export`] found the
/// export intact.
pub fn recomputed(text: &str, pins: &Pins) -> Result<(String, Keys, Tree), String> {
    let Parsed { tenant, carried, mut base, records, .. } = parse(text)?;
    for r in &records {
        base.push(super::merkle::leaf_hash(&r.entry));
    }
    Ok((tenant, pins.filter(&carried), base))
}

/// The closing tree head of an export (size and root), as a monitor
/// remembers it once [`verify_export`] found the export intact.
pub fn closing_head(text: &str) -> Option<crate::monitor::Head> {
    let last = text.lines().rev().find(|l| !l.trim().is_empty())?;
    match serde_json::from_str::<Line>(last).ok()? {
        Line::TreeHead { tree_size, root_hash, .. } => {
            let root = B64.decode(root_hash).ok()?.try_into().ok()?;
            Some(crate::monitor::Head { size: tree_size, root })
        }
        _ => None,
    }
}

/// Verifies a whole export against the pinned keys; the first failure names
/// its index (or the line that cannot be read). The keys the export's header
/// carries serve only where `pins` names them: a log re-signed with a key
/// planted beside the real one is reported at the first head it signed.
pub fn verify_export(text: &str, pins: &Pins) -> Result<Finding, String> {
    if pins.is_empty() {
        return Err("no pinned key: give the fingerprints of the audit service's head-signing keys".into());
    }
    let Parsed { tenant, carried, base, records, final_head } = parse(text)?;
    let keys = pins.filter(&carried);
    let finding = verify_log(&tenant, base.clone(), &records, &keys);
    let Finding::Intact { size } = finding else { return Ok(finding) };
    // The closing head must be signed and match the recomputed tree (no
    // entries cut from the end).
    let (tree_size, root_hash, timestamp_ms, key_id, signature) =
        final_head.ok_or("the export has no closing tree head")?;
    let mut tree = base;
    for r in &records {
        tree.push(super::merkle::leaf_hash(&r.entry));
    }
    let root = B64.decode(root_hash).map_err(|_| "closing head: root is not base64")?;
    let head = TreeHead {
        tenant_id: tenant,
        tree_size,
        timestamp_ms,
        root: root.clone().try_into().map_err(|_| "closing head: root is not 32 bytes")?,
    };
    let signed =
        keys.get(&key_id).is_some_and(|k| B64.decode(&signature).is_ok_and(|s| verify_signature(k, &head, &s)));
    if !signed {
        let problem = "closing tree head is not validly signed by a pinned key".into();
        return Ok(Finding::Tampered { index: size, problem });
    }
    if tree_size != size || tree.root(size).ok().map(|r| r.to_vec()) != Some(root) {
        return Ok(Finding::Tampered {
            index: size.min(tree_size),
            problem: "entries missing before the closing tree head".into(),
        });
    }
    Ok(Finding::Intact { size })
}

#[cfg(test)]
mod tests;

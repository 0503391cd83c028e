//! `guardline audit verify --file` as a user runs it.

use std::process::Command;

use aws_lc_rs::signature::Ed25519KeyPair;
use base64::Engine;
use guardline_audit::domain::canonical::Event;
use guardline_audit::domain::export::{FORMAT, Line};
use guardline_audit::domain::merkle::{Tree, leaf_hash};
use guardline_audit::domain::pin::fingerprint;
use guardline_audit::domain::sth::{HeadSigner, TreeHead};
use guardline_audit::domain::verify::Record;

fn signer(kid: &str) -> HeadSigner {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).expect("key");
    HeadSigner::from_pkcs8(kid, pkcs8.as_ref()).expect("signer")
}

/// An export of `n` entries signed by `signer`, its header carrying `carried`.
fn export(n: u64, signer: &HeadSigner, carried: &[&HeadSigner]) -> Vec<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut lines = vec![
        Line::Header {
            format: FORMAT.into(),
            tenant_id: "t1".into(),
            keys: carried.iter().map(|k| (k.kid.clone(), b64.encode(k.public_key()))).collect(),
            pruned_before: 0,
            frontier: vec![],
        }
        .to_json_line(),
    ];
    let mut tree = Tree::new();
    let mut last = None;
    for i in 0..n {
        let e = Event {
            id: format!("e{i}"),
            tenant_id: "t1".into(),
            action: "lead.update".into(),
            outcome: "allowed".into(),
            ..Default::default()
        };
        let entry = e.encode();
        tree.push(leaf_hash(&entry));
        let head = TreeHead {
            tenant_id: "t1".into(),
            tree_size: i + 1,
            timestamp_ms: 1000 + i as i64,
            root: tree.root(i + 1).expect("root"),
        };
        let r = Record {
            index: i,
            entry,
            head_timestamp_ms: head.timestamp_ms,
            head_kid: signer.kid.clone(),
            head_signature: signer.sign(&head),
        };
        lines.push(Line::entry(&r).to_json_line());
        last = Some((head, r.head_signature));
    }
    let (head, sig) = last.expect("entries");
    lines.push(
        Line::TreeHead {
            tree_size: head.tree_size,
            root_hash: b64.encode(head.root),
            timestamp_ms: head.timestamp_ms,
            key_id: signer.kid.clone(),
            signature: b64.encode(sig),
        }
        .to_json_line(),
    );
    lines
}

/// The head of the first `n` entries `export` writes, or of a log whose
/// entries say `action` instead.
fn head_of(n: u64, action: &str) -> guardline_audit::domain::monitor::Head {
    let mut tree = Tree::new();
    for i in 0..n {
        let e = Event {
            id: format!("e{i}"),
            tenant_id: "t1".into(),
            action: action.into(),
            outcome: "allowed".into(),
            ..Default::default()
        };
        tree.push(leaf_hash(&e.encode()));
    }
    guardline_audit::domain::monitor::Head { size: n, root: tree.root(n).expect("root") }
}

fn verify(lines: &[String], pins: &[&str]) -> (bool, String) {
    verify_with(lines, pins, &[])
}

fn verify_with(lines: &[String], pins: &[&str], extra: &[&std::ffi::OsStr]) -> (bool, String) {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("export.jsonl");
    std::fs::write(&file, lines.concat()).expect("write");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_guardline"));
    cmd.args(["audit", "verify", "--data-dir"]).arg(dir.path()).arg("--file").arg(&file);
    for p in pins {
        cmd.args(["--trusted-key", p]);
    }
    cmd.args(extra);
    let out = cmd.output().expect("run");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn an_intact_export_verifies_and_a_swapped_one_names_the_index() {
    let k1 = signer("k1");
    let pin = fingerprint(&k1.public_key());
    let lines = export(6, &k1, &[&k1]);
    let (ok, out) = verify(&lines, &[&pin]);
    assert!(ok, "{out}");
    assert!(out.contains("intact: 6 entries"), "{out}");

    let mut swapped = lines.clone();
    // Lines 1..=6 are entries 0..=5: swap the entries of index 2 and 4, keeping their heads.
    let mut a: serde_json::Value = serde_json::from_str(&swapped[3]).expect("json");
    let mut b: serde_json::Value = serde_json::from_str(&swapped[5]).expect("json");
    let (ea, eb) = (a["entry"].clone(), b["entry"].clone());
    a["entry"] = eb;
    b["entry"] = ea;
    swapped[3] = format!("{a}\n");
    swapped[5] = format!("{b}\n");
    let (ok, out) = verify(&swapped, &[&pin]);
    assert!(!ok, "a tampered export fails");
    assert!(out.contains("TAMPERED at index 2"), "{out}");
}

#[test]
fn only_a_pinned_key_vouches_for_an_export() {
    let (real, planted) = (signer("real"), signer("planted"));
    let pin = fingerprint(&real.public_key());
    // Rewritten and re-signed by a key the insider planted beside the real one.
    let forged = export(4, &planted, &[&real, &planted]);
    let (ok, out) = verify(&forged, &[&pin]);
    assert!(!ok, "{out}");
    assert!(out.contains("TAMPERED at index 0: signed by key planted, which is not pinned"), "{out}");
    // No pin at all (no flag, no file): refused, never taken on trust.
    let (ok, out) = verify(&export(2, &real, &[&real]), &[]);
    assert!(!ok && out.contains("--trusted-key"), "{out}");
    let (ok, out) = verify(&export(2, &real, &[&real]), &["SHA256:abc"]);
    assert!(!ok && out.contains("--trusted-key: pinned key 1"), "{out}");
}

#[test]
fn an_export_is_held_to_a_published_checkpoint() {
    use guardline_audit::domain::checkpoint;
    let k1 = signer("k1");
    let pin = fingerprint(&k1.public_key());
    let export6 = export(6, &k1, &[&k1]);
    let dir = tempfile::tempdir().expect("tmp");
    let check = |name: &str, head, by: &HeadSigner, tenant: &str| {
        let path = dir.path().join(name);
        let note = checkpoint::sign(&checkpoint::origin("guardline.local", tenant), head, by).expect("sign");
        std::fs::write(&path, note).expect("write");
        let mut flag = std::ffi::OsString::from("--checkpoint=");
        flag.push(&path);
        verify_with(&export6, &[&pin], &[&flag])
    };
    let (ok, out) = check("older", head_of(4, "lead.update"), &k1, "t1");
    assert!(ok && out.contains("published checkpoint: consistent with the head seen before (size 4)"), "{out}");
    // Published at 8, the log cut back to 6 (the export verifies on its own).
    let (ok, out) = check("longer", head_of(8, "lead.update"), &k1, "t1");
    assert!(!ok && out.contains("intact: 6") && out.contains("TRUNCATED"), "{out}");
    // Published for a log whose entries said something else: rewritten.
    let (ok, out) = check("forked", head_of(4, "lead.create"), &k1, "t1");
    assert!(!ok && out.contains("FORKED"), "{out}");
    // A checkpoint signed by an unpinned key, or of another tenant, proves nothing.
    let (ok, out) = check("stranger", head_of(4, "lead.update"), &signer("k2"), "t1");
    assert!(!ok && out.contains("not signed by a pinned key"), "{out}");
    let (ok, out) = check("elsewhere", head_of(4, "lead.update"), &k1, "t2");
    assert!(!ok && out.contains("not a checkpoint of tenant t1"), "{out}");
}

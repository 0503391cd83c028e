//! Exports verified against pinned keys only, and headers crafted to exhaust
//! the verifier.

use aws_lc_rs::signature::Ed25519KeyPair;

use super::*;
use crate::pin::fingerprint;
use crate::sth::HeadSigner;

fn signer(kid: &str) -> HeadSigner {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).expect("key");
    HeadSigner::from_pkcs8(kid, pkcs8.as_ref()).expect("signer")
}

/// An export of `n` events of tenant t1, every head signed by `s`, the
/// header carrying `carried` keys.
fn export(n: u64, s: &HeadSigner, actions: impl Fn(u64) -> String, carried: &[&HeadSigner]) -> String {
    let keys = carried.iter().map(|k| (k.kid.clone(), B64.encode(k.public_key()))).collect();
    let mut out =
        Line::Header { format: FORMAT.into(), tenant_id: "t1".into(), keys, pruned_before: 0, frontier: vec![] }
            .to_json_line();
    let (records, last) = crate::verify::fixture::signed_log(n, s, actions);
    for r in &records {
        out += &Line::entry(r).to_json_line();
    }
    let (head, sig) = last.expect("n > 0");
    out += &Line::TreeHead {
        tree_size: head.tree_size,
        root_hash: B64.encode(head.root),
        timestamp_ms: head.timestamp_ms,
        key_id: s.kid.clone(),
        signature: B64.encode(sig),
    }
    .to_json_line();
    out
}

#[test]
fn a_log_resigned_with_a_planted_key_is_named_at_its_first_head() {
    let (real, planted) = (signer("real"), signer("planted"));
    let pins = Pins::parse([fingerprint(&real.public_key())]).expect("pins");
    let genuine = export(5, &real, |_| "lead.read".into(), &[&real]);
    assert_eq!(verify_export(&genuine, &pins), Ok(Finding::Intact { size: 5 }));
    // The insider rewrites every entry and re-signs every head with a key of
    // their own, which the export's header (like the database) carries.
    let forged = export(5, &planted, |_| "lead.create".into(), &[&real, &planted]);
    let verdict = verify_export(&forged, &pins).expect("readable");
    assert_eq!(verdict, Finding::Tampered { index: 0, problem: "signed by key planted, which is not pinned".into() });
    // Without the pin, the forged export would pass: the pin is the defence.
    let naive = Pins::of([&real.public_key(), &planted.public_key()]);
    assert_eq!(verify_export(&forged, &naive), Ok(Finding::Intact { size: 5 }));
    assert!(verify_export(&genuine, &Pins::default()).expect_err("no pins").starts_with("no pinned key"));
}

#[test]
fn a_crafted_pruned_prefix_allocates_nothing_and_verifies_nothing() {
    let real = signer("real");
    let pins = Pins::parse([fingerprint(&real.public_key())]).expect("pins");
    // 2^62 pruned entries, one frontier hash: the verifier holds one hash.
    let header = Line::Header {
        format: FORMAT.into(),
        tenant_id: "t1".into(),
        keys: [("real".to_owned(), B64.encode(real.public_key()))].into(),
        pruned_before: 1 << 62,
        frontier: vec![B64.encode([7u8; 32])],
    };
    let root = B64.encode([7u8; 32]);
    let closing = Line::TreeHead {
        tree_size: 1 << 62,
        root_hash: root,
        timestamp_ms: 0,
        key_id: "real".into(),
        signature: B64.encode([0u8; 64]),
    };
    let text = header.to_json_line() + &closing.to_json_line();
    assert_eq!(
        verify_export(&text, &pins),
        Ok(Finding::Tampered {
            index: 1 << 62,
            problem: "closing tree head is not validly signed by a pinned key".into()
        })
    );
    // Every set bit of a u64 at once, and a frontier of the wrong length.
    let mut all = header.clone();
    if let Line::Header { pruned_before, frontier, .. } = &mut all {
        *pruned_before = u64::MAX;
        *frontier = vec![B64.encode([7u8; 32]); 64];
    }
    assert!(verify_export(&(all.to_json_line() + &closing.to_json_line()), &pins).is_ok());
    if let Line::Header { frontier, .. } = &mut all {
        frontier.pop();
    }
    let short = verify_export(&(all.to_json_line() + &closing.to_json_line()), &pins);
    assert_eq!(short, Err("header: the frontier does not match pruned_before".into()));
}

/// Fuzzing (seeded by `PROPTEST_RNG_SEED`, `PROPTEST_CASES` cases; failures
/// are kept in `proptest-regressions/`): verification accepts exactly what
/// an export wrote, and never panics on anything else.
mod fuzz {
    use proptest::prelude::*;

    use super::*;

    fn pins_of(s: &HeadSigner) -> Pins {
        Pins::parse([fingerprint(&s.public_key())]).expect("pins")
    }

    proptest! {
        #[test]
        fn any_changed_byte_is_refused(n in 1u64..12, at in any::<prop::sample::Index>(), flip in 1u8..=255) {
            let s = signer("k1");
            let text = export(n, &s, |i| format!("lead.update.{i}"), &[&s]);
            let pins = pins_of(&s);
            prop_assert_eq!(verify_export(&text, &pins), Ok(Finding::Intact { size: n }));
            let mut bytes = text.into_bytes();
            let i = at.index(bytes.len());
            bytes[i] ^= flip;
            let changed = String::from_utf8_lossy(&bytes);
            let verdict = verify_export(&changed, &pins);
            prop_assert!(!matches!(verdict, Ok(Finding::Intact { .. })), "byte {} changed, still {:?}: {}", i, verdict, changed);
        }

        #[test]
        fn arbitrary_text_is_refused_without_a_panic(text in ".{0,400}", lines in prop::collection::vec("\\PC{0,80}", 0..6)) {
            let s = signer("k1");
            let pins = pins_of(&s);
            let _ = verify_export(&text, &pins);
            let _ = verify_export(&lines.join("\n"), &pins);
            let _ = closing_head(&text);
        }
    }
}

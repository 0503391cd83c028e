//! Tree heads published outside the database as C2SP `tlog-checkpoint`
//! signed notes, so that standard witnesses (C2SP `tlog-witness`) could
//! cosign them and an auditor can hold the log to a head its database
//! cannot rewrite.
//!
//! ```text
//! <origin>\n<tree size>\n<base64 root>\n
//! \n
//! — <origin> <base64(key id (4 bytes) || Ed25519 signature)>\n
//! ```
//!
//! The origin is `<trust domain>/audit/<tenant>`; the key is the audit
//! service's head-signing key, named by the origin (so its note key id
//! differs per tenant). Signing and parsing go through `signed_note`
//! (Cloudflare's implementation of C2SP signed-note).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use signed_note::{Note, Signer, StandardVerifier, VerifierList};

use super::merkle::Hash;
use super::monitor::Head;
use super::sth::HeadSigner;

const ALG_ED25519: u8 = 1;

/// The origin line of a tenant's log.
pub fn origin(trust_domain: &str, tenant: &str) -> String {
    format!("{trust_domain}/audit/{tenant}")
}

/// The signed-note verifier key (`name+id+key`) of `public_key` for
/// `origin`, as a witness or a monitor is configured with it.
pub fn verifier_key(origin: &str, public_key: &[u8]) -> String {
    let key = [&[ALG_ED25519], public_key].concat();
    format!("{origin}+{:08x}+{}", signed_note::key_id(origin, &key), B64.encode(&key))
}

struct NoteSigner<'a> {
    name: &'a str,
    id: u32,
    signer: &'a HeadSigner,
}

impl Signer for NoteSigner<'_> {
    fn name(&self) -> &str {
        self.name
    }
    fn key_id(&self) -> u32 {
        self.id
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
        Ok(self.signer.sign_note_text(msg))
    }
}

/// The checkpoint of `head` for `origin`, signed by `signer`.
pub fn sign(origin: &str, head: Head, signer: &HeadSigner) -> Result<String, String> {
    let text = format!("{origin}\n{}\n{}\n", head.size, B64.encode(head.root));
    let key = [&[ALG_ED25519], signer.public_key().as_slice()].concat();
    let note_signer = NoteSigner { name: origin, id: signed_note::key_id(origin, &key), signer };
    let mut note = Note::new(text.as_bytes(), &[]).map_err(|e| e.to_string())?;
    note.add_sigs(&[&note_signer]).map_err(|e| e.to_string())?;
    String::from_utf8(note.to_bytes()).map_err(|e| e.to_string())
}

/// The head a checkpoint note states, if it is for `origin` and signed by
/// one of `public_keys` (pinned keys only); an error says why not.
pub fn open(note: &str, origin: &str, public_keys: &[&[u8]]) -> Result<Head, String> {
    let mut verifiers: Vec<Box<dyn signed_note::Verifier>> = Vec::new();
    for pk in public_keys {
        let v = StandardVerifier::new(&verifier_key(origin, pk)).map_err(|e| e.to_string())?;
        verifiers.push(Box::new(v));
    }
    let parsed = Note::from_bytes(note.as_bytes()).map_err(|e| format!("not a signed note: {e}"))?;
    parsed
        .verify(&VerifierList::new(verifiers))
        .map_err(|e| format!("not signed by a pinned key for {origin}: {e}"))?;
    let text = std::str::from_utf8(parsed.text()).map_err(|_| "not UTF-8".to_owned())?;
    let mut lines = text.lines();
    if lines.next() != Some(origin) {
        return Err(format!("a checkpoint of another log than {origin}"));
    }
    let size = lines
        .next()
        .filter(|s| !s.starts_with('0') || *s == "0")
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or("line 2: not a tree size")?;
    let root: Hash = lines
        .next()
        .and_then(|r| B64.decode(r).ok())
        .and_then(|r| r.try_into().ok())
        .ok_or("line 3: not a base64 SHA-256 root")?;
    Ok(Head { size, root })
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::signature::Ed25519KeyPair;

    use super::*;

    fn signer() -> HeadSigner {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).expect("key");
        HeadSigner::from_pkcs8("k1", pkcs8.as_ref()).expect("signer")
    }

    #[test]
    fn a_checkpoint_round_trips_and_is_a_standard_signed_note() {
        let s = signer();
        let o = origin("guardline.local", "t1");
        let head = Head { size: 42, root: [7; 32] };
        let note = sign(&o, head, &s).expect("sign");
        assert!(note.starts_with("guardline.local/audit/t1\n42\n"), "{note}");
        assert!(note.contains("\n\n\u{2014} guardline.local/audit/t1 "), "{note}");
        assert_eq!(open(&note, &o, &[&s.public_key()]), Ok(head));
        // A standard verifier, built from the published verifier key alone, accepts it.
        let v = StandardVerifier::new(&verifier_key(&o, &s.public_key())).expect("vkey");
        let parsed = Note::from_bytes(note.as_bytes()).expect("note");
        assert!(parsed.verify(&VerifierList::new(vec![Box::new(v)])).is_ok());
    }

    #[test]
    fn another_key_log_or_size_is_refused() {
        let (s, other) = (signer(), signer());
        let o = origin("guardline.local", "t1");
        let note = sign(&o, Head { size: 5, root: [1; 32] }, &s).expect("sign");
        assert!(open(&note, &o, &[&other.public_key()]).is_err(), "an unpinned key");
        assert!(open(&note, &origin("guardline.local", "t2"), &[&s.public_key()]).is_err(), "another tenant's log");
        let edited = note.replacen("\n5\n", "\n6\n", 1);
        assert!(open(&edited, &o, &[&s.public_key()]).is_err(), "an edited size");
        assert!(open("garbage", &o, &[&s.public_key()]).is_err());
    }
}

//! Signed tree heads: Ed25519 over a documented encoding of tenant, size,
//! time and root.
//!
//! ```text
//! "GLSTH1" || u32 BE len || tenant_id || u64 BE tree_size || i64 BE unix millis || root (32 bytes)
//! ```

use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

use super::merkle::Hash;

/// A tree head before or after signing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeHead {
    /// Tenant id.
    pub tenant_id: String,
    /// Number of leaves.
    pub tree_size: u64,
    /// Signing time, milliseconds since the epoch.
    pub timestamp_ms: i64,
    /// RFC 9162 root hash.
    pub root: Hash,
}

impl TreeHead {
    /// The bytes that are signed.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut out = b"GLSTH1".to_vec();
        out.extend_from_slice(&(self.tenant_id.len() as u32).to_be_bytes());
        out.extend_from_slice(self.tenant_id.as_bytes());
        out.extend_from_slice(&self.tree_size.to_be_bytes());
        out.extend_from_slice(&self.timestamp_ms.to_be_bytes());
        out.extend_from_slice(&self.root);
        out
    }
}

/// Signs tree heads with an Ed25519 key.
pub struct HeadSigner {
    /// Key id, published with every head.
    pub kid: String,
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for HeadSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeadSigner").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl HeadSigner {
    /// A signer over a PKCS#8 Ed25519 key.
    pub fn from_pkcs8(kid: &str, pkcs8: &[u8]) -> Option<Self> {
        Some(Self { kid: kid.to_owned(), pair: Ed25519KeyPair::from_pkcs8(pkcs8).ok()? })
    }

    /// The raw 32-byte public key.
    pub fn public_key(&self) -> Vec<u8> {
        self.pair.public_key().as_ref().to_vec()
    }

    /// The signature over `head`.
    pub fn sign(&self, head: &TreeHead) -> Vec<u8> {
        self.pair.sign(&head.signed_bytes()).as_ref().to_vec()
    }

    /// The signature over a checkpoint note's text (see [`crate::checkpoint`]):
    /// a message that can never be a `GLSTH1` head.
    pub(crate) fn sign_note_text(&self, text: &[u8]) -> Vec<u8> {
        self.pair.sign(text).as_ref().to_vec()
    }
}

/// Whether `signature` is a valid signature of `head` by `public_key`.
pub fn verify(public_key: &[u8], head: &TreeHead, signature: &[u8]) -> bool {
    UnparsedPublicKey::new(&ED25519, public_key).verify(&head.signed_bytes(), signature).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_sign_and_verify_and_tampering_fails() {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).expect("key");
        let s = HeadSigner::from_pkcs8("k1", pkcs8.as_ref()).expect("signer");
        let head = TreeHead { tenant_id: "t1".into(), tree_size: 7, timestamp_ms: 1, root: [9; 32] };
        let sig = s.sign(&head);
        assert!(verify(&s.public_key(), &head, &sig));
        assert!(!verify(&s.public_key(), &TreeHead { tree_size: 8, ..head.clone() }, &sig));
        assert!(!verify(&s.public_key(), &TreeHead { tenant_id: "t2".into(), ..head }, &sig));
    }
}

//! AES-256-GCM with associated data that binds a ciphertext to where it
//! belongs (tenant, record, field, version), so a ciphertext moved to another
//! record or field fails to decrypt.
//!
//! Sealed format: 12-byte random nonce || ciphertext || 16-byte tag.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::provider::SecretKey;

/// Where a ciphertext belongs. Encoded length-prefixed, so no two different
/// bindings share an encoding.
#[derive(Clone, Copy, Debug)]
pub struct Binding<'a> {
    /// Purpose tag, e.g. `field`, `record-key`, `keyring`.
    pub kind: &'a str,
    /// Tenant id.
    pub tenant: &'a str,
    /// Record id (lead id, recording id...), or the key id for key wrapping.
    pub record: &'a str,
    /// Field name, or empty.
    pub field: &'a str,
    /// Record or key version.
    pub version: u64,
}

impl Binding<'_> {
    fn encode(&self) -> Vec<u8> {
        let mut out = b"guardline/aad/v1".to_vec();
        for part in [self.kind, self.tenant, self.record, self.field] {
            out.extend_from_slice(&(part.len() as u32).to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
        out.extend_from_slice(&self.version.to_be_bytes());
        out
    }
}

fn key(k: &SecretKey) -> Result<LessSafeKey> {
    Ok(LessSafeKey::new(UnboundKey::new(&AES_256_GCM, k.expose()).map_err(|_| Error::Crypto("aes key".into()))?))
}

/// Encrypts `plaintext` under `k`, bound to `binding`.
pub fn seal(k: &SecretKey, binding: &Binding<'_>, plaintext: &[u8]) -> Result<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| Error::Crypto("random nonce".into()))?;
    let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + AES_256_GCM.tag_len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let mut body = out.split_off(NONCE_LEN);
    key(k)?
        .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(binding.encode()), &mut body)
        .map_err(|_| Error::Crypto("seal".into()))?;
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decrypts what [`seal`] produced with the same key and binding.
pub fn open(k: &SecretKey, binding: &Binding<'_>, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    if sealed.len() < NONCE_LEN + AES_256_GCM.tag_len() {
        return Err(Error::Decrypt);
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| Error::Decrypt)?;
    let mut buf = Zeroizing::new(body.to_vec());
    let len = key(k)?.open_in_place(nonce, Aad::from(binding.encode()), &mut buf).map_err(|_| Error::Decrypt)?.len();
    buf.truncate(len);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b<'a>(record: &'a str, field: &'a str) -> Binding<'a> {
        Binding { kind: "field", tenant: "t1", record, field, version: 1 }
    }

    #[test]
    fn round_trip() {
        let k = SecretKey::generate().expect("key");
        let sealed = seal(&k, &b("lead-1", "name"), b"Zhang San").expect("seal");
        assert_eq!(&open(&k, &b("lead-1", "name"), &sealed).expect("open")[..], b"Zhang San");
    }

    #[test]
    fn a_ciphertext_moved_elsewhere_fails() {
        let k = SecretKey::generate().expect("key");
        let sealed = seal(&k, &b("lead-1", "name"), b"Zhang San").expect("seal");
        assert!(matches!(open(&k, &b("lead-2", "name"), &sealed), Err(Error::Decrypt)), "other record");
        assert!(matches!(open(&k, &b("lead-1", "notes"), &sealed), Err(Error::Decrypt)), "other field");
        let other_tenant = Binding { tenant: "t2", ..b("lead-1", "name") };
        assert!(matches!(open(&k, &other_tenant, &sealed), Err(Error::Decrypt)), "other tenant");
        let other_version = Binding { version: 2, ..b("lead-1", "name") };
        assert!(matches!(open(&k, &other_version, &sealed), Err(Error::Decrypt)), "other version");
    }

    #[test]
    fn tampering_and_wrong_keys_fail() {
        let k = SecretKey::generate().expect("key");
        let mut sealed = seal(&k, &b("r", "f"), b"secret").expect("seal");
        let other = SecretKey::generate().expect("key");
        assert!(matches!(open(&other, &b("r", "f"), &sealed), Err(Error::Decrypt)));
        sealed[14] ^= 1;
        assert!(matches!(open(&k, &b("r", "f"), &sealed), Err(Error::Decrypt)));
        assert!(matches!(open(&k, &b("r", "f"), &sealed[..10]), Err(Error::Decrypt)));
    }

    #[test]
    fn bindings_are_unambiguous() {
        let a = Binding { kind: "field", tenant: "t1", record: "ab", field: "c", version: 1 }.encode();
        let c = Binding { kind: "field", tenant: "t1", record: "a", field: "bc", version: 1 }.encode();
        assert_ne!(a, c);
    }
}

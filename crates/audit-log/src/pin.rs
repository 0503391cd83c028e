//! Pinned head-signing keys. A verifier trusts a tree head only when the key
//! that signed it is pinned: its fingerprint was handed to the verifier out
//! of band (a flag, a file, the chart's values), never read from the data it
//! checks. An export or a database can carry any key; only a pin makes one
//! count.
//!
//! A fingerprint is `SHA256:` followed by the lowercase hex SHA-256 of the
//! raw 32-byte Ed25519 public key.

use std::collections::{HashMap, HashSet};

/// Head-signing public keys by key id.
pub type Keys = HashMap<String, Vec<u8>>;

const PREFIX: &str = "SHA256:";

/// The fingerprint of a raw Ed25519 public key.
pub fn fingerprint(public_key: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, public_key);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("{PREFIX}{hex}")
}

/// The fingerprints a verifier trusts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pins(HashSet<String>);

impl Pins {
    /// Pins from fingerprints; the error names the first malformed one by
    /// its position.
    pub fn parse<S: AsRef<str>>(fingerprints: impl IntoIterator<Item = S>) -> Result<Self, String> {
        let mut out = HashSet::new();
        for (i, f) in fingerprints.into_iter().enumerate() {
            let f = f.as_ref().trim();
            let hex = f.strip_prefix(PREFIX).unwrap_or_default();
            if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
                return Err(format!("pinned key {}: not SHA256: and 64 lowercase hex digits", i + 1));
            }
            out.insert(f.to_owned());
        }
        Ok(Self(out))
    }

    /// Pins from a file's text: one fingerprint a line; blank lines and
    /// lines starting with `#` are skipped.
    pub fn from_text(text: &str) -> Result<Self, String> {
        Self::parse(text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')))
    }

    /// The file text of these pins, one a line, sorted.
    pub fn to_text(&self) -> String {
        let mut lines: Vec<&String> = self.0.iter().collect();
        lines.sort();
        lines.into_iter().map(|l| format!("{l}\n")).collect()
    }

    /// Whether nothing is pinned.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `public_key` is pinned.
    pub fn trusts(&self, public_key: &[u8]) -> bool {
        self.0.contains(&fingerprint(public_key))
    }

    /// The keys of `keys` that are pinned.
    pub fn filter(&self, keys: &Keys) -> Keys {
        keys.iter().filter(|(_, k)| self.trusts(k)).map(|(id, k)| (id.clone(), k.clone())).collect()
    }

    /// Pins of exactly these keys.
    pub fn of<'a>(keys: impl IntoIterator<Item = &'a Vec<u8>>) -> Self {
        Self(keys.into_iter().map(|k| fingerprint(k)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pinned_keys_pass_the_filter() {
        let (a, b) = (vec![1u8; 32], vec![2u8; 32]);
        let pins = Pins::parse([fingerprint(&a)]).expect("pins");
        let keys: Keys = [("ka".to_owned(), a.clone()), ("kb".to_owned(), b.clone())].into();
        assert_eq!(pins.filter(&keys).keys().collect::<Vec<_>>(), vec!["ka"]);
        assert!(pins.trusts(&a) && !pins.trusts(&b));
        assert_eq!(Pins::from_text(&format!("# audit\n\n{}", pins.to_text())).expect("text"), pins);
    }

    #[test]
    fn malformed_fingerprints_are_named() {
        assert_eq!(
            Pins::parse(["SHA256:00"]).expect_err("short"),
            "pinned key 1: not SHA256: and 64 lowercase hex digits"
        );
        let upper = format!("SHA256:{}", "A".repeat(64));
        assert!(Pins::parse([fingerprint(&[0; 32]), upper]).expect_err("upper case").starts_with("pinned key 2"));
        assert!(Pins::parse([fingerprint(&[0; 32]).replace("SHA256:", "MD5:")]).is_err());
    }
}

//! The `KeyProvider` boundary: where tenant keys live (Vault transit or the
//! local keyring) and the operations envelope encryption needs of them.
//!
//! A tenant key never leaves its provider. It wraps tenant data keys; those
//! wrap record keys; record keys encrypt fields. The provider is therefore
//! called once per tenant data key, never once per record.

use std::fmt;

use async_trait::async_trait;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::{Error, Result};

/// A 256-bit symmetric key in memory, wiped when dropped.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretKey([u8; 32]);

impl SecretKey {
    /// Fresh random key material.
    pub fn generate() -> Result<Self> {
        let mut k = [0u8; 32];
        aws_lc_rs::rand::fill(&mut k).map_err(|_| Error::Crypto("random generation failed".into()))?;
        Ok(Self(k))
    }

    /// Takes exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        let k: [u8; 32] = bytes.try_into().map_err(|_| Error::Crypto("key must be 32 bytes".into()))?;
        Ok(Self(k))
    }

    /// The key bytes.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

/// A data key as wrapped by a tenant key: opaque text, safe to store.
/// Vault's form is `vault:v<N>:<base64>`, the keyring's `gl:v<N>:<base64>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrappedKey(pub String);

impl WrappedKey {
    /// The tenant-key version that wrapped it, read from the `:v<N>:` prefix.
    pub fn version(&self) -> Option<u64> {
        let mut parts = self.0.splitn(3, ':');
        let _scheme = parts.next()?;
        parts.next()?.strip_prefix('v')?.parse().ok()
    }
}

/// The versions of a tenant key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyVersions {
    /// Version used for new wraps.
    pub latest: u64,
    /// Oldest version that may still unwrap.
    pub min_decryption: u64,
    /// When the latest version was made (Unix seconds), where the store says.
    pub latest_created: Option<u64>,
}

/// Tenant ids are used in key names and paths: keep them to a safe alphabet.
pub fn check_tenant(tenant: &str) -> Result<()> {
    let ok = !tenant.is_empty()
        && tenant.len() <= 64
        && tenant.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok { Ok(()) } else { Err(Error::InvalidTenant) }
}

/// Where tenant keys live. Implementations: [`crate::vault::VaultProvider`]
/// and [`crate::local::LocalKeyring`]; one test suite runs against both.
#[async_trait]
pub trait KeyProvider: Send + Sync + fmt::Debug + 'static {
    /// Creates the tenant key if it does not exist yet. Idempotent.
    async fn ensure_tenant_key(&self, tenant: &str) -> Result<()>;
    /// A fresh data key, in clear and wrapped by the tenant key's latest version.
    async fn generate_data_key(&self, tenant: &str) -> Result<(SecretKey, WrappedKey)>;
    /// Unwraps a data key.
    async fn unwrap(&self, tenant: &str, wrapped: &WrappedKey) -> Result<SecretKey>;
    /// Adds a new tenant-key version; returns it. Old versions still unwrap.
    async fn rotate(&self, tenant: &str) -> Result<u64>;
    /// Re-wraps under the latest version without exposing the data key.
    async fn rewrap(&self, tenant: &str, wrapped: &WrappedKey) -> Result<WrappedKey>;
    /// The tenant key's versions.
    async fn versions(&self, tenant: &str) -> Result<KeyVersions>;
    /// Makes versions below `version` unusable for unwrapping.
    async fn set_min_decryption_version(&self, tenant: &str, version: u64) -> Result<()>;
    /// Deletes the versions below `min_available` for good; at most up to
    /// the minimum decryption version.
    async fn trim(&self, tenant: &str, min_available: u64) -> Result<()>;
}

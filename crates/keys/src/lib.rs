//! Keys for envelope encryption: the [`KeyProvider`] boundary with its two
//! implementations (Vault transit through vaultrs, and the local keyring),
//! AES-256-GCM with binding associated data, and the [`Envelope`] that turns
//! tenant keys into data keys and record keys.
//!
//! Architecture invariant: key material is never logged, formatted or put in
//! an error; `SecretKey` zeroizes on drop and prints as `SecretKey(..)`.

pub mod aead;
pub mod args;
pub mod envelope;
pub mod error;
pub mod local;
pub mod provider;
pub mod store;
pub mod vault;

pub use envelope::{Envelope, PLATFORM, SealedRecordKey, open_field, seal_field};
pub use error::{Error, Result};
pub use provider::{KeyProvider, KeyVersions, SecretKey, WrappedKey};

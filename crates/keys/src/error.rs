//! Errors of key management. No key material and no plaintext ever appears
//! in a message.

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong with keys and envelope encryption.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The tenant id is not usable as a key name.
    #[error("invalid tenant id: 1-64 characters of A-Z, a-z, 0-9, - and _")]
    InvalidTenant,
    /// The tenant has no key in the provider.
    #[error("no key for the tenant")]
    UnknownTenant,
    /// Authentication failed: wrong key, wrong associated data, or tampering.
    #[error("decryption failed")]
    Decrypt,
    /// The key version needed has been retired (below min_decryption_version).
    #[error("key version {0} is no longer allowed to decrypt")]
    VersionRetired(u64),
    /// A cryptographic primitive failed.
    #[error("crypto: {0}")]
    Crypto(String),
    /// The key provider could not be reached or refused.
    #[error("key provider unavailable: {0}")]
    Unavailable(String),
    /// Bad configuration; names the flag.
    #[error("configuration {field}: {reason}")]
    Config {
        /// The flag.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Keyring file or database trouble.
    #[error("storage: {0}")]
    Storage(String),
    /// The database could not be reached (retryable).
    #[error("the database is unreachable; retry")]
    DatabaseUnreachable,
}

impl From<sea_orm::DbErr> for Error {
    fn from(e: sea_orm::DbErr) -> Self {
        if guardline_runtime::error::database_unreachable(&e) {
            return Self::DatabaseUnreachable;
        }
        Self::Storage(e.to_string())
    }
}

impl From<Error> for guardline_runtime::Error {
    fn from(e: Error) -> Self {
        use guardline_runtime::Error as R;
        match e {
            Error::InvalidTenant => R::invalid("tenant_id", "1-64 characters of A-Z, a-z, 0-9, - and _"),
            Error::UnknownTenant => R::NotFound,
            Error::Decrypt | Error::VersionRetired(_) => R::DataLoss("stored data could not be decrypted".into()),
            Error::Unavailable(m) => R::Unavailable(format!("key provider: {m}")),
            Error::DatabaseUnreachable => R::Unavailable("the database is unreachable; retry".into()),
            other => R::Internal(other.to_string()),
        }
    }
}

//! Audit's errors: what it finds broken in its own stored state as one
//! typed enum, [`AuditError`], and everything shared as the runtime's
//! [`Error`], which maps both to gRPC statuses once. A finding reaches the
//! client with a `google.rpc.ErrorInfo` naming its variant.

use guardline_runtime::error::Refusal;
pub use guardline_runtime::{Error, Result};
use tonic::Code;

/// What audit finds broken in its stored state.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A stored entry does not decode.
    #[error("audit entry {index} is corrupt")]
    EntryCorrupt {
        /// The entry's index in the tenant's log.
        index: i64,
    },
    /// A stored leaf hash is not 32 bytes.
    #[error("a stored leaf hash has the wrong length")]
    LeafHashCorrupt,
    /// The frontier kept after a prune does not fit the index it claims.
    #[error("the pruned frontier does not match its index")]
    FrontierMismatch,
    /// Leaf hashes a tile needs are neither stored nor kept after a prune.
    #[error("the leaf hashes from {from} to {to} are missing")]
    LeavesMissing {
        /// First index wanted.
        from: u64,
        /// End of the range (exclusive).
        to: u64,
    },
    /// A webhook's sealed secret does not decode.
    #[error("a webhook secret does not open")]
    WebhookSecretUnreadable,
    /// A stored head-signing public key is not its sealed private key's (or
    /// the private key does not open): a key row was planted or edited.
    #[error("audit signing key {kid} does not match its sealed private key: refusing to start")]
    SigningKeyMismatch {
        /// The key's id.
        kid: String,
    },
}

impl Refusal for AuditError {
    fn code(&self) -> Code {
        Code::DataLoss
    }

    fn reason(&self) -> &'static str {
        match self {
            Self::EntryCorrupt { .. } => "AUDIT_ENTRY_CORRUPT",
            Self::LeafHashCorrupt => "AUDIT_LEAF_HASH_CORRUPT",
            Self::FrontierMismatch => "AUDIT_FRONTIER_MISMATCH",
            Self::LeavesMissing { .. } => "AUDIT_LEAVES_MISSING",
            Self::WebhookSecretUnreadable => "WEBHOOK_SECRET_UNREADABLE",
            Self::SigningKeyMismatch { .. } => "AUDIT_SIGNING_KEY_MISMATCH",
        }
    }

    fn domain(&self) -> &'static str {
        "audit.guardline.io"
    }

    fn metadata(&self) -> Vec<(&'static str, String)> {
        match self {
            Self::EntryCorrupt { index } => vec![("index", index.to_string())],
            _ => Vec::new(),
        }
    }
}

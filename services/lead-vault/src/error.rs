//! The lead vault's errors: its own refusals as one typed enum,
//! [`VaultError`], and everything shared as the runtime's [`Error`], which
//! maps both to gRPC statuses once. A refusal reaches the client with a
//! `google.rpc.ErrorInfo` naming its variant; no message carries a value.

use guardline_runtime::error::Refusal;
pub use guardline_runtime::{Error, Result};
use tonic::Code;

/// What the lead vault refuses on its own rules, or finds broken.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// A stored lead's MAC over its metadata does not verify: someone
    /// changed the row outside the service.
    #[error("the lead failed its integrity check")]
    IntegrityFailed,
    /// A stored field does not open under its record key, or does not
    /// decode once opened (a ciphertext moved between rows or fields).
    #[error("the stored {field} of a lead does not open or decode")]
    FieldUnreadable {
        /// The field, e.g. `phones`.
        field: &'static str,
    },
    /// The user's reveals of today are used up.
    #[error("daily reveal quota used up")]
    RevealQuotaUsedUp,
    /// This export would pass the tenant's daily export quota.
    #[error("the tenant's daily export quota of {quota} leads would be exceeded")]
    ExportQuotaExceeded {
        /// Leads a tenant may export a day.
        quota: u64,
    },
    /// The erasure case was already executed.
    #[error("the case was already executed")]
    CaseAlreadyExecuted,
    /// The lead changed since the caller read it (or during the update).
    #[error("the lead changed since it was read; read it again")]
    LeadChanged,
    /// The tenant's numbers-looked-up-per-second budget is used up.
    #[error("the tenant's number lookup budget is used up; retry after {retry_after_ms} ms")]
    LookupBudgetExceeded {
        /// When the numbers asked for are there again.
        retry_after_ms: u64,
    },
}

impl Refusal for VaultError {
    fn code(&self) -> Code {
        match self {
            Self::IntegrityFailed | Self::FieldUnreadable { .. } => Code::DataLoss,
            Self::RevealQuotaUsedUp | Self::ExportQuotaExceeded { .. } | Self::LookupBudgetExceeded { .. } => {
                Code::ResourceExhausted
            }
            Self::CaseAlreadyExecuted => Code::FailedPrecondition,
            Self::LeadChanged => Code::Aborted,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Self::IntegrityFailed => "LEAD_INTEGRITY_FAILED",
            Self::FieldUnreadable { .. } => "LEAD_FIELD_UNREADABLE",
            Self::RevealQuotaUsedUp => "REVEAL_QUOTA_USED_UP",
            Self::ExportQuotaExceeded { .. } => "EXPORT_QUOTA_EXCEEDED",
            Self::CaseAlreadyExecuted => "ERASURE_ALREADY_EXECUTED",
            Self::LeadChanged => "LEAD_CHANGED",
            Self::LookupBudgetExceeded { .. } => "LOOKUP_BUDGET_EXCEEDED",
        }
    }

    fn domain(&self) -> &'static str {
        "lead-vault.guardline.io"
    }

    fn metadata(&self) -> Vec<(&'static str, String)> {
        match self {
            Self::FieldUnreadable { field } => vec![("field", (*field).into())],
            Self::ExportQuotaExceeded { quota } => vec![("quota", quota.to_string())],
            Self::LookupBudgetExceeded { retry_after_ms } => vec![("retry_after_ms", retry_after_ms.to_string())],
            _ => Vec::new(),
        }
    }
}

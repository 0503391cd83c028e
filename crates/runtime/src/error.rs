//! The one mapping from Guardline errors to gRPC statuses.
//!
//! A caller's own mistake gets a precise status (INVALID_ARGUMENT naming the
//! field, NOT_FOUND, PERMISSION_DENIED...). A fault of ours gets a generic
//! INTERNAL; its details go to the log only. Messages are built by our code
//! from field names and rule names, never from submitted values, so no PII
//! can reach a client or a log through an error.
//!
//! A service's own refusals (a used decision, a locked account, a tampered
//! record) are a typed `thiserror` enum in that service's crate that
//! implements [`Refusal`]; it becomes [`Error::Refused`] by `?`, and reaches
//! the client with its code, its message and a `google.rpc.ErrorInfo`
//! naming the variant (`reason`) and the service (`domain`), which clients
//! and tests match on instead of the text.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

pub use tonic_types::{ErrorInfo, FieldViolation};

/// A service's own refusal, as a variant of that service's error enum.
pub trait Refusal: std::error::Error + Send + Sync + 'static {
    /// The gRPC code (never INTERNAL: a fault of ours is not a refusal).
    fn code(&self) -> Code;
    /// The variant's stable name in UPPER_SNAKE_CASE (`ErrorInfo.reason`).
    fn reason(&self) -> &'static str;
    /// The service that refuses (`ErrorInfo.domain`), e.g. `dialer-policy.guardline.io`.
    fn domain(&self) -> &'static str;
    /// Facts a client may act on (a rule's name, a limit); never personal data.
    fn metadata(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
}

impl<R: Refusal> From<R> for Error {
    fn from(refusal: R) -> Self {
        Self::Refused(Box::new(refusal))
    }
}

/// Result with the runtime's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors every service shares. Service crates wrap it in their own enum.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller sent a value that is not acceptable; `field` names it.
    #[error("invalid {field}: {reason}")]
    InvalidArgument {
        /// Dotted path of the field, e.g. `lead.phones[0]`.
        field: String,
        /// Why, without repeating the value.
        reason: String,
    },
    /// The resource does not exist, or is outside the caller's scope.
    #[error("not found")]
    NotFound,
    /// No valid credentials were presented.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// The caller is known but not allowed.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// A quota or capacity is used up.
    #[error("resource exhausted: {0}")]
    ResourceExhausted(String),
    /// The system is not in a state that allows the operation.
    #[error("failed precondition: {0}")]
    FailedPrecondition(String),
    /// A concurrent change won; the caller may retry.
    #[error("aborted: {0}")]
    Aborted(String),
    /// A dependency (audit, Vault, database) cannot be reached right now.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Stored data failed authentication or is corrupt.
    #[error("data loss: {0}")]
    DataLoss(String),
    /// Bad configuration at start-up; `field` names the flag.
    #[error("configuration {field}: {reason}")]
    Config {
        /// Flag or setting.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// TLS material could not be loaded.
    #[error("tls: {0}")]
    Tls(String),
    /// The database failed.
    #[error("storage: {0}")]
    Storage(String),
    /// An I/O operation failed.
    #[error("io: {0}")]
    Io(String),
    /// Anything else that is our fault.
    #[error("internal: {0}")]
    Internal(String),
    /// A service's own refusal (see [`Refusal`]).
    #[error("{0}")]
    Refused(Box<dyn Refusal>),
}

impl Error {
    /// A caller's mistake in `field`.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidArgument { field: field.into(), reason: reason.into() }
    }

    /// The same error for a request that nests the checked message under
    /// `parent`: a field violation's path gains the prefix `parent.`.
    pub fn within(self, parent: &str) -> Self {
        match self {
            Self::InvalidArgument { field, reason } => {
                Self::InvalidArgument { field: format!("{parent}.{field}"), reason }
            }
            other => other,
        }
    }

    /// A configuration mistake in `field`.
    pub fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Config { field: field.into(), reason: reason.into() }
    }

    /// TLS material problem.
    pub fn tls(reason: impl Into<String>) -> Self {
        Self::Tls(reason.into())
    }

    /// The service's refusal of type `R` this error carries, if any.
    pub fn refusal<R: Refusal>(&self) -> Option<&R> {
        match self {
            Self::Refused(r) => (r.as_ref() as &dyn std::error::Error).downcast_ref::<R>(),
            _ => None,
        }
    }

    /// The gRPC code this error maps to.
    pub fn code(&self) -> Code {
        match self {
            Self::Refused(r) => r.code(),
            Self::InvalidArgument { .. } => Code::InvalidArgument,
            Self::NotFound => Code::NotFound,
            Self::Unauthenticated(_) => Code::Unauthenticated,
            Self::PermissionDenied(_) => Code::PermissionDenied,
            Self::ResourceExhausted(_) => Code::ResourceExhausted,
            Self::FailedPrecondition(_) => Code::FailedPrecondition,
            Self::Aborted(_) => Code::Aborted,
            Self::Unavailable(_) => Code::Unavailable,
            Self::DataLoss(_) => Code::DataLoss,
            Self::Config { .. } | Self::Tls(_) | Self::Storage(_) | Self::Io(_) | Self::Internal(_) => Code::Internal,
        }
    }
}

impl From<sea_orm::DbErr> for Error {
    fn from(e: sea_orm::DbErr) -> Self {
        if database_unreachable(&e) {
            // Retryable: the pool opens new connections on the next call
            // (after a restart, or a failover behind one endpoint).
            tracing::warn!(error = %e, "the database is unreachable");
            return Self::Unavailable("the database is unreachable; retry".into());
        }
        Self::Storage(e.to_string())
    }
}

/// Whether `e` says the database could not be reached or is not the
/// primary any more, rather than that the statement was wrong: the pool
/// could not open a connection or lost one, or PostgreSQL answered with a
/// connection exception (class 08), an operator intervention (57P01–57P03:
/// shut down, crashed, starting) or a read-only transaction (25006: a
/// demoted primary behind the endpoint).
pub fn database_unreachable(e: &sea_orm::DbErr) -> bool {
    use sea_orm::{DbErr, RuntimeErr};
    let sqlx = match e {
        // Opening a connection failed, whatever the reason.
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => return true,
        DbErr::Exec(RuntimeErr::SqlxError(x)) | DbErr::Query(RuntimeErr::SqlxError(x)) => x,
        _ => return false,
    };
    match sqlx.as_ref() {
        sea_orm::sqlx::Error::Io(_)
        | sea_orm::sqlx::Error::Tls(_)
        | sea_orm::sqlx::Error::PoolTimedOut
        | sea_orm::sqlx::Error::PoolClosed
        | sea_orm::sqlx::Error::WorkerCrashed => true,
        sea_orm::sqlx::Error::Database(d) => {
            d.code().is_some_and(|c| c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03" | "25006"))
        }
        _ => false,
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e.to_string())
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        let code = error.code();
        match error {
            Error::InvalidArgument { field, reason } => {
                // The standard google.rpc.BadRequest, which any gRPC client decodes.
                let details = ErrorDetails::with_bad_request_violation(field.clone(), reason.clone());
                Status::with_error_details(code, format!("invalid {field}: {reason}"), details)
            }
            Error::NotFound => Status::not_found("not found"),
            Error::Refused(r) => {
                let metadata: std::collections::HashMap<String, String> =
                    r.metadata().into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
                let details = ErrorDetails::with_error_info(r.reason(), r.domain(), metadata);
                Status::with_error_details(code, r.to_string(), details)
            }
            Error::Unauthenticated(m)
            | Error::PermissionDenied(m)
            | Error::ResourceExhausted(m)
            | Error::FailedPrecondition(m)
            | Error::Aborted(m)
            | Error::Unavailable(m)
            | Error::DataLoss(m) => Status::new(code, m),
            internal => {
                // Details of our own faults stay in the log.
                tracing::error!(error = %internal, "internal error");
                Status::internal("internal error")
            }
        }
    }
}

/// Reads a refusal's `google.rpc.ErrorInfo` back out of a status (for
/// clients and tests): its `reason` names the variant.
pub fn error_info(status: &Status) -> Option<ErrorInfo> {
    status.get_details_error_info()
}

/// The `reason` of a status's `ErrorInfo`, or "" when it carries none.
pub fn reason(status: &Status) -> String {
    error_info(status).map(|i| i.reason).unwrap_or_default()
}

/// Reads the field violations back out of a status's standard
/// `google.rpc.BadRequest` detail (for clients and tests).
pub fn field_violations(status: &Status) -> Vec<FieldViolation> {
    status.get_details_bad_request().map(|b| b.field_violations).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_names_the_field() {
        let status = Status::from(Error::invalid("lead.phones[0]", "is not a phone number"));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("lead.phones[0]"));
        let v = field_violations(&status);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].field, "lead.phones[0]");
    }

    #[test]
    fn our_faults_are_generic() {
        let status = Status::from(Error::Storage("connection to 10.0.0.7 refused, table leads".into()));
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "internal error");
        assert!(status.details().is_empty());
    }

    #[derive(Debug, thiserror::Error)]
    enum Planted {
        #[error("decision d-1 was already used")]
        Used,
    }

    impl Refusal for Planted {
        fn code(&self) -> Code {
            Code::FailedPrecondition
        }
        fn reason(&self) -> &'static str {
            "DECISION_USED"
        }
        fn domain(&self) -> &'static str {
            "test.guardline.io"
        }
        fn metadata(&self) -> Vec<(&'static str, String)> {
            vec![("decision", "d-1".into())]
        }
    }

    #[test]
    fn a_refusal_keeps_its_type_and_reaches_the_client_with_its_reason() {
        let error = Error::from(Planted::Used);
        assert!(matches!(error.refusal::<Planted>(), Some(Planted::Used)));
        assert!(Error::NotFound.refusal::<Planted>().is_none());
        let status = Status::from(error);
        assert_eq!((status.code(), status.message()), (Code::FailedPrecondition, "decision d-1 was already used"));
        let info = error_info(&status).expect("ErrorInfo");
        assert_eq!((info.reason.as_str(), info.domain.as_str()), ("DECISION_USED", "test.guardline.io"));
        assert_eq!(info.metadata["decision"], "d-1");
        assert_eq!(reason(&Status::from(Error::NotFound)), "");
    }

    #[test]
    fn caller_facing_codes() {
        assert_eq!(Status::from(Error::NotFound).code(), Code::NotFound);
        assert_eq!(Status::from(Error::PermissionDenied("x".into())).code(), Code::PermissionDenied);
        assert_eq!(Status::from(Error::Unavailable("audit".into())).code(), Code::Unavailable);
        assert_eq!(Status::from(Error::DataLoss("chunk".into())).code(), Code::DataLoss);
    }
}

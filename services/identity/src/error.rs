//! Identity's errors: its own refusals as one typed enum, [`IdentityError`],
//! and everything shared as the runtime's [`Error`], which maps both to
//! gRPC statuses once. A refusal reaches the client with a
//! `google.rpc.ErrorInfo` naming its variant. Messages never contain
//! passwords, codes or tokens, and never say which credential was wrong.

use guardline_runtime::error::Refusal;
pub use guardline_runtime::{Error, Result};
use tonic::Code;

/// What identity refuses on its own rules.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Neither a bearer token nor a login and password came.
    #[error("a bearer token or credentials are required")]
    CredentialsRequired,
    /// Unknown login, wrong password, wrong code or disabled account: one
    /// answer, so that a caller learns nothing about which.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The account is locked after repeated failures.
    #[error("account locked after repeated failures; try again later")]
    AccountLocked,
    /// The source address is locked after repeated failures.
    #[error("too many failed logins from this address; try again later")]
    SourceLocked,
    /// The tenant's risk policy refuses this login.
    #[error("login refused by the tenant's risk policy")]
    RiskDenied,
    /// The risk policy asks for a second factor the user has not enrolled.
    #[error("the risk policy requires a second factor and none is enrolled")]
    RiskNeedsSecondFactor,
    /// The user's role requires a second factor, not yet enrolled.
    #[error("this role requires a second factor: enroll one with EnrollTotp")]
    EnrollSecondFactor,
    /// A second factor is enrolled and no code came.
    #[error("a second factor (TOTP code) is required")]
    SecondFactorRequired,
    /// Credentials alone came to enroll a second factor over an existing one.
    #[error(
        "a second factor is enrolled: replace it with a bearer token and a current code, or ask an administrator to reset it"
    )]
    SecondFactorEnrolled,
    /// A token holder replaces an enrolled second factor without a current code.
    #[error("a current code of the enrolled authenticator is required to replace it")]
    CurrentCodeRequired,
    /// A confirmation came without an enrolment in progress.
    #[error("no second factor enrolment in progress")]
    NoEnrollment,
    /// The refresh token is unknown or does not match.
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    /// A rotated refresh token came back: its session is revoked.
    #[error("refresh token reuse detected; the session was revoked")]
    RefreshTokenReused,
    /// The refresh token is past its lifetime.
    #[error("refresh token expired")]
    RefreshTokenExpired,
}

impl Refusal for IdentityError {
    fn code(&self) -> Code {
        match self {
            Self::AccountLocked | Self::SourceLocked => Code::ResourceExhausted,
            Self::RiskDenied | Self::RiskNeedsSecondFactor => Code::PermissionDenied,
            Self::EnrollSecondFactor | Self::NoEnrollment | Self::SecondFactorEnrolled | Self::CurrentCodeRequired => {
                Code::FailedPrecondition
            }
            _ => Code::Unauthenticated,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Self::CredentialsRequired => "CREDENTIALS_REQUIRED",
            Self::InvalidCredentials => "INVALID_CREDENTIALS",
            Self::AccountLocked => "ACCOUNT_LOCKED",
            Self::SourceLocked => "SOURCE_LOCKED",
            Self::RiskDenied => "RISK_DENIED",
            Self::RiskNeedsSecondFactor => "RISK_NEEDS_SECOND_FACTOR",
            Self::EnrollSecondFactor => "ENROLL_SECOND_FACTOR",
            Self::SecondFactorRequired => "SECOND_FACTOR_REQUIRED",
            Self::NoEnrollment => "NO_ENROLLMENT_IN_PROGRESS",
            Self::SecondFactorEnrolled => "SECOND_FACTOR_ENROLLED",
            Self::CurrentCodeRequired => "CURRENT_CODE_REQUIRED",
            Self::InvalidRefreshToken => "INVALID_REFRESH_TOKEN",
            Self::RefreshTokenReused => "REFRESH_TOKEN_REUSED",
            Self::RefreshTokenExpired => "REFRESH_TOKEN_EXPIRED",
        }
    }

    fn domain(&self) -> &'static str {
        "identity.guardline.io"
    }
}

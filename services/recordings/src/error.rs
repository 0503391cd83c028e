//! Recordings' errors: its own findings as one typed enum,
//! [`RecordingError`], and everything shared as the runtime's [`Error`],
//! which maps both to gRPC statuses once. A finding reaches the client with
//! a `google.rpc.ErrorInfo` naming its variant.

use guardline_runtime::error::Refusal;
pub use guardline_runtime::{Error, Result};
use tonic::Code;

/// What recordings finds broken in stored data.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    /// The recording's key does not open under the tenant's keys, or its
    /// stored nonce prefix is malformed.
    #[error("recording key does not open")]
    KeyUnreadable,
    /// A chunk failed authentication, the object's length differs from the
    /// recorded size, or the plaintext's hash differs (the details go to
    /// the log and to a `recording.tamper_detected` audit event).
    #[error("the recording failed its integrity check")]
    Tampered,
}

impl Refusal for RecordingError {
    fn code(&self) -> Code {
        Code::DataLoss
    }

    fn reason(&self) -> &'static str {
        match self {
            Self::KeyUnreadable => "RECORDING_KEY_UNREADABLE",
            Self::Tampered => "RECORDING_TAMPERED",
        }
    }

    fn domain(&self) -> &'static str {
        "recordings.guardline.io"
    }
}

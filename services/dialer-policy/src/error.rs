//! The dialer's errors map through the runtime's one error-to-status mapping.

pub use guardline_runtime::{Error, Result};

//! Identity's errors and their one mapping to gRPC statuses (through the
//! runtime's). Messages never contain passwords, codes or tokens.

pub use guardline_runtime::{Error, Result};

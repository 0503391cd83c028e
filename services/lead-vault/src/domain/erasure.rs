//! Erasure case states.

/// Waiting for execution.
pub const OPEN: &str = "open";
/// Executed.
pub const DONE: &str = "done";
/// Blocked by a legal hold.
pub const BLOCKED: &str = "blocked";

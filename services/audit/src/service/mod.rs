//! Audit's use-cases: the log (append, proofs, query, prune, verify) and
//! alerting (detection, alerts, webhook delivery). No tonic: identity is
//! reached through the [`alerting::WorkingHours`] port.

pub mod alerting;
pub mod checkpoints;
pub mod export;
pub mod log;
pub mod signing;
pub mod trees;

pub use log::*;

//! Storage of dialer-policy: policies, the tenant and campaign do-not-call
//! lists (blind indexes from the lead vault, never numbers), decisions,
//! call attempts (the counters are rows, so several replicas share them),
//! line states, the privacy-number pool with its bindings, and the national
//! registry copies' metadata (the numbers themselves live in files).

pub mod attempts;
pub mod compliance;
mod entities;
pub mod lists;
mod migration;
pub mod policies;
pub mod privacy;
pub mod registry_copies;

pub use attempts::lock;
pub use entities::*;
pub use migration::Migrator;

use guardline_audit_client::AuditedDb;
pub use guardline_audit_client::{Conn, Tx};

/// The dialer's database: the pool, whose transactions commit with their audit
/// events (`begin`, `commit`, `audit`); every query is a function of this
/// module's children over [`Conn`].
pub type Store = AuditedDb;

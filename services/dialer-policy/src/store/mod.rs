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

use guardline_audit_client::{AuditedDb, EventBuilder};
pub use guardline_audit_client::{Conn, Tx};
use sea_orm::DatabaseConnection;

use crate::error::Result;

/// The dialer's database: every query and transaction of the service.
#[derive(Clone, Debug)]
pub struct Store {
    db: AuditedDb,
}

impl Conn for Store {
    type C = DatabaseConnection;
    fn conn(&self) -> &DatabaseConnection {
        self.db.conn()
    }
}

/// Writes `event` to the outbox in `tx`: it commits with the change.
pub async fn enqueue(tx: &Tx, event: EventBuilder) -> Result<()> {
    tx.enqueue(event).await
}

impl Store {
    /// The store over `db`.
    pub fn new(db: AuditedDb) -> Self {
        Self { db }
    }

    /// Begins a write transaction.
    pub async fn begin(&self) -> Result<Tx> {
        self.db.begin().await
    }

    /// Commits `tx` with `events`, and wakes the outbox.
    pub async fn commit(&self, tx: Tx, events: impl IntoIterator<Item = EventBuilder>) -> Result<()> {
        self.db.commit(tx, events).await
    }

    /// Records an event with no other change.
    pub async fn audit(&self, event: EventBuilder) -> Result<()> {
        self.db.audit(event).await
    }
}

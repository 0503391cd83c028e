//! The lead vault's storage: leads with every PII field sealed under the
//! lead's record key (itself wrapped by the tenant data key), phone blind
//! indexes for exact lookup, and the shared outbox and data-key tables.

mod consents;
mod entities;
mod erasures;
mod leads;
mod migration;
mod rotations;
mod settings;

pub use entities::*;
pub use leads::{Owners, Written};
pub use migration::Migrator;
pub use rotations::{DataKeyState, job_state};

use guardline_audit_client::{AuditedDb, EventBuilder};

use crate::error::Result;

/// The vault's database: every query and transaction of the service.
#[derive(Clone, Debug)]
pub struct Store {
    db: AuditedDb,
}

impl Store {
    /// Leases on this database, held as one holder per call.
    pub fn leases(&self) -> guardline_runtime::lease::Leases {
        use guardline_audit_client::Conn;
        guardline_runtime::lease::Leases::new(self.db.conn().clone(), guardline_runtime::clock::Clock::system())
    }

    /// The store over `db`.
    pub fn new(db: AuditedDb) -> Self {
        Self { db }
    }

    /// Records an event with no other change.
    pub async fn audit(&self, event: EventBuilder) -> Result<()> {
        self.db.audit(event).await
    }
}

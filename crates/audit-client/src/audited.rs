//! A service's database handle that commits changes with their audit
//! events: the one place a store begins a write, writes the outbox rows in
//! the same transaction and wakes the delivery worker after the commit.

use std::sync::Arc;

use sea_orm::{DatabaseConnection, DatabaseTransaction};
use tokio::sync::Notify;

use crate::EventBuilder;
use guardline_runtime::Result;

/// The database and the outbox worker it wakes.
#[derive(Clone)]
pub struct AuditedDb {
    db: DatabaseConnection,
    outbox: Arc<Notify>,
}

impl std::fmt::Debug for AuditedDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditedDb").finish_non_exhaustive()
    }
}

impl AuditedDb {
    /// Writes to `db`; committed events wake `outbox`.
    pub fn new(db: DatabaseConnection, outbox: Arc<Notify>) -> Self {
        Self { db, outbox }
    }

    /// For reads outside a transaction.
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Begins a write transaction (on SQLite, one that takes the write
    /// lock at once, so concurrent writers wait instead of failing).
    pub async fn begin(&self) -> Result<DatabaseTransaction> {
        Ok(guardline_runtime::storage::write_txn(&self.db).await?)
    }

    /// Writes `events` in `txn`, commits, and wakes delivery.
    pub async fn commit(&self, txn: DatabaseTransaction, events: impl IntoIterator<Item = EventBuilder>) -> Result<()> {
        for event in events {
            crate::enqueue(&txn, &event.build()).await?;
        }
        txn.commit().await?;
        self.outbox.notify_one();
        Ok(())
    }

    /// Records `event` with no other change.
    pub async fn audit(&self, event: EventBuilder) -> Result<()> {
        let txn = self.begin().await?;
        self.commit(txn, [event]).await
    }
}

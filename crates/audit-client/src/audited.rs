//! A service's database handle that commits changes with their audit
//! events: the one place a store begins a write, writes the outbox rows in
//! the same transaction and wakes the delivery worker after the commit.

use std::sync::Arc;

use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction};
use tokio::sync::Notify;

use crate::EventBuilder;
use guardline_runtime::Result;

/// The database and the outbox worker it wakes.
#[derive(Clone)]
pub struct AuditedDb {
    db: DatabaseConnection,
    outbox: Arc<Notify>,
    backlog: Arc<Backlog>,
}

/// How far the outbox is behind, as its worker last counted, and the bound
/// past which writes are refused: while audit is unreachable the outbox
/// grows to about `limit` events (plus what arrives within one count), then
/// the service pushes back with UNAVAILABLE instead of growing without end.
#[derive(Debug)]
pub struct Backlog {
    depth: std::sync::atomic::AtomicU64,
    limit: u64,
}

impl Backlog {
    /// No more than `limit` events waiting (0: no bound).
    pub fn new(limit: u64) -> Self {
        Self { depth: Default::default(), limit }
    }

    /// What the worker counted.
    pub fn set(&self, depth: u64) {
        self.depth.store(depth, std::sync::atomic::Ordering::Relaxed);
    }

    /// Events waiting at the last count.
    pub fn depth(&self) -> u64 {
        self.depth.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether the outbox is near enough its bound to be counted every round.
    pub fn near(&self) -> bool {
        self.limit > 0 && self.depth() * 2 >= self.limit
    }

    /// Refuses a write while the outbox is at its bound.
    pub fn admit(&self) -> Result<()> {
        let depth = self.depth();
        if self.limit > 0 && depth >= self.limit {
            return Err(guardline_runtime::Error::Unavailable(format!(
                "audit is behind: {depth} events wait in the outbox (limit {}); retry later",
                self.limit
            )));
        }
        Ok(())
    }
}

impl std::fmt::Debug for AuditedDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditedDb").finish_non_exhaustive()
    }
}

/// A write transaction. Use-cases hold it and hand it to their store's
/// functions; only a store looks inside.
pub struct Tx(DatabaseTransaction);

/// What a store function reads and writes through: the pool or a
/// transaction, so one query serves both.
pub trait Conn: Sync {
    /// The connection sea-orm runs statements on.
    type C: ConnectionTrait;
    /// It.
    fn conn(&self) -> &Self::C;
}

impl Conn for AuditedDb {
    type C = DatabaseConnection;
    fn conn(&self) -> &DatabaseConnection {
        &self.db
    }
}

impl Conn for Tx {
    type C = DatabaseTransaction;
    fn conn(&self) -> &DatabaseTransaction {
        &self.0
    }
}

impl Tx {
    /// Writes `event` to the outbox in this transaction: it commits with
    /// the change.
    pub async fn enqueue(&self, event: EventBuilder) -> Result<()> {
        crate::enqueue(&self.0, &event.build()).await
    }
}

impl AuditedDb {
    /// Writes to `db`; committed events wake `outbox`.
    pub fn new(db: DatabaseConnection, outbox: Arc<Notify>) -> Self {
        Self { db, outbox, backlog: Arc::new(Backlog::new(0)) }
    }

    /// Refuses writes while `backlog` is at its bound.
    pub fn with_backlog(mut self, backlog: Arc<Backlog>) -> Self {
        self.backlog = backlog;
        self
    }

    /// Begins a write transaction (on SQLite, one that takes the write
    /// lock at once, so concurrent writers wait instead of failing).
    pub async fn begin(&self) -> Result<Tx> {
        self.backlog.admit()?;
        Ok(Tx(guardline_runtime::storage::write_txn(&self.db).await?))
    }

    /// Writes `events` in `tx`, commits, and wakes delivery.
    pub async fn commit(&self, tx: Tx, events: impl IntoIterator<Item = EventBuilder>) -> Result<()> {
        for event in events {
            tx.enqueue(event).await?;
        }
        tx.0.commit().await?;
        self.outbox.notify_one();
        Ok(())
    }

    /// Records `event` with no other change.
    pub async fn audit(&self, event: EventBuilder) -> Result<()> {
        let txn = self.begin().await?;
        self.commit(txn, [event]).await
    }
}

//! How every service reports data operations to the audit service.
//!
//! - [`enqueue`] writes an event to the service's outbox table inside the
//!   same transaction as the change it describes: the change and its audit
//!   record commit or roll back together.
//! - [`OutboxWorker`] delivers the outbox at least once, in order of
//!   creation, with the event id as idempotency key, retrying with capped
//!   exponential backoff while the audit service is unreachable.
//! - [`AuditClient::append_now`] is the synchronous mode for operations that
//!   must not proceed unaudited (reveal, export): it returns only once audit
//!   has acknowledged the event as durable, and fails UNAVAILABLE otherwise.
//!
//! Events never carry PII: details hold ids and masked values only.

pub mod audited;
pub mod event;
pub mod outbox;

pub use audited::{AuditedDb, Backlog, Conn, Tx};
pub use event::{EventBuilder, Outcome};
pub use outbox::{AuditClient, OutboxWorker, enqueue, migrations};

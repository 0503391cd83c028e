//! Audit's rules: event validation and the anomaly rules. The log's format
//! (canonical encoding, RFC 9162 tree, signed heads, export, verification)
//! lives in `crates/audit-log`, re-exported here. No tonic, no sea-orm.

pub mod alerts;
pub mod egress;
pub mod validate;

pub use guardline_audit_log::{canonical, checkpoint, export, merkle, monitor, pin, sth, tiles, verify};

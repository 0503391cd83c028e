//! The tamper-evident audit log as a format, free of any service: the
//! canonical byte encoding of an event (the Merkle leaf), the RFC 9162
//! Merkle tree with inclusion and consistency proofs, Ed25519-signed tree
//! heads, the export file and its offline verification.
//!
//! The audit service, the `guardline` CLI, the operator and an outside
//! auditor all use it; it has no database, gRPC or HTTP dependency
//! (`cargo tree -p guardline-audit-log`). The format is documented in
//! `docs/audit-log-format.md`.
#![doc = include_str!("../README.md")]

pub mod canonical;
pub mod checkpoint;
pub mod export;
pub mod merkle;
pub mod monitor;
pub mod pin;
pub mod sth;
pub mod tiles;
pub mod verify;

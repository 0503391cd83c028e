//! Audit's rules: the canonical event encoding, the RFC 9162 tree, signed
//! tree heads, event validation and whole-log verification. No tonic, no sea-orm.

pub mod alerts;
pub mod canonical;
pub mod export;
pub mod merkle;
pub mod sth;
pub mod validate;
pub mod verify;

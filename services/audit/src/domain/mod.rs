//! Audit's rules: the canonical event encoding, the RFC 9162 tree, signed
//! tree heads and event validation. No tonic, no sea-orm.

pub mod merkle;

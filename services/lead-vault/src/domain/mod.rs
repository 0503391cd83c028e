//! The lead vault's rules: masking (phone numbers live in `guardline-phone`). No tonic,
//! no sea-orm; unit-tested in isolation.

pub mod erasure;
pub mod lead;
pub mod mask;
pub mod settings;

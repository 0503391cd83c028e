//! The lead vault's rules: phone numbers, masking, blind indexes. No tonic,
//! no sea-orm; unit-tested in isolation.

pub mod mask;
pub mod phone;

//! The dialer's rules as pure code: the national registry's number set,
//! calling windows from jurisdiction packs, line health, and how rule
//! outcomes combine into one decision. No tonic, no sea-orm.

pub mod calendar;
pub mod callee;
pub mod decision;
pub mod health;
pub mod numbers;
pub mod policy;
pub mod reassigned;
pub mod window;

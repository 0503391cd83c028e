//! Recordings' rules: the STREAM encryption of audio, the upload header
//! and retention. No tonic, no sea-orm, no object store.

pub mod recording;
pub mod stream;

//! Recordings' rules: the STREAM encryption of audio. No tonic, no sea-orm,
//! no object store.

pub mod stream;

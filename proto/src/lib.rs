//! The only home of Guardline's `.proto` files and their generated code.
//!
//! Packages are versioned (`guardline.<service>.v1`). Proto types never travel
//! past a service's `grpc.rs`: domain code converts at that boundary.

#![allow(clippy::all, missing_docs)]

/// `guardline.common.v1`: types shared by every API.
pub mod common {
    pub mod v1 {
        tonic::include_proto!("guardline.common.v1");
    }
}

/// `guardline.identity.v1`: tenants, users, roles, tokens.
pub mod identity {
    pub mod v1 {
        tonic::include_proto!("guardline.identity.v1");
    }
}

/// `guardline.vault.v1`: the lead vault.
pub mod vault {
    pub mod v1 {
        tonic::include_proto!("guardline.vault.v1");
    }
}

/// `guardline.dialer.v1`: the pre-dial policy.
pub mod dialer {
    pub mod v1 {
        tonic::include_proto!("guardline.dialer.v1");
    }
}

/// `guardline.recordings.v1`: call recordings.
pub mod recordings {
    pub mod v1 {
        tonic::include_proto!("guardline.recordings.v1");
    }
}

/// `guardline.audit.v1`: the tamper-evident audit log.
pub mod audit {
    pub mod v1 {
        tonic::include_proto!("guardline.audit.v1");
    }
}

pub mod codec;
mod redact;

/// The encoded `FileDescriptorSet` of every Guardline API, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("guardline_descriptor");

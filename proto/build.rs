//! Generates the Rust code of every Guardline API with a vendored `protoc`,
//! so that no system installation is needed.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "guardline/common/v1/common.proto",
    "guardline/identity/v1/identity.proto",
    "guardline/vault/v1/vault.proto",
    "guardline/dialer/v1/dialer.proto",
    "guardline/recordings/v1/recordings.proto",
    "guardline/audit/v1/audit.proto",
];

/// Messages that carry PII or secrets: their `Debug` is written by hand in
/// `src/redact.rs` and prints no value of them.
const REDACTED: &[&str] = &[
    ".guardline.common.v1.MaskedValue",
    ".guardline.common.v1.RequestContext",
    ".guardline.identity.v1.LoginRequest",
    ".guardline.identity.v1.LoginResponse",
    ".guardline.identity.v1.CreateUserRequest",
    ".guardline.identity.v1.UpdateUserRequest",
    ".guardline.identity.v1.EnrollTotpRequest",
    ".guardline.identity.v1.EnrollTotpResponse",
    ".guardline.identity.v1.ConfirmTotpRequest",
    ".guardline.identity.v1.RefreshRequest",
    ".guardline.identity.v1.LogoutRequest",
    ".guardline.vault.v1.LeadInput",
    ".guardline.vault.v1.Address",
    ".guardline.vault.v1.RevealFieldResponse",
    ".guardline.vault.v1.ExportLeadsResponse",
    ".guardline.vault.v1.DialTarget",
    ".guardline.vault.v1.LookupNumberRequest",
    ".guardline.vault.v1.LookupNumbersRequest",
    ".guardline.vault.v1.RequestErasureRequest",
    ".guardline.vault.v1.RequestErasureRequest.subject",
    ".guardline.vault.v1.ConsentEvidence",
    ".guardline.dialer.v1.CheckCallRequest",
    ".guardline.dialer.v1.CheckCallRequest.callee",
    ".guardline.dialer.v1.AddToDncRequest",
    ".guardline.dialer.v1.RemoveFromDncRequest",
    ".guardline.dialer.v1.ResolveBindingResponse",
    ".guardline.dialer.v1.ImportDncRequest",
    ".guardline.dialer.v1.ImportDncRequest.item",
    ".guardline.recordings.v1.UploadRecordingRequest",
    ".guardline.recordings.v1.UploadRecordingRequest.item",
    ".guardline.recordings.v1.DownloadRecordingResponse",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    let well_known = protoc_bin_vendored::include_path()?.display().to_string();
    tonic_prost_build::configure()
        // No default stubs: an RPC a service does not implement fails to
        // compile instead of answering UNIMPLEMENTED.
        .generate_default_stubs(false)
        .skip_debug(REDACTED)
        // A message that does not decode is INVALID_ARGUMENT, not INTERNAL.
        .codec_path("crate::codec::StrictCodec")
        .file_descriptor_set_path(out.join("guardline_descriptor.bin"))
        .compile_with_config(config, PROTOS, &[".", well_known.as_str()])?;
    for p in PROTOS {
        println!("cargo:rerun-if-changed={p}");
    }
    Ok(())
}

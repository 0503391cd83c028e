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

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    let well_known = protoc_bin_vendored::include_path()?.display().to_string();
    tonic_prost_build::configure()
        // Until a service issue lands, its RPCs answer UNIMPLEMENTED from these stubs.
        .generate_default_stubs(true)
        .file_descriptor_set_path(out.join("guardline_descriptor.bin"))
        .compile_with_config(config, PROTOS, &[".", well_known.as_str()])?;
    for p in PROTOS {
        println!("cargo:rerun-if-changed={p}");
    }
    Ok(())
}

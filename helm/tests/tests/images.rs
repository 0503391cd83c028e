//! The images' content, checked without a container runtime (none runs on
//! the machines CI uses): `scripts/images.sh` builds every image from the
//! debug binaries with buildah; each OCI archive is unpacked, its config
//! read, and its entrypoint run under `chroot` as uid 65532 from a
//! read-only bind mount of its root filesystem; each carries the licence,
//! the notice of third-party material and a CycloneDX SBOM.

use std::path::{Path, PathBuf};
use std::process::Command;

use guardline_chart::{bin_dir, root};
use serde_yaml::Value;

const IMAGES: [(&str, &str); 7] = [
    ("guardline-identity", "guardline-identity"),
    ("guardline-lead-vault", "guardline-lead-vault"),
    ("guardline-dialer-policy", "guardline-dialer-policy"),
    ("guardline-recordings", "guardline-recordings"),
    ("guardline-audit", "guardline-audit"),
    ("guardline-operator", "guardline-operator"),
    ("guardline-cli", "guardline"),
];

fn json(path: &Path) -> Value {
    serde_yaml::from_str(&std::fs::read_to_string(path).expect("read")).expect("json")
}

fn blob(dir: &Path, digest: &str) -> PathBuf {
    dir.join("blobs/sha256").join(digest.trim_start_matches("sha256:"))
}

fn sh(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().expect("run");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

#[test]
fn every_image_runs_its_binary_as_65532_from_a_read_only_root() {
    let out = tempfile_dir("images");
    let target = bin_dir().expect("target").parent().expect("target dir").to_path_buf();
    let (ok, log) = sh(Command::new(root().join("scripts/images.sh"))
        .env("PROFILE", "debug")
        .env("SKIP_BUILD", "1")
        .env("CARGO_TARGET_DIR", &target)
        .env("OUT", &out)
        .current_dir(root()));
    assert!(ok, "scripts/images.sh:\n{log}");
    for (image, binary) in IMAGES {
        let dir = out.join(image);
        std::fs::create_dir_all(&dir).expect("dir");
        let archive = out.join(format!("{image}.oci.tar"));
        assert!(sh(Command::new("tar").arg("-xf").arg(&archive).arg("-C").arg(&dir)).0, "{image}: an OCI archive");
        let index = json(&dir.join("index.json"));
        let manifest = json(&blob(&dir, index["manifests"][0]["digest"].as_str().expect("manifest")));
        let config = json(&blob(&dir, manifest["config"]["digest"].as_str().expect("config")));
        assert_eq!(config["config"]["User"].as_str(), Some("65532:65532"), "{image}");
        let entrypoint = format!("/usr/local/bin/{binary}");
        assert_eq!(config["config"]["Entrypoint"][0].as_str(), Some(entrypoint.as_str()), "{image}");
        let rootfs = dir.join("rootfs");
        std::fs::create_dir_all(&rootfs).expect("rootfs");
        for layer in manifest["layers"].as_sequence().expect("layers") {
            let layer = blob(&dir, layer["digest"].as_str().expect("digest"));
            assert!(sh(Command::new("tar").arg("-xf").arg(&layer).arg("-C").arg(&rootfs)).0, "{image}: a layer");
        }
        assert!(!rootfs.join("bin/sh").exists() && !rootfs.join("usr/bin/sh").exists(), "{image}: no shell");
        let doc = rootfs.join("usr/share/doc/guardline");
        assert!(doc.join("NOTICE.md").exists() && doc.join("LICENSE").exists(), "{image}: licence and notice");
        let sbom = json(&doc.join("sbom.cdx.json"));
        assert_eq!(sbom["bomFormat"].as_str(), Some("CycloneDX"), "{image}");
        let components = sbom["components"].as_sequence().map_or(0, Vec::len);
        assert!(components > 50, "{image}: the SBOM lists the crates compiled in ({components})");
        // The entrypoint links and runs as 65532 with nothing writable but /tmp.
        let r = rootfs.display().to_string();
        let script = format!(
            "mount --bind {r} {r} && mount -o remount,bind,ro {r} && \
             chroot --userspec=65532:65532 {r} {entrypoint} --version && \
             ! chroot --userspec=65532:65532 {r} {entrypoint} --help > {r}/written 2>/dev/null"
        );
        let (ok, said) = sh(Command::new("unshare").args(["--mount", "--fork", "sh", "-c", &script]));
        assert!(ok, "{image}: {said}");
        assert!(said.contains("0.0.0"), "{image} ran: {said}");
    }
    std::fs::remove_dir_all(&out).ok();
}

fn tempfile_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("guardline-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    dir
}

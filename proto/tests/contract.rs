//! The v1 API as a contract: `buf lint` (STANDARD, with the AIP exceptions
//! written down in `buf.yaml`), `buf format`, and `buf breaking` against the
//! committed baseline image, run with the buf that `scripts/test-deps.sh`
//! installs. A planted breaking change shows the check refusing it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn proto_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn buf() -> PathBuf {
    if let Ok(p) = std::env::var("GUARDLINE_BUF") {
        return PathBuf::from(p);
    }
    let p = proto_dir().join("../.tools/buf/node_modules/.bin/buf");
    assert!(p.exists(), "buf is not installed: run scripts/test-deps.sh (or set GUARDLINE_BUF)");
    p
}

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(buf()).args(args).current_dir(dir).output().expect("buf")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn the_protos_pass_buf_lint() {
    let out = run(&proto_dir(), &["lint"]);
    assert!(out.status.success(), "buf lint:\n{}", text(&out));
}

#[test]
fn the_protos_are_formatted() {
    let out = run(&proto_dir(), &["format", "-d", "--exit-code"]);
    assert!(out.status.success(), "buf format -d:\n{}", text(&out));
}

#[test]
fn the_protos_are_compatible_with_the_baseline() {
    let out = run(&proto_dir(), &["breaking", "--against", "baseline/v1.binpb"]);
    assert!(out.status.success(), "buf breaking against baseline/v1.binpb:\n{}", text(&out));
}

/// A copy of the module with `edit` applied to one file.
fn planted(file: &str, edit: impl Fn(&str) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tmp");
    let copy = |from: &Path, to: &Path| -> std::io::Result<()> {
        let mut stack = vec![(from.to_path_buf(), to.to_path_buf())];
        while let Some((f, t)) = stack.pop() {
            std::fs::create_dir_all(&t)?;
            for e in std::fs::read_dir(&f)? {
                let e = e?;
                if e.file_type()?.is_dir() {
                    stack.push((e.path(), t.join(e.file_name())));
                } else {
                    std::fs::copy(e.path(), t.join(e.file_name()))?;
                }
            }
        }
        Ok(())
    };
    copy(&proto_dir().join("guardline"), &dir.path().join("guardline")).expect("copy");
    std::fs::copy(proto_dir().join("buf.yaml"), dir.path().join("buf.yaml")).expect("buf.yaml");
    let path = dir.path().join(file);
    let before = std::fs::read_to_string(&path).expect("proto");
    let after = edit(&before);
    assert_ne!(before, after, "the plant changed nothing");
    std::fs::write(&path, after).expect("write");
    dir
}

#[test]
fn a_renamed_field_or_a_changed_tag_is_refused_with_bufs_message() {
    let baseline = proto_dir().join("baseline/v1.binpb");
    let baseline = baseline.to_str().expect("path");
    // A renamed field: its JSON name changes.
    let renamed = planted("guardline/vault/v1/vault.proto", |s| {
        s.replacen(
            "message RevealFieldRequest {\n  // Tenant id.\n  string tenant_id = 1;",
            "message RevealFieldRequest {\n  // Tenant id.\n  string tenant = 1;",
            1,
        )
    });
    let out = run(renamed.path(), &["breaking", "--against", baseline]);
    assert!(!out.status.success(), "a renamed field passed");
    let said = text(&out);
    assert!(said.contains("RevealFieldRequest") && said.contains("tenant_id"), "{said}");
    // A changed tag: the old field number disappears.
    let retagged = planted("guardline/dialer/v1/dialer.proto", |s| {
        s.replacen("string caller_line = 4;", "string caller_line = 40;", 1)
    });
    let out = run(retagged.path(), &["breaking", "--against", baseline]);
    assert!(!out.status.success(), "a changed tag passed");
    let said = text(&out);
    assert!(said.contains("\"4\"") && said.contains("CheckCallRequest"), "{said}");
}

//! The chart as its tests read it: `helm` and `kubernetes-validate` run as
//! the tools they are (installed by `scripts/test-deps.sh`), and the
//! rendered manifests as YAML values.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde_yaml::Value;

/// The repository's root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repository root")
}

/// The chart's directory.
pub fn chart() -> PathBuf {
    root().join("helm/guardline")
}

/// `helm`: `$GUARDLINE_HELM`, else the one `scripts/test-deps.sh` installs, else `helm` on the path.
pub fn helm() -> PathBuf {
    if let Some(p) = std::env::var_os("GUARDLINE_HELM") {
        return p.into();
    }
    let local = root().join(".tools/bin/helm");
    if local.exists() { local } else { "helm".into() }
}

/// Runs `helm args…`; (succeeded, stdout, stderr).
pub fn run_helm(args: &[&str]) -> Result<(bool, String, String)> {
    let out = Command::new(helm()).args(args).current_dir(chart()).output().context("running helm")?;
    Ok((out.status.success(), String::from_utf8(out.stdout)?, String::from_utf8(out.stderr)?))
}

/// `helm template` of the chart in namespace `guardline` with `values`
/// files (relative to the chart) and `--set` pairs; Ok(stdout) or Err(stderr).
pub fn template(values: &[&str], set: &[&str]) -> Result<Result<String, String>> {
    template_in("guardline", values, set)
}

/// [`template`] into release namespace `namespace`.
pub fn template_in(namespace: &str, values: &[&str], set: &[&str]) -> Result<Result<String, String>> {
    let mut args = vec!["template", "guardline", ".", "--namespace", namespace];
    for v in values {
        args.extend(["-f", v]);
    }
    for s in set {
        args.extend(["--set", s]);
    }
    let (ok, out, err) = run_helm(&args)?;
    Ok(if ok { Ok(out) } else { Err(err) })
}

/// The documents of a rendered stream.
pub fn documents(rendered: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(rendered)
        .map(|d| serde::Deserialize::deserialize(d).unwrap_or_else(|e| panic!("a rendered document is not YAML: {e}")))
        .filter(|v: &Value| !v.is_null())
        .collect()
}

/// `kubernetes-validate --strict` over `rendered`; Err(its report) when it refuses.
pub fn validate(rendered: &str) -> Result<Result<(), String>> {
    use std::io::Write;
    let mut child = Command::new("kubernetes-validate")
        .args(["--strict", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("kubernetes-validate (pip install kubernetes-validate==1.37.0)")?;
    child.stdin.take().context("stdin")?.write_all(rendered.as_bytes())?;
    let out = child.wait_with_output()?;
    let report = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    Ok(if out.status.success() { Ok(()) } else { Err(report) })
}

/// `v` with every number as a float, so that `100` and `100.0` (Helm
/// re-renders floats as integers) compare equal.
pub fn numbers_as_floats(v: &Value) -> Value {
    match v {
        Value::Number(n) => Value::Number(n.as_f64().unwrap_or_default().into()),
        Value::Sequence(s) => Value::Sequence(s.iter().map(numbers_as_floats).collect()),
        Value::Mapping(m) => Value::Mapping(m.iter().map(|(k, v)| (k.clone(), numbers_as_floats(v))).collect()),
        other => other.clone(),
    }
}

/// The value at a dotted `path` (`spec.template.spec`).
pub fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |v, k| v.get(k).unwrap_or(&Value::Null))
}

/// A string at `path`, or "".
pub fn str_at<'a>(v: &'a Value, path: &str) -> &'a str {
    at(v, path).as_str().unwrap_or_default()
}

/// Documents of `kind`.
pub fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| str_at(d, "kind") == kind).collect()
}

/// Where cargo put the workspace's binaries (next to this test's `deps/`).
pub fn bin_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().and_then(Path::parent).context("no target directory")?;
    Ok(dir.to_path_buf())
}

/// The `GUARDLINE_*` variables `binary args… --help` names.
pub fn accepted_env(binary: &str, args: &[&str]) -> Result<Vec<String>> {
    let path = bin_dir()?.join(binary);
    if !path.exists() {
        bail!("{} is missing: build the binaries first (`cargo build --bins`, as `make test` does)", path.display());
    }
    let out = Command::new(&path).args(args).arg("--help").output()?;
    let help = String::from_utf8(out.stdout)?;
    Ok(help.split("[env: ").skip(1).filter_map(|s| s.split(['=', ']']).next()).map(str::to_owned).collect())
}

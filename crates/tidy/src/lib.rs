//! Architecture checks over the workspace's own sources, in the spirit of
//! rust-analyzer's tidy tests: one walk, each file read once, plain string
//! matching, every violation gathered and reported at once.
//!
//! Each check is a pure function of a file's path (relative to the
//! workspace root) and its text, unit-tested on a planted violation and a
//! clean case (`src/tests.rs`); `tests/workspace.rs` runs them all over the
//! tree and asserts that none reports anything. Patterns are spelled so that
//! this crate does not trip its own checks.

pub mod deps;
pub mod graph;
pub mod rules;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};

/// One thing a check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The file, relative to the workspace root.
    pub path: PathBuf,
    /// 1-based line, 0 when the finding is about the whole file.
    pub line: usize,
    /// The rule's short name, as the debt list names it.
    pub rule: &'static str,
    /// What is wrong and what to do about it.
    pub message: String,
}

impl Violation {
    /// A finding at `line` of `path`.
    pub fn new(rule: &'static str, path: &Path, line: usize, message: impl Into<String>) -> Self {
        Self { path: path.to_owned(), line, rule, message: message.into() }
    }
}

impl Violation {
    /// `rule path`: how `debt.txt` names a known violation (no line
    /// number, so that edits elsewhere in the file do not move it).
    pub fn key(&self) -> String {
        format!("{} {}", self.rule, slashed(&self.path))
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: [{}] {}", self.path.display(), self.line, self.rule, self.message)
    }
}

/// A source file of the workspace.
#[derive(Debug)]
pub struct Source {
    /// Relative to the workspace root, with `/` separators.
    pub path: PathBuf,
    /// The file's text.
    pub text: String,
}

/// The workspace's Rust sources and manifests, read once. Skips build
/// output, installed tools and vendored packages.
pub fn walk(root: &Path) -> std::io::Result<(Vec<Source>, Vec<Source>)> {
    let (mut rust, mut manifests) = (Vec::new(), Vec::new());
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if path.is_dir() {
                if !name.starts_with('.') && !matches!(name, "target" | "node_modules" | "baseline") {
                    stack.push(path);
                }
                continue;
            }
            let rel = path.strip_prefix(root).unwrap_or(&path).to_owned();
            if name.ends_with(".rs") {
                rust.push(Source { text: std::fs::read_to_string(&path)?, path: rel });
            } else if name == "Cargo.toml" && rel.parent().is_some_and(|p| !p.as_os_str().is_empty()) {
                manifests.push(Source { text: std::fs::read_to_string(&path)?, path: rel });
            }
        }
    }
    rust.sort_by(|a, b| a.path.cmp(&b.path));
    manifests.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((rust, manifests))
}

/// Every check over every file, plus the cross-file checks.
pub fn check_all(rust: &[Source], manifests: &[Source]) -> Vec<Violation> {
    let mut found = Vec::new();
    for s in rust {
        for check in rules::PER_FILE {
            found.extend(check(&s.path, &s.text));
        }
    }
    found.extend(graph::module_cycles(rust));
    for m in manifests {
        found.extend(deps::unused_dependencies(m, rust));
    }
    found
}

/// `path` as a string with `/` separators.
pub(crate) fn slashed(path: &Path) -> String {
    path.to_string_lossy().replace('\\', "/")
}

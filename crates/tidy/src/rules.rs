//! The per-file checks: each a pure `fn(&Path, &str) -> Vec<Violation>`.

use std::path::Path;

use crate::{Violation, slashed};

/// A per-file check.
pub type Check = fn(&Path, &str) -> Vec<Violation>;

/// Every per-file check, in the order they report.
pub const PER_FILE: &[Check] = &[
    module_doc,
    forbidden_macros,
    sea_orm_outside_store,
    domain_imports,
    proto_outside_grpc,
    file_length,
    long_functions,
    println_in_library,
    uninstrumented_handlers,
    contracting_migrations,
];

/// Longest non-test source file, in lines.
pub const MAX_FILE_LINES: usize = 500;
/// Longest function outside tests and migrations, in lines.
pub const MAX_FN_LINES: usize = 60;

// Patterns spelled so that this file does not match itself.
const SEA_ORM: &str = "sea\u{5f}orm";
const SEA_QUERY: &str = "sea\u{5f}query";
const PROTO: &str = "guardline\u{5f}proto";
const TONIC: &str = "ton\u{69}c";

/// The service a path belongs to and the path inside its `src/`, if it is
/// a service's library source: `services/<name>/src/<rest>`.
fn service_src(path: &Path) -> Option<String> {
    let p = slashed(path);
    let rest = p.strip_prefix("services/")?;
    let (_, inside) = rest.split_once("/src/")?;
    Some(inside.to_owned())
}

/// Integration tests, benchmarks, test modules and test-only crates.
fn is_test(path: &Path) -> bool {
    let p = slashed(path);
    p.contains("/tests/")
        || p.starts_with("e2e/tests/")
        || p.contains("/benches/")
        || p.ends_with("/tests.rs")
        || p.contains("/tests/support")
}

/// Schema migrations: long by nature, written once, never changed.
fn is_migration(path: &Path) -> bool {
    slashed(path).contains("migration")
}

/// The line where a file's inline `#[cfg(test)] mod` begins (0-based), or
/// the number of lines: what lies after it is test code.
pub(crate) fn source_end(lines: &[&str]) -> usize {
    lines
        .windows(2)
        .position(|w| w[0].trim() == "#[cfg(test)]" && w[1].trim_start().starts_with("mod "))
        .unwrap_or(lines.len())
}

/// Lines (1-based) that mention any of `needles` outside comments.
fn mentions(text: &str, needles: &[&str]) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let code = l.split("//").next().unwrap_or_default();
            needles.iter().any(|n| code.contains(n))
        })
        .map(|(i, _)| i + 1)
        .collect()
}

/// Every module starts with a `//!` line saying what it is.
pub fn module_doc(path: &Path, text: &str) -> Vec<Violation> {
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or_default();
    if first.starts_with("//!") {
        return vec![];
    }
    vec![Violation::new("module-doc", path, 1, "a module starts with a `//!` line that says what it owns")]
}

/// No placeholder or debugging macros, and no `#[ignore]` without a reason.
pub fn forbidden_macros(path: &Path, text: &str) -> Vec<Violation> {
    let banned = [("to\u{64}o!(", "todo!"), ("db\u{67}!(", "dbg!"), ("unimplement\u{65}d!(", "unimplemented!")];
    let mut found = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or_default();
        for (pattern, name) in banned {
            if code.contains(pattern) {
                found.push(Violation::new(
                    "forbidden-macro",
                    path,
                    i + 1,
                    format!("`{name}` does not belong in committed code"),
                ));
            }
        }
        if code.trim() == "#[ig\u{6e}ore]" {
            found.push(Violation::new(
                "forbidden-macro",
                path,
                i + 1,
                "say why a test is ignored: #[ignore = \"why\"]",
            ));
        }
    }
    found
}

/// sea-orm is spoken only under a service's `store/`.
pub fn sea_orm_outside_store(path: &Path, text: &str) -> Vec<Violation> {
    let Some(inside) = service_src(path) else { return vec![] };
    if inside.starts_with("store/") || inside == "store.rs" {
        return vec![];
    }
    mentions(text, &[SEA_ORM, SEA_QUERY])
        .into_iter()
        .map(|l| {
            Violation::new(
                "sea-orm-outside-store",
                path,
                l,
                "sea-orm belongs in the service's store/ only; call a store function",
            )
        })
        .collect()
}

/// Domain modules are pure: no gRPC, no database, no proto types.
pub fn domain_imports(path: &Path, text: &str) -> Vec<Violation> {
    let Some(inside) = service_src(path) else { return vec![] };
    if !inside.starts_with("domain/") && inside != "domain.rs" {
        return vec![];
    }
    mentions(text, &[SEA_ORM, TONIC, PROTO])
        .into_iter()
        .map(|l| Violation::new("impure-domain", path, l, "domain code imports neither tonic, sea-orm nor proto types"))
        .collect()
}

/// Proto types stop at the service's `grpc.rs`.
pub fn proto_outside_grpc(path: &Path, text: &str) -> Vec<Violation> {
    let Some(inside) = service_src(path) else { return vec![] };
    if inside == "grpc.rs" || inside.starts_with("grpc/") || is_test(path) {
        return vec![];
    }
    mentions(text, &[PROTO])
        .into_iter()
        .map(|l| {
            Violation::new("proto-outside-grpc", path, l, "proto types stop at grpc.rs; convert to a domain type there")
        })
        .collect()
}

/// No non-test source file over [`MAX_FILE_LINES`].
pub fn file_length(path: &Path, text: &str) -> Vec<Violation> {
    if is_test(path) {
        return vec![];
    }
    let lines: Vec<&str> = text.lines().collect();
    let n = source_end(&lines);
    if n <= MAX_FILE_LINES {
        return vec![];
    }
    vec![Violation::new("long-file", path, 0, format!("{n} lines of source; split it below {MAX_FILE_LINES}"))]
}

/// If `line` starts a function definition, its indentation.
fn fn_start(line: &str) -> Option<usize> {
    let indent = line.len() - line.trim_start().len();
    let mut rest = line.trim_start();
    for prefix in ["pub(crate) ", "pub(super) ", "pub ", "const ", "async ", "unsafe ", "extern \"C\" "] {
        rest = rest.strip_prefix(prefix).unwrap_or(rest);
        rest = rest.strip_prefix(prefix).unwrap_or(rest);
    }
    rest.starts_with("fn ").then_some(indent)
}

/// No function over [`MAX_FN_LINES`] outside tests and migrations (a
/// migration file, or a migration's `up` and `down`).
/// Relies on rustfmt's layout: a body ends at the first `}` line at the
/// signature's indentation.
pub fn long_functions(path: &Path, text: &str) -> Vec<Violation> {
    if is_test(path) || is_migration(path) {
        return vec![];
    }
    let lines: Vec<&str> = text.lines().collect();
    let end = source_end(&lines);
    let migrations = text.contains("MigrationTrait for ");
    let mut found = Vec::new();
    for (i, line) in lines[..end].iter().enumerate() {
        let Some(indent) = fn_start(line) else { continue };
        let close = format!("{}}}", " ".repeat(indent));
        let Some(len) = lines[i + 1..end].iter().position(|l| *l == close) else { continue };
        // A declaration without a body ends with `;` before any `{`.
        let body_opens = lines[i..=i + len].iter().position(|l| l.trim_end().ends_with('{'));
        let declared = lines[i..=i + len].iter().position(|l| l.trim_end().ends_with(';'));
        if declared.is_some_and(|d| body_opens.is_none_or(|b| d < b)) {
            continue;
        }
        let n = len + 2;
        let name = line.trim_start().split("fn ").nth(1).unwrap_or_default();
        let name: String = name.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        if migrations && matches!(name.as_str(), "up" | "down") {
            continue;
        }
        if n > MAX_FN_LINES {
            found.push(Violation::new(
                "long-fn",
                path,
                i + 1,
                format!("fn {name} is {n} lines; keep functions under {MAX_FN_LINES}"),
            ));
        }
    }
    found
}

/// Libraries log through `tracing`; only binaries print.
pub fn println_in_library(path: &Path, text: &str) -> Vec<Violation> {
    let p = slashed(path);
    let library = (p.starts_with("services/") || p.starts_with("crates/") || p.starts_with("k8s-operator/"))
        && p.contains("/src/")
        && !p.starts_with("crates/guardline/")
        && !p.starts_with("crates/tidy/")
        && !p.ends_with("/main.rs")
        && !p.contains("/bin/")
        && !is_test(path);
    if !library {
        return vec![];
    }
    let lines: Vec<&str> = text.lines().collect();
    let end = source_end(&lines);
    mentions(&lines[..end].join("\n"), &["print\u{6c}n!(", "eprint\u{6c}n!("])
        .into_iter()
        .map(|l| Violation::new("print-in-library", path, l, "a library logs with tracing; it does not print"))
        .collect()
}

/// Every gRPC handler of a service has a span naming its RPC (and its
/// tenant where the request names one): `#[tracing::instrument(skip_all, ..)]`.
pub fn uninstrumented_handlers(path: &Path, text: &str) -> Vec<Violation> {
    let Some(inside) = service_src(path) else { return vec![] };
    if inside != "grpc.rs" && inside != "grpc/mod.rs" {
        return vec![];
    }
    let lines: Vec<&str> = text.lines().collect();
    let Some(start) = lines.iter().position(|l| l.starts_with("impl ") && l.contains("Service for ")) else {
        return vec![];
    };
    let end = lines[start..].iter().position(|l| *l == "}").map_or(lines.len(), |e| start + e);
    let mut found = Vec::new();
    for i in start + 1..end {
        if lines[i].starts_with("    async fn ")
            && !lines[i - 1].trim_start().starts_with("#[tracing::instrument(skip_all")
        {
            found.push(Violation::new(
                "uninstrumented-handler",
                path,
                i + 1,
                "a handler gets #[tracing::instrument(skip_all, fields(rpc = ..))] (no argument is recorded)",
            ));
        }
    }
    found
}

/// Schema changes go expand-then-contract, so two releases run side by
/// side during a rolling upgrade: a migration adds (tables, nullable or
/// defaulted columns, indexes) and never drops or renames in the release
/// that stops using a thing. A contracting step carries `// contract:` and
/// the release whose code no longer reads what it removes.
pub fn contracting_migrations(path: &Path, text: &str) -> Vec<Violation> {
    let p = crate::slashed(path);
    if !(p.contains("/store/") || p.contains("/src/store.rs") || p.contains("migration")) || p.contains("/tests/") {
        return vec![];
    }
    const CONTRACTING: [&str; 6] =
        ["drop_table(", "drop_column(", "rename_column(", "rename_table(", "DROP TABLE", "DROP COLUMN"];
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let code = l.split("//").next().unwrap_or_default();
            CONTRACTING.iter().any(|n| code.contains(n)) && !l.contains("// contract:")
        })
        .map(|(i, _)| {
            Violation::new(
                "contracting-migration",
                path,
                i + 1,
                "a migration that drops or renames breaks the release still running beside it; expand now, contract a release later (mark it `// contract: <release>`)",
            )
        })
        .collect()
}

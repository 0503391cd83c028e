//! Unused dependencies, found the way cargo-machete finds them: a
//! dependency whose crate name appears in none of the crate's Rust files is
//! reported. A dependency that is used without being named (a feature
//! switch, a code generator's runtime) is listed, with why, under
//! `[package.metadata.cargo-machete] ignored`, which cargo-machete reads too.

use crate::{Source, Violation, slashed};

/// The dependencies a manifest declares, as `(line, name)`.
pub fn declared(manifest: &str) -> Vec<(usize, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for (i, line) in manifest.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') {
            section = t.trim_matches(['[', ']']).to_owned();
            continue;
        }
        let is_deps = section.ends_with("dependencies") && !section.starts_with("workspace");
        if !is_deps || t.is_empty() || t.starts_with('#') {
            continue;
        }
        let key = t.split(['=', '.', ' ']).next().unwrap_or_default().trim_matches('"');
        if !key.is_empty() {
            out.push((i + 1, key.to_owned()));
        }
    }
    out
}

/// The names listed in `[package.metadata.cargo-machete] ignored = [...]`.
pub fn ignored(manifest: &str) -> Vec<String> {
    let Some(at) = manifest.find("[package.metadata.cargo-machete]") else { return vec![] };
    let rest = &manifest[at..];
    let Some(list) = rest.split_once("ignored").and_then(|(_, r)| r.split_once('[')).map(|(_, r)| r) else {
        return vec![];
    };
    let list = list.split(']').next().unwrap_or_default();
    list.split(',')
        .map(|s| s.split('#').next().unwrap_or_default().trim().trim_matches('"').to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Dependencies of `manifest` that no Rust file of its crate names.
pub fn unused_dependencies(manifest: &Source, sources: &[Source]) -> Vec<Violation> {
    let dir = slashed(manifest.path.parent().unwrap_or(std::path::Path::new("")));
    let own: Vec<&Source> = sources.iter().filter(|s| slashed(&s.path).starts_with(&format!("{dir}/"))).collect();
    let skip = ignored(&manifest.text);
    declared(&manifest.text)
        .into_iter()
        .filter(|(_, name)| !skip.contains(name))
        .filter(|(_, name)| {
            let ident = name.replace('-', "_");
            !own.iter().any(|s| names(&s.text, &ident))
        })
        .map(|(line, name)| {
            Violation::new(
                "unused-dependency",
                &manifest.path,
                line,
                format!("dependency `{name}` is not used by this crate; remove it"),
            )
        })
        .collect()
}

/// Whether `text` names the crate `ident` as a path's first segment.
fn names(text: &str, ident: &str) -> bool {
    text.match_indices(ident).any(|(at, _)| {
        let before = text[..at].chars().last();
        let after = text[at + ident.len()..].chars().next();
        let starts = before.is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        let ends = after.is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        starts && ends
    })
}

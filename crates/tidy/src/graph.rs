//! No cycles among a crate's top-level modules: an edge `a -> b` is a
//! `crate::b` path in module `a` (test code excluded), and a module that
//! needs another's helpers must not be needed by it in turn.

use std::collections::{BTreeMap, BTreeSet};

use crate::{Source, Violation, rules::source_end, slashed};

/// The crate (the directory holding `src/`) and top-level module of a file
/// under some `src/`, if it is in one.
fn locate(path: &str) -> Option<(&str, &str)> {
    let (krate, inside) = path.split_once("/src/")?;
    let top = inside.split('/').next()?;
    let top = top.strip_suffix(".rs").unwrap_or(top);
    if matches!(top, "lib" | "main" | "bin") {
        return None;
    }
    Some((krate, top))
}

/// The modules named by `crate::` paths in `text`, outside comments.
pub fn crate_paths(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or_default();
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let preceded = rest[..at].chars().last().is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$');
            if !preceded {
                if let Some(group) = after.strip_prefix('{') {
                    let inner = group.split('}').next().unwrap_or_default();
                    out.extend(inner.split(',').filter_map(|p| ident(p.trim())));
                } else if let Some(id) = ident(after) {
                    out.insert(id);
                }
            }
            rest = after;
        }
    }
    out
}

fn ident(s: &str) -> Option<String> {
    let id: String = s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    (!id.is_empty() && id != "self").then_some(id)
}

/// Every cycle among each crate's top-level modules, one violation per
/// strongly connected set of modules.
pub fn module_cycles(sources: &[Source]) -> Vec<Violation> {
    let mut crates: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for s in sources {
        let path = slashed(&s.path);
        let Some((krate, top)) = locate(&path) else { continue };
        let lines: Vec<&str> = s.text.lines().collect();
        let code = lines[..source_end(&lines)].join("\n");
        let edges = crates.entry(krate.to_owned()).or_default().entry(top.to_owned()).or_default();
        edges.extend(crate_paths(&code).into_iter().filter(|m| m != top));
    }
    let mut found = Vec::new();
    for (krate, graph) in &crates {
        for set in cycles(graph) {
            let names: Vec<&str> = set.iter().map(String::as_str).collect();
            found.push(Violation::new(
                "module-cycle",
                std::path::Path::new(krate),
                0,
                format!(
                    "module cycle: {} need each other; move the shared piece to where it belongs",
                    names.join(", ")
                ),
            ));
        }
    }
    found
}

/// The strongly connected sets of more than one module.
pub fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<BTreeSet<String>> {
    let reach = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_owned()];
        while let Some(m) = todo.pop() {
            for next in graph.get(&m).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&String, BTreeSet<String>> = graph.keys().map(|m| (m, reach(m))).collect();
    let mut sets: Vec<BTreeSet<String>> = Vec::new();
    for (m, r) in &reaches {
        if !r.contains(*m) || sets.iter().any(|s| s.contains(*m)) {
            continue;
        }
        let set: BTreeSet<String> =
            r.iter().filter(|o| reaches.get(o).is_some_and(|back| back.contains(*m))).cloned().collect();
        if set.len() > 1 {
            sets.push(set);
        }
    }
    sets
}

//! Runs every tidy check over the whole workspace. It passes when every
//! violation found is listed in `debt.txt` and every entry there is still
//! found: the list of known debt only shrinks, and a new violation fails.
//! `GUARDLINE_TIDY_PAID=1 cargo test -p guardline-tidy` strikes paid entries.

use std::collections::BTreeSet;
use std::path::Path;

#[test]
fn the_workspace_is_tidy() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (rust, manifests) = guardline_tidy::walk(&here.join("../..")).expect("the workspace is readable");
    assert!(rust.len() > 100, "the walk found the sources ({} files)", rust.len());
    let found = guardline_tidy::check_all(&rust, &manifests);
    let debt_text = std::fs::read_to_string(here.join("debt.txt")).expect("debt.txt");
    let debt: BTreeSet<&str> =
        debt_text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    let keys: BTreeSet<String> = found.iter().map(guardline_tidy::Violation::key).collect();
    let new: Vec<String> = found.iter().filter(|v| !debt.contains(v.key().as_str())).map(ToString::to_string).collect();
    let paid: Vec<&&str> = debt.iter().filter(|d| !keys.contains(**d)).collect();
    assert!(new.is_empty(), "{} tidy violations:\n{}", new.len(), new.join("\n"));
    if !paid.is_empty() && std::env::var_os("GUARDLINE_TIDY_PAID").is_some() {
        // Strikes what was paid off; it never adds an entry.
        let kept: Vec<&str> = debt_text.lines().filter(|l| !paid.contains(&&l.trim())).collect();
        std::fs::write(here.join("debt.txt"), kept.join("\n") + "\n").expect("debt.txt is writable");
        return;
    }
    assert!(paid.is_empty(), "fixed, so remove from crates/tidy/debt.txt (GUARDLINE_TIDY_PAID=1 does): {paid:?}");
}

//! Each check catches a planted violation and passes a clean case.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::rules::*;
use crate::{Source, deps, graph};

fn p(s: &str) -> &Path {
    Path::new(s)
}

#[test]
fn a_module_without_a_doc_line_is_caught() {
    assert_eq!(module_doc(p("crates/x/src/a.rs"), "use std::fmt;\n").len(), 1);
    assert_eq!(module_doc(p("crates/x/src/a.rs"), "// a comment\n//! late\n").len(), 1);
    assert!(module_doc(p("crates/x/src/a.rs"), "\n//! What a owns.\nuse std::fmt;\n").is_empty());
}

#[test]
fn placeholder_macros_and_bare_ignores_are_caught() {
    let planted = "fn a() { to\u{64}o!() }\nfn b() { db\u{67}!(1); }\n#[ig\u{6e}ore]\nfn c() {}\n";
    assert_eq!(forbidden_macros(p("crates/x/src/a.rs"), planted).len(), 3);
    let clean = "// a to\u{64}o!( in a comment\n#[ignore = \"needs a cluster\"]\nfn c() {}\n";
    assert!(forbidden_macros(p("crates/x/src/a.rs"), clean).is_empty());
}

#[test]
fn sea_orm_outside_store_is_caught() {
    let planted = "use sea\u{5f}orm::Set;\n";
    assert_eq!(sea_orm_outside_store(p("services/x/src/service.rs"), planted).len(), 1);
    assert_eq!(sea_orm_outside_store(p("services/x/src/domain/a.rs"), planted).len(), 1);
    assert!(sea_orm_outside_store(p("services/x/src/store/mod.rs"), planted).is_empty());
    assert!(sea_orm_outside_store(p("services/x/src/store/leads.rs"), planted).is_empty());
    assert!(sea_orm_outside_store(p("crates/keys/src/store.rs"), planted).is_empty(), "only services are layered");
    assert!(sea_orm_outside_store(p("services/x/src/service.rs"), "// sea\u{5f}orm in prose\n").is_empty());
}

#[test]
fn tonic_in_domain_is_caught() {
    for planted in ["use ton\u{69}c::Status;", "use guardline\u{5f}proto::x;", "sea\u{5f}orm::DbErr"] {
        assert_eq!(domain_imports(p("services/x/src/domain/rules.rs"), planted).len(), 1, "{planted}");
    }
    assert!(domain_imports(p("services/x/src/grpc.rs"), "use ton\u{69}c::Status;").is_empty());
    assert!(domain_imports(p("services/x/src/domain/rules.rs"), "use chrono::Utc;").is_empty());
}

#[test]
fn proto_types_outside_grpc_are_caught() {
    let planted = "use guardline\u{5f}proto::vault::v1::Lead;\n";
    assert_eq!(proto_outside_grpc(p("services/x/src/service.rs"), planted).len(), 1);
    assert_eq!(proto_outside_grpc(p("services/x/src/lib.rs"), planted).len(), 1);
    assert!(proto_outside_grpc(p("services/x/src/grpc.rs"), planted).is_empty());
    assert!(proto_outside_grpc(p("services/x/tests/x.rs"), planted).is_empty());
}

#[test]
fn a_long_file_is_caught_and_its_tests_do_not_count() {
    let long = "//! x\n".to_owned() + &"let a = 1;\n".repeat(MAX_FILE_LINES);
    assert_eq!(file_length(p("crates/x/src/a.rs"), &long).len(), 1);
    assert!(file_length(p("crates/x/tests/a.rs"), &long).is_empty());
    let with_tests = "//! x\n".to_owned() + &"x\n".repeat(400) + "#[cfg(test)]\nmod tests {\n" + &"y\n".repeat(400);
    assert!(file_length(p("crates/x/src/a.rs"), &with_tests).is_empty());
}

fn function(name: &str, indent: usize, body: usize) -> String {
    let pad = " ".repeat(indent);
    format!("{pad}pub async fn {name}() {{\n{}{pad}}}\n", format!("{pad}    x();\n").repeat(body))
}

#[test]
fn a_long_function_is_caught_where_it_counts() {
    let planted = format!("//! x\nimpl A {{\n{}{}}}\n", function("short", 4, 10), function("long", 4, MAX_FN_LINES));
    let found = long_functions(p("services/x/src/service.rs"), &planted);
    assert_eq!(found.len(), 1);
    assert!(found[0].message.contains("fn long"), "{}", found[0].message);
    assert!(long_functions(p("services/x/src/store/migration.rs"), &planted).is_empty());
    assert!(long_functions(p("services/x/tests/a.rs"), &planted).is_empty());
    let migration = format!("//! m\nimpl MigrationTrait for M {{\n{}}}\n", function("up", 4, MAX_FN_LINES));
    assert!(long_functions(p("services/x/src/store/mod.rs"), &migration).is_empty());
    let declaration = "trait T {\n    fn a(&self) -> u8;\n}\nfn b() {\n}\n";
    assert!(long_functions(p("crates/x/src/a.rs"), declaration).is_empty());
    let exact = function("exact", 0, MAX_FN_LINES - 2);
    assert!(long_functions(p("crates/x/src/a.rs"), &exact).is_empty(), "{MAX_FN_LINES} lines is allowed");
}

#[test]
fn printing_from_a_library_is_caught() {
    let planted = "fn a() { print\u{6c}n!(\"x\"); }\n";
    assert_eq!(println_in_library(p("services/x/src/service.rs"), planted).len(), 1);
    assert!(println_in_library(p("services/x/src/main.rs"), planted).is_empty());
    assert!(println_in_library(p("crates/guardline/src/demo.rs"), planted).is_empty(), "the CLI prints");
}

fn src(path: &str, text: &str) -> Source {
    Source { path: PathBuf::from(path), text: text.to_owned() }
}

#[test]
fn crate_paths_read_single_and_grouped_uses() {
    let found =
        graph::crate_paths("use crate::a::B;\nuse crate::{b, c::D, self};\nlet x = crate::d::f(); // crate::e\n");
    assert_eq!(found, BTreeSet::from(["a", "b", "c", "d"].map(String::from)));
    assert!(graph::crate_paths("$crate::a::b()").is_empty(), "a macro's $crate is not an edge");
}

#[test]
fn a_module_cycle_is_caught() {
    let planted = [
        src("services/x/src/service.rs", "use crate::dnc::INTERNAL;\n"),
        src("services/x/src/dnc.rs", "use crate::service::Caller;\n"),
        src("services/x/src/grpc.rs", "use crate::service::Caller;\n"),
        src("services/y/src/a.rs", "use crate::b::X;\n"),
    ];
    let found = graph::module_cycles(&planted);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].message.contains("dnc, service"), "{}", found[0].message);
    let test_only = [
        src("services/x/src/a.rs", "use crate::b::X;\n"),
        src("services/x/src/b.rs", "//! b\n#[cfg(test)]\nmod tests {\n    use crate::a::Y;\n}\n"),
    ];
    assert!(graph::module_cycles(&test_only).is_empty(), "test code may reach back");
    let three = BTreeMap::from([
        ("a".to_owned(), BTreeSet::from(["b".to_owned()])),
        ("b".to_owned(), BTreeSet::from(["c".to_owned()])),
        ("c".to_owned(), BTreeSet::from(["a".to_owned()])),
    ]);
    assert_eq!(graph::cycles(&three).len(), 1);
}

#[test]
fn an_unused_dependency_is_caught() {
    let manifest = src(
        "crates/x/Cargo.toml",
        "[package]\nname = \"x\"\n\n[package.metadata.cargo-machete]\nignored = [\"prost-types\"]\n\n[dependencies]\nserde.workspace = true\nrand = \"0.9\"\nprost-types = \"0.14\"\n\n[dev-dependencies]\ntokio-test = { version = \"0.4\" }\n",
    );
    let sources = [
        src("crates/x/src/lib.rs", "//! x\nuse serde::Serialize;\n"),
        src("crates/x/tests/t.rs", "//! t\nfn a() { tokio_test::block_on(async {}) }\n"),
        src("crates/y/src/lib.rs", "use rand::Rng;\n"),
    ];
    let found = deps::unused_dependencies(&manifest, &sources);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].message.contains("`rand`"));
    assert_eq!(found[0].line, 9);
    assert!(
        deps::unused_dependencies(&manifest, &[src("crates/x/src/lib.rs", "randomly(); serde_json")])
            .iter()
            .any(|v| v.message.contains("`serde`")),
        "a longer name is not a use"
    );
}

#[test]
fn an_uninstrumented_handler_is_caught() {
    let planted = "impl LeadVaultService for Api {\n    #[tracing::instrument(skip_all, fields(rpc = \"a\"))]\n    async fn a(&self) {}\n\n    async fn b(&self) {}\n}\n\nimpl Api {\n    async fn helper(&self) {}\n}\n";
    let found = uninstrumented_handlers(p("services/x/src/grpc/mod.rs"), planted);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].line, 5);
    assert!(uninstrumented_handlers(p("services/x/src/service.rs"), planted).is_empty());
}

#[test]
fn a_contracting_migration_is_caught_unless_marked() {
    let planted = "m.drop_\u{74}able(Table::drop().table(t(\"old\")).to_owned()).await?;\n";
    assert_eq!(contracting_migrations(p("services/x/src/store/migration.rs"), planted).len(), 1);
    let sql = "db.execute_unprepared(\"ALTER TABLE t DROP COLU\u{4d}N c\").await?;\n";
    assert_eq!(contracting_migrations(p("crates/keys/src/store.rs"), sql).len(), 1);
    let marked = "m.drop_\u{74}able(x).await?; // contract: 0.3 stopped reading it\n";
    assert!(contracting_migrations(p("services/x/src/store/migration.rs"), marked).is_empty());
    assert!(contracting_migrations(p("services/x/src/service/mod.rs"), planted).is_empty(), "migrations only");
}

//! Audit's memory as its logs grow, against the tree of every node that
//! audit held before (a ratio measured in the same run), and what the tiles
//! cost a proof. Heap bytes are counted by a global allocator.
//! - 10M events in one tenant, and 100 tenants × 100k, as trees;
//! - through the real service and store (SQLite): `Log::append` of
//!   `GUARDLINE_BENCH_EVENTS` events (default 1,000,000), then a fresh `Log`
//!   (a restart) serving the head and proofs: the heap it keeps;
//! - an inclusion proof from tiles read from the store vs from the tree of
//!   every node in memory.
//!
//! Run: `cargo bench -p guardline-audit --bench memory`

mod support;

use std::alloc::System;
use std::time::Instant;

use guardline_audit::domain::canonical::Event;
use guardline_audit::domain::merkle::{Tree, leaf_hash};
use guardline_audit::domain::tiles::TiledTree;
use guardline_audit::service::Log;
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bytes allocated and not freed so far.
fn heap() -> isize {
    let s = GLOBAL.stats();
    s.bytes_allocated as isize - s.bytes_deallocated as isize
}

fn mb(b: isize) -> String {
    format!("{:.2} MB", b as f64 / 1e6)
}

/// Heap held by `make()`'s result.
fn held<T>(make: impl FnOnce() -> T) -> (isize, T) {
    let before = heap();
    let t = make();
    (heap() - before, t)
}

fn leaves(tenant: u64, n: u64) -> impl Iterator<Item = [u8; 32]> {
    (0..n).map(move |i| leaf_hash(&[tenant.to_be_bytes(), i.to_be_bytes()].concat()))
}

fn trees(tenants: u64, each: u64) {
    let (whole, w) = held(|| (0..tenants).map(|t| Tree::from_leaves(leaves(t, each))).collect::<Vec<_>>());
    drop(w);
    let (tiled, t) = held(|| {
        (0..tenants)
            .map(|t| {
                let mut tree = TiledTree::new();
                leaves(t, each).for_each(|l| {
                    tree.push(l);
                });
                tree
            })
            .collect::<Vec<_>>()
    });
    drop(t);
    println!(
        "{tenants} tenant(s) x {each} events: every node {}, tiled {}, ratio tiled/every node {:.4}",
        mb(whole),
        mb(tiled),
        tiled as f64 / whole as f64
    );
}

fn ev(i: u64) -> Event {
    Event {
        id: format!("bench-{i}"),
        tenant_id: "t1".into(),
        time: chrono::DateTime::from_timestamp(1_790_000_000, 0).expect("time"),
        actor_user: "u-1".into(),
        action: "lead.update".into(),
        resource_type: "lead".into(),
        resource_id: format!("lead-{i}"),
        outcome: "allowed".into(),
        ..Default::default()
    }
}

async fn service(n: u64) {
    let dir = tempfile::tempdir().expect("tmp");
    let (db, envelope) = support::sqlite(dir.path()).await;
    let open = || Log::open(guardline_audit::store::log::Store::new(db.clone()), envelope.clone());
    let log = open().await.expect("log");
    let start = Instant::now();
    for b in 0..n / 1000 {
        log.append((b * 1000..(b + 1) * 1000).map(ev).collect()).await.expect("append");
    }
    println!("appended {n} events in {:.1?}", start.elapsed());
    drop(log);

    // A restart: what a replica holds to serve the tenant.
    let before = heap();
    let log = open().await.expect("log");
    let head = log.head("t1").await.expect("head").expect("a head");
    let _ = log.inclusion("t1", "bench-12345", n).await.expect("proof");
    let kept = heap() - before;
    let whole = held(|| Tree::from_leaves(leaves(0, n))).0;
    println!(
        "service after a restart, {} events: heap kept {} (every node: {}), ratio {:.4}",
        head.head.tree_size,
        mb(kept),
        mb(whole),
        kept as f64 / whole as f64
    );

    // A proof from tiles in the store vs from every node in memory.
    let mem = Tree::from_leaves(leaves(0, n));
    let samples = 2_000u64;
    let t = Instant::now();
    for i in 0..samples {
        std::hint::black_box(mem.inclusion_proof((i * 7919) % n, n).expect("proof"));
    }
    let in_memory = t.elapsed() / samples as u32;
    let t = Instant::now();
    for i in 0..samples {
        let id = format!("bench-{}", (i * 7919) % n);
        std::hint::black_box(log.inclusion("t1", &id, n).await.expect("proof"));
    }
    let tiled = t.elapsed() / samples as u32;
    println!(
        "inclusion proof at {n}: every node in memory {in_memory:.2?}, from tiles via the store {tiled:.2?} (incl. the entry lookup), ratio {:.0}",
        tiled.as_secs_f64() / in_memory.as_secs_f64()
    );
}

fn main() {
    trees(1, 10_000_000);
    trees(100, 100_000);
    let n = std::env::var("GUARDLINE_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(service(n));
}

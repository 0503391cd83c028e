//! Audit benchmarks. Each result is a ratio to a baseline measured in the
//! same run (these machines are noisy):
//! - batched appends (tree, signed head per entry, dedup) vs plain inserts of
//!   the same rows into the same table;
//! - inclusion and consistency proofs at 1M events vs one leaf hash.
//!
//! Run: `cargo bench -p guardline-audit --bench log`

mod support;

use std::time::{Duration, Instant};

use guardline_audit::domain::canonical::Event;
use guardline_audit::domain::merkle::{Tree, leaf_hash};
use guardline_audit::service::Log;
use guardline_audit::store::event;
use sea_orm::{ActiveValue::Set, EntityTrait, TransactionTrait};

fn ev(i: u64) -> Event {
    Event {
        id: format!("bench-{i}"),
        tenant_id: "t1".into(),
        time: chrono::Utc::now(),
        actor_user: "u-1".into(),
        action: "lead.update".into(),
        resource_type: "lead".into(),
        resource_id: format!("lead-{i}"),
        outcome: "allowed".into(),
        details: [("fields".to_owned(), "name,notes".to_owned())].into(),
        ..Default::default()
    }
}

fn per_sec(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

async fn appends(batches: u64, batch: u64) {
    let dir = tempfile::tempdir().expect("tmp");
    let (db, envelope) = support::sqlite(dir.path()).await;
    let log = Log::open(guardline_audit::store::log::Store::new(db.clone()), envelope).await.expect("log");

    // Baseline: the same rows, inserted in the same batches, without tree, signature or dedup.
    let start = Instant::now();
    for b in 0..batches {
        let txn = db.begin().await.expect("txn");
        for i in 0..batch {
            let n = b * batch + i;
            let e = ev(1_000_000 + n);
            event::Entity::insert(event::ActiveModel {
                tenant_id: Set("baseline".into()),
                idx: Set(n as i64),
                event_id: Set(e.id.clone()),
                time: Set(e.time),
                actor_user: Set(e.actor_user.clone()),
                action: Set(e.action.clone()),
                resource_type: Set(e.resource_type.clone()),
                resource_id: Set(e.resource_id.clone()),
                outcome: Set(e.outcome.clone()),
                entry: Set(e.encode()),
                leaf_hash: Set(vec![0; 32]),
                head_ts: Set(0),
                head_kid: Set(String::new()),
                head_sig: Set(vec![0; 64]),
            })
            .exec(&txn)
            .await
            .expect("insert");
        }
        txn.commit().await.expect("commit");
    }
    let plain = start.elapsed();

    let start = Instant::now();
    for b in 0..batches {
        log.append((0..batch).map(|i| ev(b * batch + i)).collect()).await.expect("append");
    }
    let audited = start.elapsed();
    let n = batches * batch;
    println!("appends, SQLite, {batches} batches of {batch}:");
    println!("  plain inserts (baseline)   {:>10.0} events/s", per_sec(n, plain));
    println!("  Log::append                {:>10.0} events/s", per_sec(n, audited));
    println!("  ratio append / baseline    {:>10.2}", audited.as_secs_f64() / plain.as_secs_f64());
}

fn proofs(size: u64, samples: u64) {
    let start = Instant::now();
    let tree = Tree::from_leaves((0..size).map(|i| leaf_hash(&i.to_be_bytes())));
    let build = start.elapsed();

    // Baseline: one leaf hash (a SHA-256 of a short entry).
    let start = Instant::now();
    let mut sink = 0u8;
    for i in 0..samples * 10 {
        sink ^= leaf_hash(&i.to_be_bytes())[0];
    }
    let one_hash = start.elapsed() / (samples * 10) as u32;

    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let start = Instant::now();
    for _ in 0..samples {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let idx = x % size;
        sink ^= tree.inclusion_proof(idx, size).expect("proof").len() as u8;
    }
    let inclusion = start.elapsed() / samples as u32;
    let start = Instant::now();
    for k in 0..samples {
        let m = 1 + (k * 7919) % (size - 1);
        sink ^= tree.consistency_proof(m, size).expect("proof").len() as u8;
    }
    let consistency = start.elapsed() / samples as u32;
    println!("proofs at {size} events ({sink:x}):");
    println!("  tree load (all leaves)            {:>10.2?}", build);
    println!("  one leaf hash (baseline)          {:>10.2?}", one_hash);
    println!(
        "  inclusion proof                   {:>10.2?}  = {:.1} leaf hashes",
        inclusion,
        inclusion.as_secs_f64() / one_hash.as_secs_f64()
    );
    println!(
        "  consistency proof                 {:>10.2?}  = {:.1} leaf hashes",
        consistency,
        consistency.as_secs_f64() / one_hash.as_secs_f64()
    );
}

fn main() {
    guardline_runtime::tls::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(appends(50, 200));
    proofs(1_000_000, 10_000);
}

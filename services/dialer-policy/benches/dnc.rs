//! The national do-not-call registry in memory: bytes per number and lookup
//! time of the Elias–Fano [`NumberSet`] at growing sizes up to 300 million
//! synthetic US numbers, next to an indexed PostgreSQL lookup of the same
//! numbers (a `bigint` primary key, one prepared query per lookup over
//! loopback) and a binary search of the sorted numbers in a plain `Vec<u64>`,
//! in the same run.
//!
//! Run: `cargo bench -p guardline-dialer-policy --bench dnc`
//! (`GUARDLINE_BENCH_MAX=30000000` caps the largest size; PostgreSQL comes
//! from `scripts/test-deps.sh`).

use std::time::Instant;

use guardline_dialer_policy::domain::numbers::NumberSet;

/// A deterministic stream of synthetic US numbers (+1 and ten digits, area
/// codes 200–999), as E.164 integers.
struct Numbers(u64);

impl Numbers {
    fn next(&mut self) -> u64 {
        // xorshift64*: fast, deterministic, good enough to spread numbers.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let r = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        10_000_000_000 + 2_000_000_000 + r % 8_000_000_000
    }
}

fn queries(set_seed: u64, n: usize, count: usize) -> Vec<u64> {
    // Half are numbers of the set (replayed from its seed), half are fresh.
    let mut members = Numbers(set_seed);
    let mut others = Numbers(0x9E37_79B9_7F4A_7C15);
    let stride = (n / (count / 2)).max(1);
    let mut q = Vec::with_capacity(count);
    for i in 0..n {
        let x = members.next();
        if i % stride == 0 && q.len() < count / 2 {
            q.push(x);
        }
    }
    while q.len() < count {
        q.push(others.next());
    }
    q
}

fn ns_per(start: Instant, count: usize) -> f64 {
    start.elapsed().as_nanos() as f64 / count as f64
}

#[tokio::main]
async fn main() {
    let max: usize = std::env::var("GUARDLINE_BENCH_MAX").ok().and_then(|v| v.parse().ok()).unwrap_or(300_000_000);
    const SEED: u64 = 0x1234_5678_9ABC_DEF1;
    const QUERIES: usize = 2_000_000;
    println!("| numbers | build | bytes/number | Elias–Fano lookup | sorted Vec lookup | hits |");
    println!("|---|---|---|---|---|---|");
    let mut sizes = vec![1_000_000usize, 10_000_000, 100_000_000, 300_000_000];
    sizes.retain(|s| *s <= max);
    for n in sizes {
        let mut g = Numbers(SEED);
        let numbers: Vec<u64> = (0..n).map(|_| g.next()).collect();
        let t = Instant::now();
        let set = NumberSet::from_unsorted(numbers);
        let build = t.elapsed();
        let qs = queries(SEED, n, QUERIES);
        let t = Instant::now();
        let hits = qs.iter().filter(|q| set.contains(**q)).count();
        let ef = ns_per(t, qs.len());
        let sorted: Vec<u64> = set.iter().collect();
        let t = Instant::now();
        let hits_vec = qs.iter().filter(|q| sorted.binary_search(q).is_ok()).count();
        let vec_ns = ns_per(t, qs.len());
        assert_eq!(hits, hits_vec);
        println!(
            "| {n} | {:.1} s | {:.3} | {ef:.0} ns | {vec_ns:.0} ns | {:.1}% |",
            build.as_secs_f64(),
            set.heap_bytes() as f64 / set.len() as f64,
            100.0 * hits as f64 / qs.len() as f64
        );
    }

    // PostgreSQL, indexed: the same synthetic numbers, generated server-side.
    let pg_n: usize = 10_000_000.min(max);
    let Ok(pg) = guardline_testkit::Postgres::shared().await else {
        println!("PostgreSQL not available: skipping the indexed-table comparison");
        return;
    };
    let url = pg.database().await.expect("db");
    let mut g = Numbers(SEED);
    let numbers: Vec<u64> = (0..pg_n).map(|_| g.next()).collect();
    let set = NumberSet::from_unsorted(numbers.clone());
    let csv: String = numbers.iter().map(|n| format!("{n}\n")).collect();
    let path = std::env::temp_dir().join("guardline-dnc-bench.csv");
    std::fs::write(&path, csv).expect("csv");
    let t = Instant::now();
    pg.psql(&url, "CREATE TABLE dnc (n bigint)").await.expect("table");
    pg.psql(&url, &format!("\\copy dnc FROM '{}'", path.display())).await.expect("copy");
    pg.psql(
        &url,
        "CREATE TABLE dnc_pk AS SELECT DISTINCT n FROM dnc; ALTER TABLE dnc_pk ADD PRIMARY KEY (n); ANALYZE dnc_pk",
    )
    .await
    .expect("index");
    let load = t.elapsed();
    let _ = std::fs::remove_file(&path);
    let args =
        guardline_runtime::args::DatabaseArgs { database_url: url, database_max_connections: 1, database_schema: None };
    let db = guardline_runtime::storage::connect(&args).await.expect("connect");
    use sea_orm::{ConnectionTrait, Statement};
    let qs = queries(SEED, pg_n, 20_000);
    let t = Instant::now();
    let mut hits = 0;
    for q in &qs {
        let row = db
            .query_one_raw(Statement::from_sql_and_values(
                sea_orm::DatabaseBackend::Postgres,
                "SELECT 1 FROM dnc_pk WHERE n = $1",
                [(*q as i64).into()],
            ))
            .await
            .expect("query");
        hits += usize::from(row.is_some());
    }
    let pg_ns = ns_per(t, qs.len());
    let t = Instant::now();
    let ef_hits = qs.iter().filter(|q| set.contains(**q)).count();
    let ef_ns = ns_per(t, qs.len());
    assert_eq!(hits, ef_hits);
    println!();
    println!("| {pg_n} numbers | lookup | ratio to Elias–Fano |");
    println!("|---|---|---|");
    println!("| Elias–Fano in memory (baseline) | {ef_ns:.0} ns | 1 |");
    println!(
        "| PostgreSQL primary key, prepared query on loopback (load {:.0} s) | {:.0} µs | {:.0} |",
        load.as_secs_f64(),
        pg_ns / 1000.0,
        pg_ns / ef_ns
    );
}

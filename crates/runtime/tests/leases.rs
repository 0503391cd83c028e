//! A lease has one holder at a time, runs out at its term by the server's
//! clock, and passes to another replica then; on SQLite and PostgreSQL.

use std::time::Duration;

use guardline_runtime::args::DatabaseArgs;
use guardline_runtime::clock::ManualClock;
use guardline_runtime::lease::Leases;
use sea_orm_migration::prelude::*;

struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        guardline_runtime::lease::migrations()
    }
    fn migration_table_name() -> DynIden {
        "guardline_lease_test_migrations".into_iden()
    }
}

async fn database(postgres: bool) -> (DatabaseArgs, Option<tempfile::TempDir>) {
    if postgres {
        let pg = guardline_testkit::Postgres::shared().await.expect("postgres");
        let url = pg.database().await.expect("database");
        (DatabaseArgs { database_url: url, database_max_connections: 4, database_schema: None }, None)
    } else {
        let dir = tempfile::tempdir().expect("tmp");
        let url = format!("sqlite://{}", dir.path().join("l.db").display());
        (DatabaseArgs { database_url: url, database_max_connections: 4, database_schema: None }, Some(dir))
    }
}

const TERM: Duration = Duration::from_secs(30);

async fn one_holder_then_the_next(postgres: bool) {
    let (args, _dir) = database(postgres).await;
    let clock = ManualClock::default();
    let replica = || async {
        let db = guardline_runtime::storage::open::<Migrator>(&args).await.expect("db");
        Leases::new(db, clock.clock())
    };
    let (a, b) = (replica().await, replica().await);
    assert!(a.acquire("job", TERM).await.expect("a"), "a free lease is taken");
    assert!(!b.acquire("job", TERM).await.expect("b"), "a held lease is not");
    clock.advance(chrono::Duration::seconds(20));
    assert!(a.acquire("job", TERM).await.expect("a again"), "the holder extends it");
    clock.advance(chrono::Duration::seconds(20));
    assert!(!b.acquire("job", TERM).await.expect("b"), "extended: still a's");
    assert_eq!(b.holder_of("job").await.expect("holder").map(|h| h.0), Some(a.holder().to_owned()));

    // a stops renewing (it died): at its term b takes over, and a has lost it.
    clock.advance(chrono::Duration::seconds(31));
    assert!(b.acquire("job", TERM).await.expect("b"), "a lease past its term passes on");
    assert!(!a.renew("job", TERM).await.expect("renew"), "the old holder learns it lost the lease");
    assert!(!a.acquire("job", TERM).await.expect("a"), "and cannot take it back while b holds it");
    assert!(b.renew("job", TERM).await.expect("renew"));
    b.release("job").await.expect("release");
    assert!(a.acquire("job", TERM).await.expect("a"), "a released lease is free at once");
    assert!(b.acquire("other", TERM).await.expect("other"), "leases are by name");

    // Many replicas at once for a free lease: exactly one gets it.
    let many = futures::future::join_all((0..8).map(|_| replica())).await;
    let won = futures::future::join_all(many.iter().map(|l| l.acquire("contended", TERM))).await;
    assert_eq!(won.into_iter().map(|w| w.expect("acquire")).filter(|w| *w).count(), 1);
}

guardline_testkit::on_both_stores!(one_holder_then_the_next);

//! Every pooled connection commits durably, whatever the server's default:
//! SQLite in WAL mode with `synchronous=FULL`, PostgreSQL with
//! `synchronous_commit=on` for the session.

use guardline_runtime::args::DatabaseArgs;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

async fn one(db: &DatabaseConnection, sql: &str) -> String {
    one_in(db, sql).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_commits_are_fsynced_on_every_connection() {
    let dir = tempfile::tempdir().expect("tmp");
    let url = format!("sqlite://{}", dir.path().join("d.db").display());
    let args = DatabaseArgs { database_url: url, database_max_connections: 3, database_schema: None };
    let db = guardline_runtime::storage::connect(&args).await.expect("db");
    // Held at once, so they are three different connections of the pool.
    let conns = futures::future::join_all((0..3).map(|_| async {
        let txn = sea_orm::TransactionTrait::begin(&db).await.expect("txn");
        let mode = one_in(&txn, "PRAGMA journal_mode").await;
        let sync = one_in(&txn, "PRAGMA synchronous").await;
        (txn, mode, sync)
    }))
    .await;
    for (_, mode, sync) in &conns {
        assert_eq!((mode.as_str(), sync.as_str()), ("wal", "2"), "WAL with synchronous=FULL (2)");
    }
}

async fn one_in(c: &impl ConnectionTrait, sql: &str) -> String {
    let row = c.query_one_raw(Statement::from_string(c.get_database_backend(), sql)).await.expect("q").expect("row");
    row.try_get_by_index::<String>(0)
        .or_else(|_| row.try_get_by_index::<i32>(0).map(|v| v.to_string()))
        .expect("a value")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_commits_wait_for_their_flush_even_if_the_server_says_otherwise() {
    let pg = guardline_testkit::Postgres::shared().await.expect("postgres");
    let url = pg.database().await.expect("database");
    let args = DatabaseArgs { database_url: url.clone(), database_max_connections: 2, database_schema: None };
    let db = guardline_runtime::storage::connect(&args).await.expect("db");
    let name = one(&db, "SELECT current_database()").await;
    db.execute_unprepared(&format!("ALTER DATABASE \"{name}\" SET synchronous_commit = off")).await.expect("alter");
    db.close().await.expect("close");
    let db = guardline_runtime::storage::connect(&args).await.expect("db");
    assert_eq!(one(&db, "SHOW synchronous_commit").await, "on");
}

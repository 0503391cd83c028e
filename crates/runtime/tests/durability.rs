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

/// A statement the database cannot run because it is unreachable or no
/// longer the primary is UNAVAILABLE (retry), not INTERNAL: here a write on
/// a streaming standby (SQLSTATE 25006, as from a demoted primary behind
/// the endpoint). A pool whose database restarted reconnects by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_or_demoted_database_is_unavailable() {
    let pair = guardline_testkit::ReplicatedPostgres::start().await.expect("postgres pair");
    let name = pair.create_database().await.expect("database");
    let url = |port: u16| format!("postgres://postgres@127.0.0.1:{port}/{name}");
    let args = |port| DatabaseArgs { database_url: url(port), database_max_connections: 1, database_schema: None };
    let primary = guardline_runtime::storage::connect(&args(pair.primary_port())).await.expect("primary");
    primary.execute_unprepared("CREATE TABLE t (id int)").await.expect("table");
    // The standby has flushed the new database; it shows once replayed.
    let mut standby = None;
    for _ in 0..100 {
        if let Ok(db) = guardline_runtime::storage::connect(&args(pair.standby_port())).await {
            standby = Some(db);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let standby = standby.expect("the standby replays the database");
    let refused: guardline_runtime::Error =
        standby.execute_unprepared("INSERT INTO t VALUES (1)").await.expect_err("read-only").into();
    assert_eq!(tonic::Status::from(refused).code(), tonic::Code::Unavailable);
    // The primary crashes and restarts under an open pool: the pool finds
    // its connection dead when it hands it out, and opens another.
    pair.crash_restart_primary().await.expect("restart");
    primary.execute_unprepared("INSERT INTO t VALUES (3)").await.expect("the pool reconnects by itself");
    // Bad SQL stays INTERNAL.
    let bad: guardline_runtime::Error =
        primary.execute_unprepared("INSERT INTO nope VALUES (1)").await.expect_err("bad").into();
    assert_eq!(tonic::Status::from(bad).code(), tonic::Code::Internal);
}

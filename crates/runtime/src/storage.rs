//! Opening the service database from a URL: `sqlite://` (the embedded
//! default, created if missing, WAL mode) or `postgres://`.

use std::time::Duration;

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, TransactionTrait};

use crate::args::DatabaseArgs;
use crate::error::{Error, Result};

/// Connects; for SQLite creates the file and its directory and enables WAL so
/// readers do not block the writer.
pub async fn connect(args: &DatabaseArgs) -> Result<DatabaseConnection> {
    args.validate()?;
    let mut url = args.database_url.clone();
    let sqlite = url.starts_with("sqlite:");
    if sqlite {
        let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
        let path = path.split('?').next().unwrap_or(path);
        if let Some(parent) = std::path::Path::new(path).parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        if !url.contains("mode=") {
            url.push_str(if url.contains('?') { "&mode=rwc" } else { "?mode=rwc" });
        }
    }
    if let (false, Some(schema)) = (sqlite, &args.database_schema) {
        // The schema must exist before a pool can use it as its search path.
        // Replicas starting at once create it one after the other: two
        // concurrent `CREATE SCHEMA IF NOT EXISTS` can still collide.
        let bootstrap = Database::connect(ConnectOptions::new(url.clone()).sqlx_logging(false).to_owned())
            .await
            .map_err(|e| Error::Storage(format!("connecting: {e}")))?;
        let txn = bootstrap.begin().await?;
        lock_for_this_transaction(&txn, "guardline-schemas").await?;
        txn.execute_unprepared(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"")).await?;
        txn.commit().await?;
        bootstrap.close().await?;
    }
    let mut opts = ConnectOptions::new(url);
    if let (false, Some(schema)) = (sqlite, &args.database_schema) {
        opts.set_schema_search_path(schema.clone());
    }
    opts.max_connections(args.database_max_connections)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(10))
        // No idle timeout and no maximum lifetime, so sqlx starts no pool
        // maintenance task: in sqlx-core 0.9.0 that task can spin a core
        // forever once its idle count underflows (transact-rs/sqlx#3645,
        // fixed upstream by #4289, not released yet); seen here as a test
        // hung at 100% CPU in `spawn_maintenance_tasks`.
        .idle_timeout(None::<Duration>)
        .max_lifetime(None::<Duration>)
        // Statement logging stays off: parameters may be PII.
        .sqlx_logging(false);
    durable(&mut opts);
    let db = Database::connect(opts).await.map_err(|e| Error::Storage(format!("connecting: {e}")))?;
    Ok(db)
}

/// The settings that make a commit durable when it returns, on every
/// connection of the pool (docs/reliability.md). SQLite: write-ahead log
/// with `synchronous=FULL`, so each commit is fsynced (NORMAL could lose the
/// last commits at a power cut). PostgreSQL: `synchronous_commit=on` for the
/// session, whatever the server's default, so a commit waits for its WAL
/// flush, and for a synchronous standby's where one is configured.
fn durable(opts: &mut ConnectOptions) {
    use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
    opts.map_sqlx_sqlite_opts(|o| o.journal_mode(SqliteJournalMode::Wal).synchronous(SqliteSynchronous::Full));
    opts.map_sqlx_postgres_opts(|o| o.options([("synchronous_commit", "on")]));
}

/// Begins a transaction that will write. On SQLite it takes the write lock
/// up front (`BEGIN IMMEDIATE`): a deferred transaction that reads and then
/// writes fails with SQLITE_BUSY_SNAPSHOT when another connection committed in
/// between, which busy timeouts cannot cure. PostgreSQL ignores the mode.
pub async fn write_txn(db: &DatabaseConnection) -> Result<sea_orm::DatabaseTransaction, sea_orm::DbErr> {
    use sea_orm::TransactionTrait;
    db.begin_with_options(sea_orm::TransactionOptions {
        sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
        ..Default::default()
    })
    .await
}

/// Connects and brings the service's schema up to date with its migrator.
/// Each service names its own migration table, so services may share a database.
pub async fn open<M: sea_orm_migration::MigratorTrait>(args: &DatabaseArgs) -> Result<DatabaseConnection> {
    let db = connect(args).await?;
    migrate::<M>(&db).await?;
    Ok(db)
}

/// Brings the schema up to date with `M`. On PostgreSQL every pending
/// migration runs in one transaction under an advisory lock named by the
/// migration table, so replicas that start at once migrate one after the
/// other (the later ones find nothing to do) and a failed migration leaves
/// nothing half-done. SQLite is one process's file.
pub async fn migrate<M: sea_orm_migration::MigratorTrait>(db: &DatabaseConnection) -> Result<()> {
    let failed = |e: sea_orm::DbErr| Error::Storage(format!("migrations: {e}"));
    if db.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
        return M::up(db, None).await.map_err(failed);
    }
    let txn = db.begin().await?;
    lock_for_this_transaction(&txn, &M::migration_table_name().to_string()).await?;
    M::up(&txn, None).await.map_err(failed)?;
    txn.commit().await?;
    Ok(())
}

/// Takes PostgreSQL's transaction-scoped advisory lock named `name`,
/// waiting for whoever holds it.
async fn lock_for_this_transaction(txn: &sea_orm::DatabaseTransaction, name: &str) -> Result<()> {
    let lock = sea_orm::Statement::from_sql_and_values(
        sea_orm::DatabaseBackend::Postgres,
        "SELECT pg_advisory_xact_lock(hashtext($1))",
        [name.into()],
    );
    txn.execute_raw(lock).await?;
    Ok(())
}

//! Opening the service database from a URL: `sqlite://` (the embedded
//! default, created if missing, WAL mode) or `postgres://`.

use std::time::Duration;

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};

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
    let mut opts = ConnectOptions::new(url);
    opts.max_connections(args.database_max_connections)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(10))
        // Statement logging stays off: parameters may be PII.
        .sqlx_logging(false);
    let db = Database::connect(opts).await.map_err(|e| Error::Storage(format!("connecting: {e}")))?;
    if sqlite {
        db.execute_unprepared("PRAGMA journal_mode=WAL").await?;
    }
    Ok(db)
}

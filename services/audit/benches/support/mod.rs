//! What the audit benchmarks share: the log on an embedded store.

use std::sync::Arc;
use std::time::Duration;

/// A fresh SQLite database in `dir`, migrated, and the envelope of a
/// fresh local keyring over it: what `Log::open` needs.
pub async fn sqlite(dir: &std::path::Path) -> (sea_orm::DatabaseConnection, Arc<guardline_keys::Envelope>) {
    let url = format!("sqlite://{}", dir.join("bench.db").display());
    let args =
        guardline_runtime::args::DatabaseArgs { database_url: url, database_max_connections: 4, database_schema: None };
    let db = guardline_runtime::storage::open::<guardline_audit::store::Migrator>(&args).await.expect("db");
    let key = guardline_keys::SecretKey::generate().expect("k");
    let keyring = guardline_keys::local::LocalKeyring::open(&dir.join("k.json"), key).expect("keyring");
    let envelope = Arc::new(guardline_keys::Envelope::new(Arc::new(keyring), db.clone(), Duration::from_secs(60)));
    (db, envelope)
}

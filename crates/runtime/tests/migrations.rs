//! Replicas that start at once on one PostgreSQL database migrate one after
//! the other: every start succeeds and each migration runs once.

use guardline_runtime::args::DatabaseArgs;
use sea_orm::ConnectionTrait;
use sea_orm_migration::prelude::*;

/// Creates a table without `IF NOT EXISTS`, as a real schema change would:
/// run twice at once, one of the two fails.
struct CreateThings;

impl MigrationName for CreateThings {
    fn name(&self) -> &str {
        "m20261208_000001_things"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateThings {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Alias::new("things"))
                .col(ColumnDef::new(Alias::new("id")).string().not_null().primary_key())
                .to_owned(),
        )
        .await
    }
}

struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(CreateThings)]
    }
    fn migration_table_name() -> DynIden {
        "guardline_test_migrations".into_iden()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_at_once_migrate_once() {
    let pg = guardline_testkit::Postgres::shared().await.expect("postgres");
    for schema in [None, Some("svc".to_owned())] {
        let url = pg.database().await.expect("database");
        let args = DatabaseArgs { database_url: url, database_max_connections: 2, database_schema: schema };
        let starts = (0..6).map(|_| {
            let args = args.clone();
            tokio::spawn(async move { guardline_runtime::storage::open::<Migrator>(&args).await.map(|_| ()) })
        });
        for (i, started) in futures::future::join_all(starts).await.into_iter().enumerate() {
            started.expect("task").unwrap_or_else(|e| panic!("replica {i} failed to start: {e}"));
        }
        let db = guardline_runtime::storage::connect(&args).await.expect("db");
        let rows = db
            .query_all_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                "SELECT version FROM guardline_test_migrations",
            ))
            .await
            .expect("migrations");
        assert_eq!(rows.len(), 1, "the migration ran once");
    }
}

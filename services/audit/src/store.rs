//! Storage of audit: its migrator, holding the shared tables (audit outbox)
//! and, once its issue lands, its own.

use sea_orm_migration::prelude::*;

/// Migrations of audit, tracked in their own table so that services may
/// share one database.
#[derive(Debug)]
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        #[allow(unused_mut, reason = "services with keys add theirs")]
        let mut m = guardline_audit_client::migrations();
        m
    }

    fn migration_table_name() -> DynIden {
        "guardline_audit_migrations".into_iden()
    }
}

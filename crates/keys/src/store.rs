//! Wrapped tenant data keys, stored in the owning service's database. Only the
//! wrapped form is ever stored; the migration below is included in every
//! service's migrator.

use sea_orm::DbErr;
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{string, text, timestamp_with_time_zone};

/// The `guardline_tenant_data_keys` table.
pub mod entity {
    use sea_orm::entity::prelude::*;

    /// A tenant data key, wrapped by the tenant key.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "guardline_tenant_data_keys")]
    pub struct Model {
        /// Data key id.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// Tenant id.
        pub tenant_id: String,
        /// Wrapped key (`vault:v<N>:...` or `gl:v<N>:...`).
        pub wrapped: String,
        /// `active` (new record keys), `retiring` (still used), `retired`.
        pub state: String,
        /// Creation time.
        pub created_at: ChronoDateTimeUtc,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Data key states.
pub mod state {
    /// Wraps new record keys; at most one per tenant.
    pub const ACTIVE: &str = "active";
    /// Replaced, but some record keys are still wrapped by it.
    pub const RETIRING: &str = "retiring";
    /// No record key uses it any more.
    pub const RETIRED: &str = "retired";
}

#[derive(DeriveIden)]
enum DataKeys {
    #[sea_orm(iden = "guardline_tenant_data_keys")]
    Table,
    Id,
    TenantId,
    Wrapped,
    State,
    CreatedAt,
}

/// Creates the data-key table; at most one active key per tenant.
#[derive(Debug)]
pub struct CreateTenantDataKeys;

impl MigrationName for CreateTenantDataKeys {
    fn name(&self) -> &str {
        "m20261128_000001_guardline_tenant_data_keys"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateTenantDataKeys {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(DataKeys::Table)
                .if_not_exists()
                .col(string(DataKeys::Id).primary_key())
                .col(string(DataKeys::TenantId))
                .col(text(DataKeys::Wrapped))
                .col(string(DataKeys::State))
                .col(timestamp_with_time_zone(DataKeys::CreatedAt))
                .to_owned(),
        )
        .await?;
        // A partial unique index: both SQLite and PostgreSQL support it.
        m.get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX IF NOT EXISTS ux_guardline_tdk_active ON guardline_tenant_data_keys (tenant_id) WHERE state = 'active'",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(DataKeys::Table).to_owned()).await // contract: `down` only, never run by an upgrade
    }
}

/// The migrations this crate contributes to a service's migrator.
pub fn migrations() -> Vec<Box<dyn MigrationTrait>> {
    vec![Box::new(CreateTenantDataKeys)]
}

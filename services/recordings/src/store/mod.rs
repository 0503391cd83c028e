//! Recordings' storage: metadata (never audio) with each recording's sealed
//! key, its state (uploading, stored, purged, erased — tombstones stay), and
//! the shared outbox and data-key tables.

mod recordings;

pub use recordings::Store;

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, big_integer_null, binary, binary_null, boolean, string, text, timestamp_with_time_zone,
    timestamp_with_time_zone_null,
};

/// Recording metadata.
pub mod recording {
    use sea_orm::entity::prelude::*;
    /// One recording.
    #[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "recordings")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub call_id: String,
        pub lead_id: String,
        pub agent_id: String,
        pub team_id: String,
        pub caller_line: String,
        pub started_at: ChronoDateTimeUtc,
        pub duration_seconds: i64,
        pub format: String,
        pub consent_offset_ms: Option<i64>,
        pub consent_length_ms: Option<i64>,
        pub size_bytes: i64,
        pub sha256: Option<Vec<u8>>,
        pub nonce_prefix: Vec<u8>,
        pub key_data_key_id: String,
        pub key_sealed: Option<Vec<u8>>,
        pub object_path: String,
        pub state: String,
        pub stored_at: Option<ChronoDateTimeUtc>,
        pub retain_until: ChronoDateTimeUtc,
        pub retention_class: String,
        pub legal_hold: bool,
        pub legal_hold_reason: String,
        pub mac: Option<Vec<u8>>,
    }
    impl std::fmt::Debug for Model {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Recording").field("id", &self.id).field("state", &self.state).finish_non_exhaustive()
        }
    }
    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
    impl ActiveModelBehavior for ActiveModel {}
}

/// Uploads in flight and the replica receiving each: the sweep removes
/// one only when that replica's liveness lease has run out.
pub mod upload {
    use sea_orm::entity::prelude::*;
    /// One upload in flight.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "recording_uploads")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub recording_id: String,
        pub holder: String,
    }
    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
    impl ActiveModelBehavior for ActiveModel {}
}

/// Creates the table of uploads in flight (nothing else changes).
#[derive(Debug)]
struct CreateUploads;

impl MigrationName for CreateUploads {
    fn name(&self) -> &str {
        "m20261208_000500_recording_uploads"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateUploads {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Alias::new("recording_uploads"))
                .if_not_exists()
                .col(string(Alias::new("recording_id")).primary_key())
                .col(string(Alias::new("holder")))
                .to_owned(),
        )
        .await
    }
}

/// A tenant's retention classes.
pub mod retention_class {
    use sea_orm::entity::prelude::*;
    /// One class.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "recordings_retention_classes")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        pub min_days: i32,
        pub delete_after_days: i32,
    }
    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
    impl ActiveModelBehavior for ActiveModel {}
}

/// Recording states.
pub mod state {
    /// Audio is being received; invisible.
    pub const UPLOADING: &str = "uploading";
    /// Complete and readable.
    pub const STORED: &str = "stored";
    /// Deleted under retention; key destroyed; tombstone.
    pub const PURGED: &str = "purged";
    /// Deleted on an erasure request; key destroyed; tombstone.
    pub const ERASED: &str = "erased";
}

fn t(n: &str) -> Alias {
    Alias::new(n)
}

#[derive(Debug)]
struct CreateRecordings;

impl MigrationName for CreateRecordings {
    fn name(&self) -> &str {
        "m20261128_000300_recordings"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateRecordings {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(t("recordings"))
                .if_not_exists()
                .col(string(t("id")).primary_key())
                .col(string(t("tenant_id")))
                .col(string(t("call_id")))
                .col(string(t("lead_id")))
                .col(string(t("agent_id")))
                .col(string(t("team_id")))
                .col(string(t("caller_line")))
                .col(timestamp_with_time_zone(t("started_at")))
                .col(big_integer(t("duration_seconds")))
                .col(string(t("format")))
                .col(big_integer_null(t("consent_offset_ms")))
                .col(big_integer_null(t("consent_length_ms")))
                .col(big_integer(t("size_bytes")))
                .col(binary_null(t("sha256")))
                .col(binary(t("nonce_prefix")))
                .col(string(t("key_data_key_id")))
                .col(binary_null(t("key_sealed")))
                .col(text(t("object_path")))
                .col(string(t("state")))
                .col(timestamp_with_time_zone_null(t("stored_at")))
                .col(timestamp_with_time_zone(t("retain_until")))
                .col(string(t("retention_class")))
                .col(boolean(t("legal_hold")))
                .col(string(t("legal_hold_reason")))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(t("recordings_retention_classes"))
                .if_not_exists()
                .col(string(t("tenant_id")))
                .col(string(t("name")))
                .col(sea_orm_migration::schema::integer(t("min_days")))
                .col(sea_orm_migration::schema::integer(t("delete_after_days")))
                .primary_key(Index::create().col(t("tenant_id")).col(t("name")))
                .to_owned(),
        )
        .await?;
        for (name, col) in
            [("ix_recordings_lead", "lead_id"), ("ix_recordings_agent", "agent_id"), ("ix_recordings_call", "call_id")]
        {
            m.create_index(
                Index::create()
                    .if_not_exists()
                    .name(name)
                    .table(t("recordings"))
                    .col(t("tenant_id"))
                    .col(t(col))
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}

/// Adds the metadata MAC (nullable: rows stored before it are MACed by the
/// start-up upgrade).
#[derive(Debug)]
struct AddRecordingMac;

impl MigrationName for AddRecordingMac {
    fn name(&self) -> &str {
        "m20261208_000100_recordings_mac"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AddRecordingMac {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        if m.has_column("recordings", "mac").await? {
            return Ok(());
        }
        m.alter_table(Table::alter().table(t("recordings")).add_column(binary_null(t("mac"))).to_owned()).await
    }
}

/// Migrations of recordings, tracked in their own table.
#[derive(Debug)]
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut m = guardline_audit_client::migrations();
        m.extend(guardline_keys::store::migrations());
        m.push(Box::new(CreateRecordings));
        m.push(Box::new(AddRecordingMac));
        m.extend(guardline_runtime::lease::migrations());
        m.push(Box::new(CreateUploads));
        m
    }

    fn migration_table_name() -> DynIden {
        "guardline_recordings_migrations".into_iden()
    }
}

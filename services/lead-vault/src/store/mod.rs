//! The lead vault's storage: leads with every PII field sealed under the
//! lead's record key (itself wrapped by the tenant data key), phone blind
//! indexes for exact lookup, and the shared outbox and data-key tables.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, binary, binary_null, integer, string, text, timestamp_with_time_zone};

/// Leads.
pub mod lead {
    use sea_orm::entity::prelude::*;
    /// A lead. Only ids, scope and status are in clear.
    #[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "vault_leads")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub owner_id: String,
        pub team_id: String,
        pub status: String,
        pub version: i64,
        pub source: String,
        pub region: String,
        pub time_zone: String,
        pub tags: String,
        pub key_data_key_id: String,
        pub key_sealed: Option<Vec<u8>>,
        pub phones_sealed: Vec<u8>,
        pub name_sealed: Vec<u8>,
        pub address_sealed: Vec<u8>,
        pub needs_sealed: Vec<u8>,
        pub notes_sealed: Vec<u8>,
        pub mac: Vec<u8>,
        pub created_at: ChronoDateTimeUtc,
    }
    impl std::fmt::Debug for Model {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Lead").field("id", &self.id).field("version", &self.version).finish_non_exhaustive()
        }
    }
    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
    impl ActiveModelBehavior for ActiveModel {}
}

/// Blind indexes of leads' phone numbers.
pub mod phone_index {
    use sea_orm::entity::prelude::*;
    /// One phone of one lead.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "vault_phone_index")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub blind_index: Vec<u8>,
        pub lead_id: String,
        pub position: i32,
    }
    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
    impl ActiveModelBehavior for ActiveModel {}
}

/// Per-tenant secrets of the vault (the blind-index key), sealed.
pub mod tenant_secret {
    use sea_orm::entity::prelude::*;
    /// A sealed secret.
    #[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "vault_tenant_secrets")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub kind: String,
        pub data_key_id: String,
        pub sealed: Vec<u8>,
    }
    impl std::fmt::Debug for Model {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("TenantSecret").field("tenant_id", &self.tenant_id).finish_non_exhaustive()
        }
    }
    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
    impl ActiveModelBehavior for ActiveModel {}
}

/// Reveals per user per day, for the quota.
pub mod reveal_count {
    use sea_orm::entity::prelude::*;
    /// A counter.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "vault_reveal_counts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub day: String,
        pub count: i32,
    }
    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
    impl ActiveModelBehavior for ActiveModel {}
}

/// The consent ledger: kept for years, and after erasure without PII.
pub mod consent {
    use sea_orm::entity::prelude::*;
    /// One consent and its evidence.
    #[derive(Clone, Debug, Default, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "vault_consents")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub lead_id: String,
        pub blind_index: Vec<u8>,
        pub purpose: String,
        pub channel: String,
        pub form_sha256: Vec<u8>,
        pub disclosure_version: String,
        pub page_url: String,
        pub recording_id: String,
        pub recording_offset_ms: i64,
        pub recording_length_ms: i64,
        pub granted_at: ChronoDateTimeUtc,
        pub expires_at: Option<ChronoDateTimeUtc>,
        pub withdrawn_at: Option<ChronoDateTimeUtc>,
    }
    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
    impl ActiveModelBehavior for ActiveModel {}
}

/// Leads exported per tenant per day, for the export quota.
pub mod export_count {
    use sea_orm::entity::prelude::*;
    /// A counter.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "vault_export_counts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub day: String,
        pub count: i64,
    }
    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
    impl ActiveModelBehavior for ActiveModel {}
}

/// Data-key rotations: record keys re-wrapped in batches, resumable.
pub mod rotation {
    use sea_orm::entity::prelude::*;
    /// One rotation of a tenant's data key.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "vault_key_rotations")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        pub new_data_key_id: String,
        pub total: i64,
        pub rewrapped: i64,
        pub state: String,
    }
    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
    impl ActiveModelBehavior for ActiveModel {}
}

pub mod erasure_case {
    use sea_orm::entity::prelude::*;
    /// A data subject's erasure case.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "vault_erasure_cases")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub lead_id: String,
        pub state: String,
        pub requested_at: ChronoDateTimeUtc,
        pub due_at: ChronoDateTimeUtc,
        pub executed_at: Option<ChronoDateTimeUtc>,
        pub blocked_reason: String,
        pub requested_by: String,
    }
    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
    impl ActiveModelBehavior for ActiveModel {}
}

/// The tenant's internal do-not-call list: blind indexes only.
pub mod internal_dnc {
    use sea_orm::entity::prelude::*;
    /// One number that must not be called again.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "vault_internal_dnc")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub blind_index: Vec<u8>,
        pub reason: String,
        pub added_at: ChronoDateTimeUtc,
    }
    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
    impl ActiveModelBehavior for ActiveModel {}
}

/// Per-tenant settings of the vault; a tenant without a row has the defaults.
pub mod tenant_settings {
    use sea_orm::entity::prelude::*;
    /// One tenant's settings.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "vault_tenant_settings")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        pub erasure_deadline_days: i32,
        pub consent_retention_days: i32,
        pub updated_at: ChronoDateTimeUtc,
    }
    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
    impl ActiveModelBehavior for ActiveModel {}
}

fn t(n: &str) -> Alias {
    Alias::new(n)
}

#[derive(Debug)]
struct CreateLeads;

impl MigrationName for CreateLeads {
    fn name(&self) -> &str {
        "m20261128_000400_vault_leads"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateLeads {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(t("vault_leads"))
                .if_not_exists()
                .col(string(t("id")).primary_key())
                .col(string(t("tenant_id")))
                .col(string(t("owner_id")))
                .col(string(t("team_id")))
                .col(string(t("status")))
                .col(big_integer(t("version")))
                .col(string(t("source")))
                .col(string(t("region")))
                .col(string(t("time_zone")))
                .col(text(t("tags")))
                .col(string(t("key_data_key_id")))
                .col(binary_null(t("key_sealed")))
                .col(binary(t("phones_sealed")))
                .col(binary(t("name_sealed")))
                .col(binary(t("address_sealed")))
                .col(binary(t("needs_sealed")))
                .col(binary(t("notes_sealed")))
                .col(binary(t("mac")))
                .col(timestamp_with_time_zone(t("created_at")))
                .to_owned(),
        )
        .await?;
        for (name, col) in [("ix_vault_leads_owner", "owner_id"), ("ix_vault_leads_team", "team_id")] {
            m.create_index(
                Index::create()
                    .if_not_exists()
                    .name(name)
                    .table(t("vault_leads"))
                    .col(t("tenant_id"))
                    .col(t(col))
                    .to_owned(),
            )
            .await?;
        }
        m.create_table(
            Table::create()
                .table(t("vault_phone_index"))
                .if_not_exists()
                .col(string(t("tenant_id")))
                .col(binary(t("blind_index")))
                .col(string(t("lead_id")))
                .col(integer(t("position")))
                .primary_key(Index::create().col(t("tenant_id")).col(t("blind_index")))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(t("vault_tenant_secrets"))
                .if_not_exists()
                .col(string(t("tenant_id")))
                .col(string(t("kind")))
                .col(string(t("data_key_id")))
                .col(binary(t("sealed")))
                .primary_key(Index::create().col(t("tenant_id")).col(t("kind")))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(t("vault_consents"))
                .if_not_exists()
                .col(string(t("id")).primary_key())
                .col(string(t("tenant_id")))
                .col(string(t("lead_id")))
                .col(binary(t("blind_index")))
                .col(string(t("purpose")))
                .col(string(t("channel")))
                .col(binary(t("form_sha256")))
                .col(string(t("disclosure_version")))
                .col(text(t("page_url")))
                .col(string(t("recording_id")))
                .col(big_integer(t("recording_offset_ms")))
                .col(big_integer(t("recording_length_ms")))
                .col(timestamp_with_time_zone(t("granted_at")))
                .col(sea_orm_migration::schema::timestamp_with_time_zone_null(t("expires_at")))
                .col(sea_orm_migration::schema::timestamp_with_time_zone_null(t("withdrawn_at")))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("ix_vault_consents_lead")
                .table(t("vault_consents"))
                .col(t("tenant_id"))
                .col(t("lead_id"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(t("vault_key_rotations"))
                .if_not_exists()
                .col(string(t("tenant_id")).primary_key())
                .col(string(t("new_data_key_id")))
                .col(big_integer(t("total")))
                .col(big_integer(t("rewrapped")))
                .col(string(t("state")))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(t("vault_erasure_cases"))
                .if_not_exists()
                .col(string(t("id")).primary_key())
                .col(string(t("tenant_id")))
                .col(string(t("lead_id")))
                .col(string(t("state")))
                .col(timestamp_with_time_zone(t("requested_at")))
                .col(timestamp_with_time_zone(t("due_at")))
                .col(sea_orm_migration::schema::timestamp_with_time_zone_null(t("executed_at")))
                .col(string(t("blocked_reason")))
                .col(string(t("requested_by")))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("ix_vault_erasure_cases_tenant")
                .table(t("vault_erasure_cases"))
                .col(t("tenant_id"))
                .col(t("state"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(t("vault_internal_dnc"))
                .if_not_exists()
                .col(string(t("tenant_id")))
                .col(binary(t("blind_index")))
                .col(string(t("reason")))
                .col(timestamp_with_time_zone(t("added_at")))
                .primary_key(Index::create().col(t("tenant_id")).col(t("blind_index")))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(t("vault_export_counts"))
                .if_not_exists()
                .col(string(t("tenant_id")))
                .col(string(t("day")))
                .col(big_integer(t("count")))
                .primary_key(Index::create().col(t("tenant_id")).col(t("day")))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(t("vault_reveal_counts"))
                .if_not_exists()
                .col(string(t("tenant_id")))
                .col(string(t("user_id")))
                .col(string(t("day")))
                .col(integer(t("count")))
                .primary_key(Index::create().col(t("tenant_id")).col(t("user_id")).col(t("day")))
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}

#[derive(Debug)]
struct CreateTenantSettings;

impl MigrationName for CreateTenantSettings {
    fn name(&self) -> &str {
        "m20261128_000500_vault_tenant_settings"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateTenantSettings {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(t("vault_tenant_settings"))
                .if_not_exists()
                .col(string(t("tenant_id")).primary_key())
                .col(integer(t("erasure_deadline_days")))
                .col(integer(t("consent_retention_days")))
                .col(timestamp_with_time_zone(t("updated_at")))
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}

/// Migrations of the lead vault, tracked in their own table.
#[derive(Debug)]
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut m = guardline_audit_client::migrations();
        m.extend(guardline_keys::store::migrations());
        m.push(Box::new(CreateLeads));
        m.push(Box::new(CreateTenantSettings));
        m
    }

    fn migration_table_name() -> DynIden {
        "guardline_lead_vault_migrations".into_iden()
    }
}

//! Audit's storage: the append-only event table (entry, leaf hash and the
//! head signed at its size), the head-signing keys, per-tenant settings.

pub mod alerts;
pub mod log;
pub mod tail;
pub mod tree;

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, binary, integer, string, timestamp_with_time_zone};

/// Appended events.
pub mod event {
    use sea_orm::entity::prelude::*;
    /// One leaf of a tenant's log.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_events")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub idx: i64,
        pub event_id: String,
        pub time: ChronoDateTimeUtc,
        pub actor_user: String,
        pub action: String,
        pub resource_type: String,
        pub resource_id: String,
        pub outcome: String,
        pub entry: Vec<u8>,
        pub leaf_hash: Vec<u8>,
        pub head_ts: i64,
        pub head_kid: String,
        pub head_sig: Vec<u8>,
    }
    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
    impl ActiveModelBehavior for ActiveModel {}
}

/// Tree-head signing keys.
pub mod signing_key {
    use sea_orm::entity::prelude::*;
    /// An Ed25519 key, sealed under a platform data key.
    #[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_signing_keys")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub kid: String,
        pub data_key_id: String,
        pub sealed: Vec<u8>,
        pub public_key: Vec<u8>,
        pub created_at: ChronoDateTimeUtc,
    }
    impl std::fmt::Debug for Model {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("AuditSigningKey").field("kid", &self.kid).finish_non_exhaustive()
        }
    }
    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
    impl ActiveModelBehavior for ActiveModel {}
}

/// What remains of pruned entries: the frontier of complete-subtree hashes.
pub mod pruned {
    use sea_orm::entity::prelude::*;
    /// The pruned prefix of a tenant's log.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_pruned")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        pub first_index: i64,
        pub frontier: Vec<u8>,
    }
    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
    impl ActiveModelBehavior for ActiveModel {}
}

/// The leaf hashes of pruned entries: the entries are gone, their hashes
/// stay, so that a consistency proof from a tree size older than the prune
/// (a monitor's remembered head) can still be made.
pub mod pruned_leaf {
    use sea_orm::entity::prelude::*;
    /// One pruned entry's leaf hash.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_pruned_leaves")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub idx: i64,
        pub leaf_hash: Vec<u8>,
    }
    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
    impl ActiveModelBehavior for ActiveModel {}
}

/// Per-tenant settings.
pub mod setting {
    use sea_orm::entity::prelude::*;
    /// Retention of a tenant's log.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_settings")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        pub retention_days: i32,
    }
    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
    impl ActiveModelBehavior for ActiveModel {}
}

fn t(name: &str) -> Alias {
    Alias::new(name)
}

/// Creates audit's tables.
#[derive(Debug)]
struct CreateAuditTables;

impl MigrationName for CreateAuditTables {
    fn name(&self) -> &str {
        "m20261128_000200_audit_tables"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateAuditTables {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(t("audit_events"))
                .if_not_exists()
                .col(string(t("tenant_id")))
                .col(big_integer(t("idx")))
                .col(string(t("event_id")))
                .col(timestamp_with_time_zone(t("time")))
                .col(string(t("actor_user")))
                .col(string(t("action")))
                .col(string(t("resource_type")))
                .col(string(t("resource_id")))
                .col(string(t("outcome")))
                .col(binary(t("entry")))
                .col(binary(t("leaf_hash")))
                .col(big_integer(t("head_ts")))
                .col(string(t("head_kid")))
                .col(binary(t("head_sig")))
                .primary_key(Index::create().col(t("tenant_id")).col(t("idx")))
                .to_owned(),
        )
        .await?;
        for (name, cols) in [
            ("ux_audit_events_event_id", vec!["tenant_id", "event_id"]),
            ("ix_audit_events_actor", vec!["tenant_id", "actor_user"]),
            ("ix_audit_events_action", vec!["tenant_id", "action"]),
            ("ix_audit_events_time", vec!["tenant_id", "time"]),
        ] {
            let mut idx = Index::create().if_not_exists().name(name).table(t("audit_events")).to_owned();
            for c in cols {
                idx.col(t(c));
            }
            if name.starts_with("ux_") {
                idx.unique();
            }
            m.create_index(idx).await?;
        }
        m.create_table(
            Table::create()
                .table(t("audit_signing_keys"))
                .if_not_exists()
                .col(string(t("kid")).primary_key())
                .col(string(t("data_key_id")))
                .col(binary(t("sealed")))
                .col(binary(t("public_key")))
                .col(timestamp_with_time_zone(t("created_at")))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(t("audit_settings"))
                .if_not_exists()
                .col(string(t("tenant_id")).primary_key())
                .col(integer(t("retention_days")))
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}

/// Keeps pruned entries' leaf hashes (a new table: nothing else changes).
#[derive(Debug)]
struct CreatePrunedLeaves;

impl MigrationName for CreatePrunedLeaves {
    fn name(&self) -> &str {
        "m20261208_000100_audit_pruned_leaves"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreatePrunedLeaves {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(t("audit_pruned_leaves"))
                .if_not_exists()
                .col(string(t("tenant_id")))
                .col(big_integer(t("idx")))
                .col(binary(t("leaf_hash")))
                .primary_key(Index::create().col(t("tenant_id")).col(t("idx")))
                .to_owned(),
        )
        .await
    }
}

/// Migrations of audit, tracked in their own table.
#[derive(Debug)]
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut m = guardline_audit_client::migrations();
        m.extend(guardline_keys::store::migrations());
        m.push(Box::new(CreateAuditTables));
        m.push(Box::new(CreateAlertTables));
        m.push(Box::new(CreatePrunedLeaves));
        m.push(Box::new(tree::CreateTreeTables));
        m.extend(guardline_runtime::lease::migrations());
        m.push(Box::new(tail::CreateAlertCursors));
        m
    }

    fn migration_table_name() -> DynIden {
        "guardline_audit_migrations".into_iden()
    }
}

/// Stored alerts.
pub mod alert {
    use sea_orm::entity::prelude::*;
    /// An alert and its handling.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_alerts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub rule: String,
        pub summary: String,
        pub actor_user: String,
        pub actor_service: String,
        pub event_ids: String,
        pub state: String,
        pub raised_at: ChronoDateTimeUtc,
        pub updated_by: String,
        pub updated_at: Option<ChronoDateTimeUtc>,
    }
    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
    impl ActiveModelBehavior for ActiveModel {}
}

/// Alert thresholds and webhooks per tenant.
pub mod alert_setting {
    use sea_orm::entity::prelude::*;
    /// Settings; webhook secrets are sealed.
    #[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_alert_settings")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        pub thresholds: String,
        pub webhooks: String,
    }
    impl std::fmt::Debug for Model {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("AlertSetting").field("tenant_id", &self.tenant_id).finish_non_exhaustive()
        }
    }
    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
    impl ActiveModelBehavior for ActiveModel {}
}

/// Webhook deliveries, retried until acknowledged.
pub mod delivery {
    use sea_orm::entity::prelude::*;
    /// One alert to one webhook.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_webhook_deliveries")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub alert_id: String,
        pub url: String,
        pub payload: String,
        pub attempts: i32,
        pub next_attempt_at: ChronoDateTimeUtc,
        pub delivered_at: Option<ChronoDateTimeUtc>,
    }
    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
    impl ActiveModelBehavior for ActiveModel {}
}

/// Creates the alert tables.
#[derive(Debug)]
struct CreateAlertTables;

impl MigrationName for CreateAlertTables {
    fn name(&self) -> &str {
        "m20261128_000201_audit_alert_tables"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateAlertTables {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use sea_orm_migration::schema::{text, timestamp_with_time_zone_null};
        m.create_table(
            Table::create()
                .table(t("audit_alerts"))
                .if_not_exists()
                .col(string(t("id")).primary_key())
                .col(string(t("tenant_id")))
                .col(string(t("rule")))
                .col(text(t("summary")))
                .col(string(t("actor_user")))
                .col(string(t("actor_service")))
                .col(text(t("event_ids")))
                .col(string(t("state")))
                .col(timestamp_with_time_zone(t("raised_at")))
                .col(string(t("updated_by")))
                .col(timestamp_with_time_zone_null(t("updated_at")))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("ix_audit_alerts_tenant")
                .table(t("audit_alerts"))
                .col(t("tenant_id"))
                .col(t("id"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(t("audit_pruned"))
                .if_not_exists()
                .col(string(t("tenant_id")).primary_key())
                .col(big_integer(t("first_index")))
                .col(binary(t("frontier")))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(t("audit_alert_settings"))
                .if_not_exists()
                .col(string(t("tenant_id")).primary_key())
                .col(text(t("thresholds")))
                .col(text(t("webhooks")))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(t("audit_webhook_deliveries"))
                .if_not_exists()
                .col(string(t("id")).primary_key())
                .col(string(t("tenant_id")))
                .col(string(t("alert_id")))
                .col(text(t("url")))
                .col(text(t("payload")))
                .col(integer(t("attempts")))
                .col(timestamp_with_time_zone(t("next_attempt_at")))
                .col(timestamp_with_time_zone_null(t("delivered_at")))
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}

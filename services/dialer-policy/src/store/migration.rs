//! Dialer-policy's schema, created by migrations tracked in their own table.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    binary, integer, string, text, timestamp_with_time_zone, timestamp_with_time_zone_null,
};

fn t(n: &str) -> Alias {
    Alias::new(n)
}

#[derive(Debug)]
struct CreateTables;

impl MigrationName for CreateTables {
    fn name(&self) -> &str {
        "m20261128_000600_dialer_policy"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateTables {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(t("dialer_policies"))
                .if_not_exists()
                .col(string(t("tenant_id")))
                .col(string(t("campaign_id")))
                .col(text(t("policy")))
                .col(timestamp_with_time_zone(t("updated_at")))
                .primary_key(Index::create().col(t("tenant_id")).col(t("campaign_id")))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(t("dialer_dnc"))
                .if_not_exists()
                .col(string(t("tenant_id")))
                .col(string(t("list")))
                .col(string(t("campaign_id")))
                .col(binary(t("blind_index")))
                .col(string(t("reason")))
                .col(timestamp_with_time_zone(t("added_at")))
                .primary_key(
                    Index::create().col(t("tenant_id")).col(t("list")).col(t("campaign_id")).col(t("blind_index")),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(t("dialer_decisions"))
                .if_not_exists()
                .col(string(t("id")).primary_key())
                .col(string(t("tenant_id")))
                .col(string(t("lead_id")))
                .col(binary(t("callee")))
                .col(string(t("caller_line")))
                .col(string(t("agent_id")))
                .col(string(t("campaign_id")))
                .col(string(t("verdict")))
                .col(integer(t("callee_cap_24h")))
                .col(timestamp_with_time_zone(t("decided_at")))
                .col(sea_orm_migration::schema::boolean(t("used")))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(t("dialer_attempts"))
                .if_not_exists()
                .col(string(t("id")).primary_key())
                .col(string(t("tenant_id")))
                .col(binary(t("callee")))
                .col(string(t("caller_line")))
                .col(string(t("agent_id")))
                .col(string(t("campaign_id")))
                .col(timestamp_with_time_zone(t("placed_at")))
                .col(string(t("result")))
                .col(integer(t("duration_seconds")))
                .to_owned(),
        )
        .await?;
        for (name, col) in [
            ("ix_dialer_attempts_callee", "callee"),
            ("ix_dialer_attempts_line", "caller_line"),
            ("ix_dialer_attempts_agent", "agent_id"),
        ] {
            m.create_index(
                Index::create()
                    .if_not_exists()
                    .name(name)
                    .table(t("dialer_attempts"))
                    .col(t("tenant_id"))
                    .col(t(col))
                    .col(t("placed_at"))
                    .to_owned(),
            )
            .await?;
        }
        m.create_table(
            Table::create()
                .table(t("dialer_line_states"))
                .if_not_exists()
                .col(string(t("tenant_id")))
                .col(string(t("caller_line")))
                .col(sea_orm_migration::schema::boolean(t("throttled")))
                .col(timestamp_with_time_zone(t("changed_at")))
                .primary_key(Index::create().col(t("tenant_id")).col(t("caller_line")))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(t("dialer_privacy_numbers"))
                .if_not_exists()
                .col(string(t("tenant_id")))
                .col(string(t("number")))
                .col(timestamp_with_time_zone(t("added_at")))
                .primary_key(Index::create().col(t("tenant_id")).col(t("number")))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(t("dialer_bindings"))
                .if_not_exists()
                .col(string(t("id")).primary_key())
                .col(string(t("tenant_id")))
                .col(string(t("privacy_number")))
                .col(string(t("agent_line")))
                .col(string(t("agent_id")))
                .col(string(t("lead_id")))
                .col(timestamp_with_time_zone(t("created_at")))
                .col(timestamp_with_time_zone(t("expires_at")))
                .col(timestamp_with_time_zone_null(t("released_at")))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("ix_dialer_bindings_number")
                .table(t("dialer_bindings"))
                .col(t("tenant_id"))
                .col(t("privacy_number"))
                .col(t("agent_line"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(t("dialer_registry_copies"))
                .if_not_exists()
                .col(string(t("region")).primary_key())
                .col(sea_orm_migration::schema::date(t("copy_date")))
                .col(sea_orm_migration::schema::big_integer(t("numbers")))
                .col(text(t("file")))
                .col(timestamp_with_time_zone(t("loaded_at")))
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}

/// Decisions remember the callee's region, zones, packs and subject, so that
/// an attempt rechecks window, registry copy and caps at its own time;
/// attempts remember their subject; reassigned-numbers results and missing
/// calendar reports get tables. Columns are only added (with defaults): a
/// previous version runs beside this one.
#[derive(Debug)]
struct DecisionContext;

impl MigrationName for DecisionContext {
    fn name(&self) -> &str {
        "m20261201_000100_dialer_decision_context"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for DecisionContext {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        for (table, col) in [
            ("dialer_decisions", "region"),
            ("dialer_decisions", "zones"),
            ("dialer_decisions", "packs"),
            ("dialer_decisions", "subject"),
            ("dialer_attempts", "subject"),
        ] {
            m.alter_table(Table::alter().table(t(table)).add_column(string(t(col)).default("")).to_owned()).await?;
        }
        m.alter_table(
            Table::alter().table(t("dialer_decisions")).add_column(integer(t("subject_cap_24h")).default(0)).to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(t("dialer_reassigned"))
                .if_not_exists()
                .col(string(t("tenant_id")))
                .col(binary(t("blind_index")))
                .col(sea_orm_migration::schema::date(t("asked")))
                .col(string(t("answer")))
                .col(sea_orm_migration::schema::date(t("obtained")))
                .primary_key(Index::create().col(t("tenant_id")).col(t("blind_index")).col(t("asked")))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(t("dialer_calendar_alerts"))
                .if_not_exists()
                .col(string(t("tenant_id")))
                .col(string(t("pack")))
                .col(integer(t("year")))
                .col(timestamp_with_time_zone(t("raised_at")))
                .primary_key(Index::create().col(t("tenant_id")).col(t("pack")).col(t("year")))
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}

/// Registry copies' files in the database (a new table; nothing else changes).
#[derive(Debug)]
struct RegistryChunks;

impl MigrationName for RegistryChunks {
    fn name(&self) -> &str {
        "m20261208_000600_dialer_registry_chunks"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for RegistryChunks {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(t("dialer_registry_chunks"))
                .if_not_exists()
                .col(string(t("file")))
                .col(integer(t("seq")))
                .col(binary(t("bytes")))
                .primary_key(Index::create().col(t("file")).col(t("seq")))
                .to_owned(),
        )
        .await
    }
}

/// Migrations of dialer-policy, tracked in their own table so that services may
/// share one database.
#[derive(Debug)]
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut m = guardline_audit_client::migrations();
        m.push(Box::new(CreateTables));
        m.push(Box::new(DecisionContext));
        m.push(Box::new(RegistryChunks));
        m
    }

    fn migration_table_name() -> DynIden {
        "guardline_dialer_policy_migrations".into_iden()
    }
}

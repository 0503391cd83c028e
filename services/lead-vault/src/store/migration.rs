//! The lead vault's schema, created by migrations tracked in their own
//! table.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, binary, binary_null, integer, string, text, timestamp_with_time_zone};

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
        m.extend(guardline_runtime::lease::migrations());
        m
    }

    fn migration_table_name() -> DynIden {
        "guardline_lead_vault_migrations".into_iden()
    }
}

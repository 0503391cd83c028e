//! Identity's schema, portable across SQLite and PostgreSQL.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer_null, binary, binary_null, boolean, integer, string, string_null, text, timestamp_with_time_zone,
    timestamp_with_time_zone_null,
};

/// Creates every identity table.
#[derive(Debug)]
pub struct CreateIdentityTables;

impl MigrationName for CreateIdentityTables {
    fn name(&self) -> &str {
        "m20261128_000100_identity_tables"
    }
}

fn t(name: &str) -> Alias {
    Alias::new(name)
}

#[async_trait::async_trait]
impl MigrationTrait for CreateIdentityTables {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(t("identity_tenants"))
                .if_not_exists()
                .col(string(t("id")).primary_key())
                .col(string(t("name")))
                .col(string(t("status")))
                .col(string(t("time_zone")))
                .col(text(t("working_hours")))
                .col(text(t("risk_policy")))
                .col(timestamp_with_time_zone(t("created_at")))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(t("identity_users"))
                .if_not_exists()
                .col(string(t("id")).primary_key())
                .col(string(t("tenant_id")))
                .col(string(t("login")))
                .col(string(t("display_name")))
                .col(string(t("status")))
                .col(text(t("password_hash")))
                .col(text(t("roles")))
                .col(binary_null(t("totp_sealed")))
                .col(binary_null(t("totp_pending_sealed")))
                .col(string_null(t("totp_data_key_id")))
                .col(big_integer_null(t("totp_last_step")))
                .col(integer(t("failed_attempts")))
                .col(timestamp_with_time_zone_null(t("locked_until")))
                .col(timestamp_with_time_zone(t("created_at")))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("ux_identity_users_login")
                .table(t("identity_users"))
                .col(t("tenant_id"))
                .col(t("login"))
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(t("identity_teams"))
                .if_not_exists()
                .col(string(t("id")).primary_key())
                .col(string(t("tenant_id")))
                .col(string(t("name")))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(t("identity_team_members"))
                .if_not_exists()
                .col(string(t("team_id")))
                .col(string(t("user_id")))
                .col(string(t("tenant_id")))
                .col(boolean(t("is_lead")))
                .primary_key(Index::create().col(t("team_id")).col(t("user_id")))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(t("identity_roles"))
                .if_not_exists()
                .col(string(t("tenant_id")))
                .col(string(t("name")))
                .col(text(t("permissions")))
                .col(boolean(t("built_in")))
                .primary_key(Index::create().col(t("tenant_id")).col(t("name")))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(t("identity_refresh_tokens"))
                .if_not_exists()
                .col(string(t("hash")).primary_key())
                .col(string(t("family_id")))
                .col(string(t("tenant_id")))
                .col(string(t("user_id")))
                .col(timestamp_with_time_zone(t("created_at")))
                .col(timestamp_with_time_zone(t("expires_at")))
                .col(timestamp_with_time_zone_null(t("used_at")))
                .col(boolean(t("revoked")))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("ix_identity_refresh_family")
                .table(t("identity_refresh_tokens"))
                .col(t("family_id"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(t("identity_login_events"))
                .if_not_exists()
                .col(string(t("id")).primary_key())
                .col(string(t("tenant_id")))
                .col(string_null(t("user_id")))
                .col(timestamp_with_time_zone(t("at")))
                .col(boolean(t("success")))
                .col(string(t("failure_reason")))
                .col(string(t("risk_level")))
                .col(text(t("risk_reasons")))
                .col(string(t("risk_action")))
                .col(string(t("source_address")))
                .col(string(t("network")))
                .col(string(t("device_id")))
                .col(string(t("region")))
                .col(text(t("user_agent")))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("ix_identity_login_events_user_at")
                .table(t("identity_login_events"))
                .col(t("tenant_id"))
                .col(t("user_id"))
                .col(t("at"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(t("identity_source_failures"))
                .if_not_exists()
                .col(string(t("tenant_id")))
                .col(string(t("source_address")))
                .col(integer(t("failures")))
                .col(timestamp_with_time_zone(t("window_start")))
                .col(timestamp_with_time_zone_null(t("locked_until")))
                .primary_key(Index::create().col(t("tenant_id")).col(t("source_address")))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(t("identity_signing_keys"))
                .if_not_exists()
                .col(string(t("kid")).primary_key())
                .col(string(t("data_key_id")))
                .col(binary(t("sealed")))
                .col(binary(t("public_key")))
                .col(timestamp_with_time_zone(t("created_at")))
                .col(timestamp_with_time_zone_null(t("retired_at")))
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}

/// Signing keys can be revoked in an emergency (`RevokeSigningKey`): a
/// nullable column, so a previous version runs beside this one.
#[derive(Debug)]
pub struct RevocableSigningKeys;

impl MigrationName for RevocableSigningKeys {
    fn name(&self) -> &str {
        "m20261201_000200_identity_signing_key_revocation"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for RevocableSigningKeys {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(t("identity_signing_keys"))
                .add_column(timestamp_with_time_zone_null(t("revoked_at")))
                .to_owned(),
        )
        .await
    }
}

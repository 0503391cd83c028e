//! Identity's storage: its tables, its migrator (with the shared audit outbox
//! and data-key tables), and the queries the service needs.

pub mod entities;
pub mod keys;
mod migration;
pub mod sessions;
pub mod tenants;
pub mod users;

use chrono::{DateTime, Utc};
use guardline_audit_client::AuditedDb;
pub use guardline_audit_client::{Conn, Tx};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use sea_orm_migration::prelude::*;

pub use entities::*;

/// Identity's database: the pool, whose transactions commit with their audit
/// events (`begin`, `commit`, `audit`); every query is a function of this
/// module's children over [`Conn`].
pub type Store = AuditedDb;

use crate::domain::risk::LoginSite;
use crate::error::Result;

/// Writes columns `cols` of `row` (the others stay as stored, so a
/// concurrent change to them, a reserved attempt or a used TOTP step,
/// survives).
async fn save_columns<M, A>(c: &impl Conn, row: M, cols: &[<M::Entity as EntityTrait>::Column]) -> Result<M>
where
    M: sea_orm::ModelTrait + sea_orm::IntoActiveModel<A> + Clone + Send,
    A: sea_orm::ActiveModelTrait<Entity = M::Entity> + sea_orm::ActiveModelBehavior + Send,
    M::Entity: EntityTrait<Model = M>,
{
    let mut active: A = row.clone().into_active_model();
    for col in cols {
        active.set(*col, row.get(*col));
    }
    if cols.is_empty() {
        return Ok(row);
    }
    Ok(active.update(c.conn()).await?)
}

/// Migrations of identity, tracked in their own table so that services may
/// share one database.
#[derive(Debug)]
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut m = guardline_audit_client::migrations();
        m.extend(guardline_keys::store::migrations());
        m.push(Box::new(migration::CreateIdentityTables));
        m.push(Box::new(migration::RevocableSigningKeys));
        m
    }

    fn migration_table_name() -> DynIden {
        "guardline_identity_migrations".into_iden()
    }
}

/// Status strings as stored.
pub mod status {
    /// Usable.
    pub const ACTIVE: &str = "active";
    /// Switched off.
    pub const DISABLED: &str = "disabled";
    /// Tenant suspended.
    pub const SUSPENDED: &str = "suspended";
}

/// The role names a user holds.
pub fn roles_of(user: &user::Model) -> Vec<String> {
    serde_json::from_str(&user.roles).unwrap_or_default()
}

/// Teams a user belongs to or leads.
pub async fn teams_of(c: &impl Conn, tenant: &str, user: &str) -> Result<Vec<String>> {
    Ok(team_member::Entity::find()
        .filter(team_member::Column::TenantId.eq(tenant))
        .filter(team_member::Column::UserId.eq(user))
        .all(c.conn())
        .await?
        .into_iter()
        .map(|m| m.team_id)
        .collect())
}

/// The union of the permissions of `roles` in `tenant`, sorted.
pub async fn permissions_of(c: &impl Conn, tenant: &str, roles: &[String]) -> Result<Vec<String>> {
    let rows = role::Entity::find()
        .filter(role::Column::TenantId.eq(tenant))
        .filter(role::Column::Name.is_in(roles.to_vec()))
        .all(c.conn())
        .await?;
    let mut perms: Vec<String> =
        rows.iter().flat_map(|r| serde_json::from_str::<Vec<String>>(&r.permissions).unwrap_or_default()).collect();
    perms.sort();
    perms.dedup();
    Ok(perms)
}

/// A user's successful logins since `since`, for risk assessment.
pub async fn login_history(c: &impl Conn, tenant: &str, user: &str, since: DateTime<Utc>) -> Result<Vec<LoginSite>> {
    Ok(login_event::Entity::find()
        .filter(login_event::Column::TenantId.eq(tenant))
        .filter(login_event::Column::UserId.eq(user))
        .filter(login_event::Column::Success.eq(true))
        .filter(login_event::Column::At.gte(since))
        .order_by_desc(login_event::Column::At)
        .all(c.conn())
        .await?
        .into_iter()
        .map(|e| LoginSite { at: e.at, network: e.network, device: e.device_id, region: e.region })
        .collect())
}

//! Tenants, their roles and teams.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::{Conn, Tx, role, team, team_member, tenant};
use crate::error::Result;

/// Tenants after id `after` (ids grow with creation time), at most `limit`.
pub async fn page(c: &impl Conn, after: Option<&str>, limit: u64) -> Result<Vec<tenant::Model>> {
    let mut q = tenant::Entity::find().order_by_asc(tenant::Column::Id);
    if let Some(after) = after {
        q = q.filter(tenant::Column::Id.gt(after));
    }
    Ok(q.limit(limit).all(c.conn()).await?)
}

/// A tenant by id.
pub async fn tenant(c: &impl Conn, id: &str) -> Result<Option<tenant::Model>> {
    Ok(tenant::Entity::find_by_id(id.to_owned()).one(c.conn()).await?)
}

/// Stores a new tenant with its roles.
pub async fn insert_tenant(tx: &Tx, t: &tenant::Model, roles: Vec<role::Model>) -> Result<()> {
    tenant::Entity::insert(tenant::ActiveModel::from(t.clone())).exec(tx.conn()).await?;
    for r in roles {
        role::Entity::insert(role::ActiveModel::from(r)).exec(tx.conn()).await?;
    }
    Ok(())
}

/// Writes columns `cols` of a changed tenant.
pub async fn save_tenant(tx: &Tx, t: tenant::Model, cols: &[tenant::Column]) -> Result<tenant::Model> {
    super::save_columns(tx, t, cols).await
}

/// A tenant's roles, by name.
pub async fn roles(c: &impl Conn, tenant: &str) -> Result<Vec<role::Model>> {
    Ok(role::Entity::find()
        .filter(role::Column::TenantId.eq(tenant))
        .order_by_asc(role::Column::Name)
        .all(c.conn())
        .await?)
}

/// A role of a tenant.
pub async fn role(c: &impl Conn, tenant: &str, name: &str) -> Result<Option<role::Model>> {
    Ok(role::Entity::find_by_id((tenant.to_owned(), name.to_owned())).one(c.conn()).await?)
}

/// Stores a new role.
pub async fn insert_role(tx: &Tx, r: &role::Model) -> Result<()> {
    role::Entity::insert(role::ActiveModel::from(r.clone())).exec(tx.conn()).await?;
    Ok(())
}

/// A team by id, whatever its tenant (the caller checks).
pub async fn team(c: &impl Conn, id: &str) -> Result<Option<team::Model>> {
    Ok(team::Entity::find_by_id(id.to_owned()).one(c.conn()).await?)
}

/// Stores a new team.
pub async fn insert_team(tx: &Tx, t: &team::Model) -> Result<()> {
    team::Entity::insert(team::ActiveModel::from(t.clone())).exec(tx.conn()).await?;
    Ok(())
}

/// Adds memberships.
pub async fn insert_members(tx: &Tx, rows: &[team_member::Model]) -> Result<()> {
    for r in rows {
        team_member::Entity::insert(team_member::ActiveModel::from(r.clone())).exec(tx.conn()).await?;
    }
    Ok(())
}

/// Replaces a team's members and leads.
pub async fn set_members(tx: &Tx, team: &str, rows: &[team_member::Model]) -> Result<()> {
    team_member::Entity::delete_many().filter(team_member::Column::TeamId.eq(team)).exec(tx.conn()).await?;
    insert_members(tx, rows).await
}

/// Members and leads of a team.
pub async fn members(c: &impl Conn, team: &str) -> Result<Vec<team_member::Model>> {
    Ok(team_member::Entity::find().filter(team_member::Column::TeamId.eq(team)).all(c.conn()).await?)
}

/// The ids of a team's members in a tenant.
pub async fn member_ids(c: &impl Conn, tenant: &str, team: &str) -> Result<Vec<String>> {
    let rows = team_member::Entity::find()
        .filter(team_member::Column::TeamId.eq(team))
        .filter(team_member::Column::TenantId.eq(tenant))
        .all(c.conn())
        .await?;
    Ok(rows.into_iter().map(|m| m.user_id).collect())
}

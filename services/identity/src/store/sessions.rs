//! Login events, per-source failure counters and refresh tokens.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::{Conn, Tx, login_event, refresh_token, source_failure};
use crate::error::Result;

/// Stores a login event.
pub async fn insert_login(tx: &Tx, e: login_event::Model) -> Result<()> {
    login_event::Entity::insert(login_event::ActiveModel::from(e)).exec(tx.conn()).await?;
    Ok(())
}

/// A tenant's login events (of one user, in a range), newest first.
pub async fn logins(
    c: &impl Conn,
    tenant: &str,
    user: Option<&str>,
    (from, to): (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
    before: Option<&str>,
    limit: u64,
) -> Result<Vec<login_event::Model>> {
    let mut q = login_event::Entity::find()
        .filter(login_event::Column::TenantId.eq(tenant))
        .order_by_desc(login_event::Column::Id);
    if let Some(u) = user {
        q = q.filter(login_event::Column::UserId.eq(u));
    }
    if let Some(s) = from {
        q = q.filter(login_event::Column::At.gte(s));
    }
    if let Some(e) = to {
        q = q.filter(login_event::Column::At.lt(e));
    }
    if let Some(b) = before {
        q = q.filter(login_event::Column::Id.lt(b));
    }
    Ok(q.limit(limit.clamp(1, 1000)).all(c.conn()).await?)
}

/// A source address's failure counter.
pub async fn source_failure(c: &impl Conn, tenant: &str, addr: &str) -> Result<Option<source_failure::Model>> {
    Ok(source_failure::Entity::find_by_id((tenant.to_owned(), addr.to_owned())).one(c.conn()).await?)
}

/// Writes a source address's failure counter (`existed`: it had a row).
pub async fn put_source_failure(tx: &Tx, row: source_failure::Model, existed: bool) -> Result<()> {
    let model = source_failure::ActiveModel::from(row).reset_all();
    if existed {
        model.update(tx.conn()).await?;
    } else {
        source_failure::Entity::insert(model).exec(tx.conn()).await?;
    }
    Ok(())
}

/// Stores a refresh token (hashed).
pub async fn insert_refresh(tx: &Tx, row: refresh_token::Model) -> Result<()> {
    refresh_token::Entity::insert(refresh_token::ActiveModel::from(row)).exec(tx.conn()).await?;
    Ok(())
}

/// A refresh token by hash.
pub async fn refresh(c: &impl Conn, hash: &str) -> Result<Option<refresh_token::Model>> {
    Ok(refresh_token::Entity::find_by_id(hash.to_owned()).one(c.conn()).await?)
}

/// Spends a refresh token at `now` (a conditional update): true for the one
/// spend that wins.
pub async fn spend_refresh(tx: &Tx, hash: &str, now: DateTime<Utc>) -> Result<bool> {
    let n = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::UsedAt, Expr::value(now))
        .filter(refresh_token::Column::Hash.eq(hash))
        .filter(refresh_token::Column::UsedAt.is_null())
        .filter(refresh_token::Column::Revoked.eq(false))
        .exec(tx.conn())
        .await?
        .rows_affected;
    Ok(n == 1)
}

/// Revokes a token family.
pub async fn revoke_family(tx: &Tx, family: &str) -> Result<()> {
    refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::Revoked, Expr::value(true))
        .filter(refresh_token::Column::FamilyId.eq(family))
        .exec(tx.conn())
        .await?;
    Ok(())
}

/// Revokes every refresh token of a user.
pub async fn revoke_user(tx: &Tx, user: &str) -> Result<()> {
    refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::Revoked, Expr::value(true))
        .filter(refresh_token::Column::UserId.eq(user))
        .exec(tx.conn())
        .await?;
    Ok(())
}

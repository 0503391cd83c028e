//! Users, with the atomic counters that make lockout and one-time TOTP
//! codes hold under concurrency.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::{Conn, Tx, user};
use crate::error::Result;

/// A user by id, whatever its tenant (the caller checks).
pub async fn user(c: &impl Conn, id: &str) -> Result<Option<user::Model>> {
    Ok(user::Entity::find_by_id(id.to_owned()).one(c.conn()).await?)
}

/// A tenant's user by login name.
pub async fn by_login(c: &impl Conn, tenant: &str, login: &str) -> Result<Option<user::Model>> {
    Ok(user::Entity::find()
        .filter(user::Column::TenantId.eq(tenant))
        .filter(user::Column::Login.eq(login))
        .one(c.conn())
        .await?)
}

/// Stores a new user.
pub async fn insert(tx: &Tx, u: &user::Model) -> Result<()> {
    user::Entity::insert(user::ActiveModel::from(u.clone())).exec(tx.conn()).await?;
    Ok(())
}

/// Writes columns `cols` of a changed user; the others stay as stored.
pub async fn save(c: &impl Conn, u: user::Model, cols: &[user::Column]) -> Result<user::Model> {
    super::save_columns(c, u, cols).await
}

/// A page of a tenant's users by id, after `after`, among `ids` if given.
pub async fn page(
    c: &impl Conn,
    tenant: &str,
    ids: Option<Vec<String>>,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<user::Model>> {
    let mut q = user::Entity::find().filter(user::Column::TenantId.eq(tenant)).order_by_asc(user::Column::Id);
    if let Some(after) = after {
        q = q.filter(user::Column::Id.gt(after));
    }
    if let Some(ids) = ids {
        q = q.filter(user::Column::Id.is_in(ids));
    }
    Ok(q.limit(limit).all(c.conn()).await?)
}

/// Takes one of the user's `max` allowed failures (a conditional
/// increment); false when none is left or the account is locked at `now`.
pub async fn reserve_attempt(c: &impl Conn, user_id: &str, max: u32, now: DateTime<Utc>) -> Result<bool> {
    let n = user::Entity::update_many()
        .col_expr(user::Column::FailedAttempts, Expr::col(user::Column::FailedAttempts).add(1))
        .filter(user::Column::Id.eq(user_id))
        .filter(user::Column::FailedAttempts.lt(max as i32))
        .filter(Condition::any().add(user::Column::LockedUntil.is_null()).add(user::Column::LockedUntil.lte(now)))
        .exec(c.conn())
        .await?
        .rows_affected;
    Ok(n == 1)
}

/// Gives a reserved failure back.
pub async fn release_attempt(c: &impl Conn, user_id: &str) -> Result<()> {
    user::Entity::update_many()
        .col_expr(user::Column::FailedAttempts, Expr::col(user::Column::FailedAttempts).sub(1))
        .filter(user::Column::Id.eq(user_id))
        .filter(user::Column::FailedAttempts.gt(0))
        .exec(c.conn())
        .await?;
    Ok(())
}

/// Records TOTP step `step` as used unless it or a later one was: true for
/// the one login that may use it.
pub async fn claim_totp_step(c: &impl Conn, user_id: &str, step: u64) -> Result<bool> {
    let step = step as i64;
    let n = user::Entity::update_many()
        .col_expr(user::Column::TotpLastStep, Expr::value(step))
        .filter(user::Column::Id.eq(user_id))
        .filter(Condition::any().add(user::Column::TotpLastStep.is_null()).add(user::Column::TotpLastStep.lt(step)))
        .exec(c.conn())
        .await?
        .rows_affected;
    Ok(n == 1)
}

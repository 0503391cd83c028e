//! The privacy-number pool and its bindings.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};

use super::{Conn, Tx, binding, privacy_number};
use crate::error::Result;

/// Adds the numbers not yet in the tenant's pool; returns (added, pool size).
pub async fn add_numbers(tx: &Tx, tenant: &str, numbers: Vec<String>, now: DateTime<Utc>) -> Result<(u64, u64)> {
    let mut added = 0;
    for n in numbers {
        if privacy_number::Entity::find_by_id((tenant.to_owned(), n.clone())).one(tx.conn()).await?.is_none() {
            privacy_number::Entity::insert(privacy_number::ActiveModel {
                tenant_id: ActiveValue::Set(tenant.into()),
                number: ActiveValue::Set(n),
                added_at: ActiveValue::Set(now),
            })
            .exec(tx.conn())
            .await?;
            added += 1;
        }
    }
    let size =
        privacy_number::Entity::find().filter(privacy_number::Column::TenantId.eq(tenant)).count(tx.conn()).await?;
    Ok((added, size))
}

/// The tenant's pool, in order.
pub async fn pool(c: &impl Conn, tenant: &str) -> Result<Vec<String>> {
    let rows = privacy_number::Entity::find()
        .filter(privacy_number::Column::TenantId.eq(tenant))
        .order_by_asc(privacy_number::Column::Number)
        .all(c.conn())
        .await?;
    Ok(rows.into_iter().map(|p| p.number).collect())
}

/// The privacy numbers bound to an agent line and live at `now`.
pub async fn busy(c: &impl Conn, tenant: &str, agent_line: &str, now: DateTime<Utc>) -> Result<Vec<String>> {
    let rows = binding::Entity::find()
        .filter(binding::Column::TenantId.eq(tenant))
        .filter(binding::Column::AgentLine.eq(agent_line))
        .filter(binding::Column::ReleasedAt.is_null())
        .filter(binding::Column::ExpiresAt.gt(now))
        .all(c.conn())
        .await?;
    Ok(rows.into_iter().map(|b| b.privacy_number).collect())
}

/// Stores a binding.
pub async fn insert_binding(tx: &Tx, b: binding::Model) -> Result<()> {
    binding::Entity::insert(binding::ActiveModel::from(b)).exec(tx.conn()).await?;
    Ok(())
}

/// The live binding of privacy number `x` to `agent_line` at `now`.
pub async fn live_binding(
    c: &impl Conn,
    tenant: &str,
    (x, agent_line): (&str, &str),
    now: DateTime<Utc>,
) -> Result<Option<binding::Model>> {
    Ok(binding::Entity::find()
        .filter(binding::Column::TenantId.eq(tenant))
        .filter(binding::Column::PrivacyNumber.eq(x))
        .filter(binding::Column::AgentLine.eq(agent_line))
        .filter(binding::Column::ReleasedAt.is_null())
        .filter(binding::Column::ExpiresAt.gt(now))
        .one(c.conn())
        .await?)
}

/// A binding by id, whatever its tenant (the caller checks).
pub async fn binding(c: &impl Conn, id: &str) -> Result<Option<binding::Model>> {
    Ok(binding::Entity::find_by_id(id.to_owned()).one(c.conn()).await?)
}

/// Marks a binding released at `at`.
pub async fn release(tx: &Tx, id: &str, at: DateTime<Utc>) -> Result<()> {
    binding::Entity::update(binding::ActiveModel {
        id: ActiveValue::Unchanged(id.to_owned()),
        released_at: ActiveValue::Set(Some(at)),
        ..Default::default()
    })
    .exec(tx.conn())
    .await?;
    Ok(())
}

//! Policies as stored: the tenant's (campaign `""`) and each campaign's, as JSON.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue, EntityTrait};

use super::{Conn, Tx, policy};
use crate::error::Result;

/// The stored JSON of a tenant's or campaign's policy.
pub async fn get(c: &impl Conn, tenant: &str, campaign: &str) -> Result<Option<String>> {
    let row = policy::Entity::find_by_id((tenant.to_owned(), campaign.to_owned())).one(c.conn()).await?;
    Ok(row.map(|r| r.policy))
}

/// Replaces it.
pub async fn put(tx: &Tx, tenant: &str, campaign: &str, json: String, now: DateTime<Utc>) -> Result<()> {
    policy::Entity::delete_by_id((tenant.to_owned(), campaign.to_owned())).exec(tx.conn()).await?;
    policy::Entity::insert(policy::ActiveModel {
        tenant_id: ActiveValue::Set(tenant.into()),
        campaign_id: ActiveValue::Set(campaign.into()),
        policy: ActiveValue::Set(json),
        updated_at: ActiveValue::Set(now),
    })
    .exec(tx.conn())
    .await?;
    Ok(())
}

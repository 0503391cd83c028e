//! The tenant's do-not-call lists, by blind index.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use super::{Conn, Tx, dnc};
use crate::error::Result;

/// The internal list's name as stored.
pub const INTERNAL: &str = "internal";
/// A campaign list's name as stored.
pub const CAMPAIGN: &str = "campaign";

/// A list's entry for a number, if the number is on it.
pub async fn entry(
    c: &impl Conn,
    tenant: &str,
    (list, campaign): (&str, &str),
    bi: &[u8],
) -> Result<Option<dnc::Model>> {
    let key = (tenant.to_owned(), list.to_owned(), campaign.to_owned(), bi.to_vec());
    Ok(dnc::Entity::find_by_id(key).one(c.conn()).await?)
}

/// Whether a campaign's list holds a number.
pub async fn on_campaign_list(c: &impl Conn, tenant: &str, campaign: &str, bi: &[u8]) -> Result<bool> {
    let listed = dnc::Entity::find()
        .filter(dnc::Column::TenantId.eq(tenant))
        .filter(dnc::Column::List.eq(CAMPAIGN))
        .filter(dnc::Column::CampaignId.eq(campaign))
        .filter(dnc::Column::BlindIndex.eq(bi.to_vec()))
        .count(c.conn())
        .await?;
    Ok(listed > 0)
}

/// Adds the numbers not yet on the list; returns how many were added.
pub async fn add(
    tx: &Tx,
    tenant: &str,
    (list, campaign): (&str, &str),
    keys: Vec<Vec<u8>>,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<u64> {
    let mut added = 0;
    for k in keys {
        if entry(tx, tenant, (list, campaign), &k).await?.is_some() {
            continue;
        }
        dnc::Entity::insert(dnc::ActiveModel {
            tenant_id: ActiveValue::Set(tenant.into()),
            list: ActiveValue::Set(list.into()),
            campaign_id: ActiveValue::Set(campaign.into()),
            blind_index: ActiveValue::Set(k),
            reason: ActiveValue::Set(reason.into()),
            added_at: ActiveValue::Set(now),
        })
        .exec(tx.conn())
        .await?;
        added += 1;
    }
    Ok(added)
}

/// Removes numbers from a list; returns how many were on it.
pub async fn remove(tx: &Tx, tenant: &str, (list, campaign): (&str, &str), keys: Vec<Vec<u8>>) -> Result<u64> {
    Ok(dnc::Entity::delete_many()
        .filter(dnc::Column::TenantId.eq(tenant))
        .filter(dnc::Column::List.eq(list))
        .filter(dnc::Column::CampaignId.eq(campaign))
        .filter(dnc::Column::BlindIndex.is_in(keys))
        .exec(tx.conn())
        .await?
        .rows_affected)
}

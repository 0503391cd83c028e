//! Which national registry copy is in force per region, and its file.

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{ActiveValue, EntityTrait};

use super::{Conn, Store, registry_copy};
use crate::error::Result;

/// A copy as recorded: region, date, file name.
pub async fn all(c: &impl Conn) -> Result<Vec<(String, NaiveDate, String)>> {
    let rows = registry_copy::Entity::find().all(c.conn()).await?;
    Ok(rows.into_iter().map(|r| (r.region, r.copy_date, r.file)).collect())
}

/// Records the region's new copy; returns the previous copy's file, if any.
pub async fn replace(
    store: &Store,
    region: &str,
    (date, numbers, file): (NaiveDate, u64, String),
    loaded_at: DateTime<Utc>,
) -> Result<Option<String>> {
    let tx = store.begin().await?;
    let previous = registry_copy::Entity::find_by_id(region.to_owned()).one(tx.conn()).await?;
    let row = registry_copy::ActiveModel {
        region: ActiveValue::Set(region.into()),
        copy_date: ActiveValue::Set(date),
        numbers: ActiveValue::Set(numbers as i64),
        file: ActiveValue::Set(file),
        loaded_at: ActiveValue::Set(loaded_at),
    };
    registry_copy::Entity::delete_by_id(region.to_owned()).exec(tx.conn()).await?;
    registry_copy::Entity::insert(row).exec(tx.conn()).await?;
    store.commit(tx, []).await?;
    Ok(previous.map(|p| p.file))
}

//! Which national registry copy is in force per region, and its file, kept
//! in the database too (in pieces), so that every replica can load it.

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{ActiveValue, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::{Conn, Store, registry_chunk, registry_copy};
use crate::error::Result;

/// A copy as recorded: region, date, file name.
pub async fn all(c: &impl Conn) -> Result<Vec<(String, NaiveDate, String)>> {
    let rows = registry_copy::Entity::find().all(c.conn()).await?;
    Ok(rows.into_iter().map(|r| (r.region, r.copy_date, r.file)).collect())
}

/// Bytes per stored piece of a copy's file.
pub const CHUNK: usize = 4 << 20;

/// Records the region's new copy with its file's `pieces`, and drops the
/// previous copy's pieces, in one transaction; returns the previous
/// copy's file, if any.
pub async fn replace(
    store: &Store,
    region: &str,
    (date, numbers, file): (NaiveDate, u64, String),
    pieces: impl Iterator<Item = Vec<u8>>,
    loaded_at: DateTime<Utc>,
) -> Result<Option<String>> {
    let tx = store.begin().await?;
    let previous = registry_copy::Entity::find_by_id(region.to_owned()).one(tx.conn()).await?;
    if let Some(p) = &previous {
        registry_chunk::Entity::delete_many().filter(registry_chunk::Column::File.eq(&p.file)).exec(tx.conn()).await?;
    }
    put_pieces(&tx, &file, pieces).await?;
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

/// Piece `seq` of a copy's file, if stored.
pub async fn piece(c: &impl Conn, file: &str, seq: i32) -> Result<Option<Vec<u8>>> {
    Ok(registry_chunk::Entity::find()
        .select_only()
        .column(registry_chunk::Column::Bytes)
        .filter(registry_chunk::Column::File.eq(file))
        .filter(registry_chunk::Column::Seq.eq(seq))
        .order_by_asc(registry_chunk::Column::Seq)
        .into_tuple()
        .one(c.conn())
        .await?)
}

/// Whether a copy's file is kept in the database (reads no piece).
pub async fn has_pieces(c: &impl Conn, file: &str) -> Result<bool> {
    let first: Option<i32> = registry_chunk::Entity::find()
        .select_only()
        .column(registry_chunk::Column::Seq)
        .filter(registry_chunk::Column::File.eq(file))
        .into_tuple()
        .one(c.conn())
        .await?;
    Ok(first.is_some())
}

/// Stores the pieces of a copy recorded before copies were kept in the
/// database (by the replica that has its file); a piece already there stays.
pub async fn keep_pieces(store: &Store, file: &str, pieces: impl Iterator<Item = Vec<u8>>) -> Result<()> {
    let tx = store.begin().await?;
    put_pieces(&tx, file, pieces).await?;
    store.commit(tx, []).await
}

/// Stores a file's pieces in order (a piece already there stays).
async fn put_pieces(tx: &super::Tx, file: &str, pieces: impl Iterator<Item = Vec<u8>>) -> Result<()> {
    for (seq, bytes) in pieces.enumerate() {
        let row = registry_chunk::ActiveModel {
            file: ActiveValue::Set(file.to_owned()),
            seq: ActiveValue::Set(seq as i32),
            bytes: ActiveValue::Set(bytes),
        };
        registry_chunk::Entity::insert(row)
            .on_conflict_do_nothing_on([registry_chunk::Column::File, registry_chunk::Column::Seq])
            .exec(tx.conn())
            .await?;
    }
    Ok(())
}

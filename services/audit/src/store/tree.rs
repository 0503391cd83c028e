//! The log's sequencer and tiles. One row per tenant holds the size of its
//! committed tree; an append locks it (`SELECT … FOR UPDATE` on PostgreSQL,
//! the write lock on SQLite), so a tenant's log has one writer at a time
//! whichever replica runs it, and moves it in the same transaction as the
//! entries. The root of every complete tile of 256 leaves is stored with
//! the leaf that completed it, so a replica holds only the levels above.

use std::collections::{BTreeSet, HashMap};

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, binary, string};

use super::log::Store;
use super::{event, pruned, pruned_leaf};
use crate::domain::merkle::{Hash, Tree};
use crate::domain::tiles::{TILE_WIDTH, Tiles};
use crate::error::{AuditError, Error, Result};

/// The committed size of each tenant's tree.
pub mod sequencer {
    use sea_orm::entity::prelude::*;
    /// One tenant's tree.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_tree")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        pub size: i64,
    }
    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
    impl ActiveModelBehavior for ActiveModel {}
}

/// The roots of complete tiles.
pub mod tile {
    use sea_orm::entity::prelude::*;
    /// The root of leaves `tile * 256 .. (tile + 1) * 256` of a tenant's log.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_tiles")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub tile: i64,
        pub hash: Vec<u8>,
    }
    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
    impl ActiveModelBehavior for ActiveModel {}
}

fn hash(bytes: Vec<u8>) -> Result<Hash> {
    bytes.try_into().map_err(|_| AuditError::LeafHashCorrupt.into())
}

/// The leaf hashes `from..to` of a tenant, kept or pruned; an error unless
/// every one is there.
async fn leaves(c: &impl ConnectionTrait, tenant: &str, from: u64, to: u64) -> Result<Vec<Hash>> {
    if from >= to {
        return Ok(Vec::new());
    }
    let range = |col: event::Column| col.gte(from as i64).and(col.lt(to as i64));
    let mut rows: Vec<(i64, Vec<u8>)> = pruned_leaf::Entity::find()
        .select_only()
        .columns([pruned_leaf::Column::Idx, pruned_leaf::Column::LeafHash])
        .filter(pruned_leaf::Column::TenantId.eq(tenant))
        .filter(pruned_leaf::Column::Idx.gte(from as i64))
        .filter(pruned_leaf::Column::Idx.lt(to as i64))
        .order_by_asc(pruned_leaf::Column::Idx)
        .into_tuple()
        .all(c)
        .await?;
    let kept: Vec<(i64, Vec<u8>)> = event::Entity::find()
        .select_only()
        .columns([event::Column::Idx, event::Column::LeafHash])
        .filter(event::Column::TenantId.eq(tenant))
        .filter(range(event::Column::Idx))
        .order_by_asc(event::Column::Idx)
        .into_tuple()
        .all(c)
        .await?;
    // A pruned leaf is kept in one table, then the other; an entry wins.
    rows.retain(|(i, _)| kept.first().is_none_or(|(k, _)| i < k));
    rows.extend(kept);
    if rows.len() as u64 != to - from || rows.iter().zip(from..).any(|((i, _), want)| *i as u64 != want) {
        return Err(AuditError::LeavesMissing { from, to }.into());
    }
    rows.into_iter().map(|(_, h)| hash(h)).collect()
}

async fn tile_roots(c: &impl ConnectionTrait, tenant: &str, from: u64, to: u64) -> Result<Vec<Hash>> {
    let rows: Vec<(i64, Vec<u8>)> = tile::Entity::find()
        .select_only()
        .columns([tile::Column::Tile, tile::Column::Hash])
        .filter(tile::Column::TenantId.eq(tenant))
        .filter(tile::Column::Tile.gte(from as i64))
        .filter(tile::Column::Tile.lt(to as i64))
        .order_by_asc(tile::Column::Tile)
        .into_tuple()
        .all(c)
        .await?;
    if rows.len() as u64 != to.saturating_sub(from) {
        return Err(AuditError::LeavesMissing { from: from * TILE_WIDTH, to: to * TILE_WIDTH }.into());
    }
    rows.into_iter().map(|(_, h)| hash(h)).collect()
}

async fn stored_size(c: &impl ConnectionTrait, tenant: &str) -> Result<u64> {
    let newest = |rows: Option<i64>| rows.map_or(0, |i| i as u64 + 1);
    let kept: Option<i64> = event::Entity::find()
        .select_only()
        .column(event::Column::Idx)
        .filter(event::Column::TenantId.eq(tenant))
        .order_by_desc(event::Column::Idx)
        .into_tuple()
        .one(c)
        .await?;
    let gone: Option<i64> = pruned_leaf::Entity::find()
        .select_only()
        .column(pruned_leaf::Column::Idx)
        .filter(pruned_leaf::Column::TenantId.eq(tenant))
        .order_by_desc(pruned_leaf::Column::Idx)
        .into_tuple()
        .one(c)
        .await?;
    Ok(Ord::max(newest(kept), newest(gone)))
}

async fn committed(c: &impl ConnectionTrait, tenant: &str) -> Result<u64> {
    let row = sequencer::Entity::find_by_id(tenant.to_owned()).lock_exclusive().one(c).await?;
    Ok(row.map_or(0, |r| r.size as u64))
}

/// What a tenant's tree must catch up with: its committed size, the tile
/// roots past `tiles_held`, and the leaves of the tile filling.
#[derive(Debug)]
pub struct Committed {
    /// The committed size.
    pub size: u64,
    /// Roots of the tiles completed past those held.
    pub roots: Vec<Hash>,
    /// The leaves of the partial tile.
    pub edge: Vec<Hash>,
    /// Leaves before this index were pruned.
    pub pruned: u64,
}

async fn catch_up(c: &impl ConnectionTrait, tenant: &str, size: u64, tiles_held: u64) -> Result<Committed> {
    let full = size / TILE_WIDTH;
    let roots = tile_roots(c, tenant, Ord::min(tiles_held, full), full).await?;
    let edge = leaves(c, tenant, full * TILE_WIDTH, size).await?;
    let pruned = pruned::Entity::find_by_id(tenant.to_owned()).one(c).await?.map_or(0, |p| p.first_index as u64);
    Ok(Committed { size, roots, edge, pruned })
}

impl Store {
    /// Begins an append: a write transaction that will hold the sequencer
    /// rows of the tenants it locks until it commits.
    pub async fn begin_append(&self) -> Result<Append> {
        Ok(Append { txn: guardline_runtime::storage::write_txn(self.db()).await? })
    }

    /// A tenant's committed size (without a lock).
    pub async fn committed_size(&self, tenant: &str) -> Result<u64> {
        Ok(sequencer::Entity::find_by_id(tenant.to_owned()).one(self.db()).await?.map_or(0, |r| r.size as u64))
    }

    /// What a reader holding `tiles_held` tiles needs to reach `size`.
    pub async fn catch_up(&self, tenant: &str, size: u64, tiles_held: u64) -> Result<Committed> {
        catch_up(self.db(), tenant, size, tiles_held).await
    }

    /// The size the stored leaves reach (without a lock).
    pub async fn stored_size(&self, tenant: &str) -> Result<u64> {
        stored_size(self.db(), tenant).await
    }

    /// The complete tiles `wanted`, each as the tree of its 256 leaves.
    pub async fn tiles(&self, tenant: &str, wanted: &BTreeSet<u64>) -> Result<Tiles> {
        let mut out = HashMap::new();
        for &t in wanted {
            let l = leaves(self.db(), tenant, t * TILE_WIDTH, (t + 1) * TILE_WIDTH).await?;
            out.insert(t, Tree::from_leaves(l));
        }
        Ok(out)
    }

    /// Every leaf hash from `from` up to `to`, kept or pruned.
    pub async fn leaves(&self, tenant: &str, from: u64, to: u64) -> Result<Vec<Hash>> {
        leaves(self.db(), tenant, from, to).await
    }
}

/// An append in progress. Dropped without [`Append::commit`], it rolls back.
#[derive(Debug)]
pub struct Append {
    txn: DatabaseTransaction,
}

impl Append {
    /// Locks the tenant's sequencer row (creating it), until commit or
    /// rollback, and returns its committed size.
    pub async fn lock(&self, tenant: &str) -> Result<u64> {
        let row = sequencer::ActiveModel { tenant_id: Set(tenant.to_owned()), size: Set(0) };
        sequencer::Entity::insert(row).on_conflict_do_nothing_on([sequencer::Column::TenantId]).exec(&self.txn).await?;
        committed(&self.txn, tenant).await
    }

    /// The size the stored leaves reach: past the committed size only when
    /// a version that kept no sequencer appended (or before the first
    /// start of this one), which [`Append::adopt`] then completes.
    pub async fn stored_size(&self, tenant: &str) -> Result<u64> {
        stored_size(&self.txn, tenant).await
    }

    /// Brings the sequencer of a tenant from `committed` up to `stored`
    /// leaves: stores the roots of the tiles completed in between, reading
    /// a tile's leaves at a time.
    pub async fn adopt(&self, tenant: &str, committed: u64, stored: u64) -> Result<()> {
        let mut tiles = Vec::new();
        for t in committed / TILE_WIDTH..stored / TILE_WIDTH {
            let l = leaves(&self.txn, tenant, t * TILE_WIDTH, (t + 1) * TILE_WIDTH).await?;
            tiles.push((t, Tree::from_leaves(l).root(TILE_WIDTH).map_err(|e| Error::Internal(e.to_string()))?));
            if tiles.len() == 256 {
                self.put_tiles(tenant, &std::mem::take(&mut tiles)).await?;
            }
        }
        self.put_tiles(tenant, &tiles).await?;
        self.set_size(tenant, stored).await
    }

    /// What this tenant's tree holding `tiles_held` tiles needs to reach `size`.
    pub async fn catch_up(&self, tenant: &str, size: u64, tiles_held: u64) -> Result<Committed> {
        catch_up(&self.txn, tenant, size, tiles_held).await
    }

    /// The ids among `ids` the tenant's log holds already.
    pub async fn existing(&self, tenant: &str, ids: Vec<String>) -> Result<Vec<String>> {
        Ok(event::Entity::find()
            .select_only()
            .column(event::Column::EventId)
            .filter(event::Column::TenantId.eq(tenant))
            .filter(event::Column::EventId.is_in(ids))
            .into_tuple()
            .all(&self.txn)
            .await?)
    }

    /// Stores entries.
    pub async fn insert(&self, rows: Vec<event::Model>) -> Result<()> {
        for chunk in rows.chunks(100) {
            event::Entity::insert_many(chunk.iter().cloned().map(event::ActiveModel::from)).exec(&self.txn).await?;
        }
        Ok(())
    }

    /// Stores the roots of completed tiles (the same root again is a no-op).
    pub async fn put_tiles(&self, tenant: &str, tiles: &[(u64, Hash)]) -> Result<()> {
        if tiles.is_empty() {
            return Ok(());
        }
        let rows = tiles.iter().map(|(t, h)| tile::ActiveModel {
            tenant_id: Set(tenant.to_owned()),
            tile: Set(*t as i64),
            hash: Set(h.to_vec()),
        });
        tile::Entity::insert_many(rows)
            .on_conflict_do_nothing_on([tile::Column::TenantId, tile::Column::Tile])
            .exec(&self.txn)
            .await?;
        Ok(())
    }

    /// Moves the tenant's committed size.
    pub async fn set_size(&self, tenant: &str, size: u64) -> Result<()> {
        sequencer::Entity::update_many()
            .col_expr(sequencer::Column::Size, Expr::value(size as i64))
            .filter(sequencer::Column::TenantId.eq(tenant))
            .exec(&self.txn)
            .await?;
        Ok(())
    }

    /// Commits: entries, tiles and sizes are durable together, or none is.
    pub async fn commit(self) -> Result<()> {
        Ok(self.txn.commit().await?)
    }
}

/// Creates the sequencer and tile tables. Existing logs are adopted on
/// their first append or read (see [`Append::adopt`]); a version without
/// them keeps running beside this one until it is gone.
#[derive(Debug)]
pub(super) struct CreateTreeTables;

impl MigrationName for CreateTreeTables {
    fn name(&self) -> &str {
        "m20261208_000200_audit_tree_tiles"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateTreeTables {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let t = Alias::new;
        m.create_table(
            Table::create()
                .table(t("audit_tree"))
                .if_not_exists()
                .col(string(t("tenant_id")).primary_key())
                .col(big_integer(t("size")))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(t("audit_tiles"))
                .if_not_exists()
                .col(string(t("tenant_id")))
                .col(big_integer(t("tile")))
                .col(binary(t("hash")))
                .primary_key(Index::create().col(t("tenant_id")).col(t("tile")))
                .to_owned(),
        )
        .await
    }
}

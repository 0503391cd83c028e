//! Leases: a named background job (webhook delivery, a tenant's key
//! rotation) runs in one replica at a time, and another replica takes it
//! over when its holder stops renewing: it died, or lost the database.
//!
//! A lease is a row `(name, holder, until)` in the service's own database.
//! It is taken by an insert that does nothing on conflict, or by one
//! conditional update that succeeds only if the lease ran out or is already
//! the caller's; so SQLite and PostgreSQL share the code, and no two holders
//! can both succeed. Time is the server's [`Clock`], never a caller's. A
//! holder renews well within the term; a job longer than the term renews as
//! it goes ([`Leases::renew`]) and stops when a renewal fails.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{string, timestamp_with_time_zone};

use crate::Result;
use crate::clock::Clock;

/// The lease table.
pub mod entity {
    use sea_orm::entity::prelude::*;
    /// One lease.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "guardline_leases")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        pub holder: String,
        pub until: ChronoDateTimeUtc,
    }
    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
    impl ActiveModelBehavior for ActiveModel {}
}

/// This process's leases on one database.
#[derive(Clone, Debug)]
pub struct Leases {
    db: DatabaseConnection,
    holder: String,
    clock: Clock,
}

impl Leases {
    /// Leases held as a fresh holder (one per process), timed by `clock`.
    pub fn new(db: DatabaseConnection, clock: Clock) -> Self {
        Self { db, holder: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()), clock }
    }

    /// The same holder, timed by `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Who this process is in the lease table.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Takes or extends the lease `name` for `term`: true if this process
    /// now holds it (it was free, ran out, or was already its own).
    pub async fn acquire(&self, name: &str, term: Duration) -> Result<bool> {
        let now = self.clock.now();
        let until = now + chrono::Duration::from_std(term).unwrap_or(chrono::Duration::MAX);
        let row =
            entity::ActiveModel { name: Set(name.to_owned()), holder: Set(self.holder.clone()), until: Set(until) };
        let inserted =
            entity::Entity::insert(row).on_conflict_do_nothing_on([entity::Column::Name]).exec(&self.db).await?;
        if matches!(inserted, sea_orm::TryInsertResult::Inserted(_)) {
            return Ok(true);
        }
        let taken = entity::Entity::update_many()
            .col_expr(entity::Column::Holder, Expr::value(self.holder.clone()))
            .col_expr(entity::Column::Until, Expr::value(until))
            .filter(entity::Column::Name.eq(name))
            .filter(entity::Column::Holder.eq(&self.holder).or(entity::Column::Until.lt(now)))
            .exec(&self.db)
            .await?;
        Ok(taken.rows_affected == 1)
    }

    /// Extends a lease this process holds and has not lost: false if it
    /// ran out and another replica took it (then stop the job).
    pub async fn renew(&self, name: &str, term: Duration) -> Result<bool> {
        let until = self.clock.now() + chrono::Duration::from_std(term).unwrap_or(chrono::Duration::MAX);
        let renewed = entity::Entity::update_many()
            .col_expr(entity::Column::Until, Expr::value(until))
            .filter(entity::Column::Name.eq(name))
            .filter(entity::Column::Holder.eq(&self.holder))
            .exec(&self.db)
            .await?;
        Ok(renewed.rows_affected == 1)
    }

    /// Gives a lease up, so another replica need not wait for its term.
    pub async fn release(&self, name: &str) -> Result<()> {
        entity::Entity::delete_many()
            .filter(entity::Column::Name.eq(name))
            .filter(entity::Column::Holder.eq(&self.holder))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Who holds `name` and until when, if anyone.
    pub async fn holder_of(&self, name: &str) -> Result<Option<(String, DateTime<Utc>)>> {
        Ok(entity::Entity::find_by_id(name.to_owned()).one(&self.db).await?.map(|r| (r.holder, r.until)))
    }
}

/// The lease table's migration, for a service's migrator.
pub fn migrations() -> Vec<Box<dyn MigrationTrait>> {
    vec![Box::new(CreateLeases)]
}

struct CreateLeases;

impl MigrationName for CreateLeases {
    fn name(&self) -> &str {
        "m20261208_000300_guardline_leases"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateLeases {
    async fn up(&self, m: &SchemaManager) -> std::result::Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Alias::new("guardline_leases"))
                .if_not_exists()
                .col(string(Alias::new("name")).primary_key())
                .col(string(Alias::new("holder")))
                .col(timestamp_with_time_zone(Alias::new("until")))
                .to_owned(),
        )
        .await
    }
}

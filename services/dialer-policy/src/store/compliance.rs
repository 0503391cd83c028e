//! Reassigned-numbers results and the missing-calendar reports.

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{ActiveValue, ColumnTrait, EntityTrait, QueryFilter};

use super::{Conn, Tx, calendar_alert, reassigned};
use crate::domain::reassigned::{Answer, QueryResult};
use crate::error::Result;

/// Every imported result for a number of the tenant.
pub async fn results(c: &impl Conn, tenant: &str, blind_index: &[u8]) -> Result<Vec<QueryResult>> {
    let rows = reassigned::Entity::find()
        .filter(reassigned::Column::TenantId.eq(tenant))
        .filter(reassigned::Column::BlindIndex.eq(blind_index.to_vec()))
        .all(c.conn())
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| Some(QueryResult { asked: r.asked, answer: Answer::parse(&r.answer)?, obtained: r.obtained }))
        .collect())
}

/// Stores results obtained on `obtained`, each `(blind index, asked, answer)`;
/// a result for the same number and date replaces the older one.
pub async fn put_results(
    tx: &Tx,
    tenant: &str,
    obtained: NaiveDate,
    rows: &[(Vec<u8>, NaiveDate, Answer)],
) -> Result<()> {
    for (key, asked, answer) in rows {
        reassigned::Entity::delete_by_id((tenant.to_owned(), key.clone(), *asked)).exec(tx.conn()).await?;
        reassigned::Entity::insert(reassigned::ActiveModel {
            tenant_id: ActiveValue::Set(tenant.into()),
            blind_index: ActiveValue::Set(key.clone()),
            asked: ActiveValue::Set(*asked),
            answer: ActiveValue::Set(answer.as_str().into()),
            obtained: ActiveValue::Set(obtained),
        })
        .exec(tx.conn())
        .await?;
    }
    Ok(())
}

/// Whether the missing calendar `(tenant, pack, year)` was reported.
pub async fn calendar_reported(c: &impl Conn, key: &(String, String, i32)) -> Result<bool> {
    Ok(calendar_alert::Entity::find_by_id(key.clone()).one(c.conn()).await?.is_some())
}

/// Records that it is reported now; false if another transaction (another
/// replica's call) recorded it first, which then reports it alone.
pub async fn calendar_report(
    tx: &Tx,
    (tenant, pack, year): &(String, String, i32),
    now: DateTime<Utc>,
) -> Result<bool> {
    let inserted = calendar_alert::Entity::insert(calendar_alert::ActiveModel {
        tenant_id: ActiveValue::Set(tenant.clone()),
        pack: ActiveValue::Set(pack.clone()),
        year: ActiveValue::Set(*year),
        raised_at: ActiveValue::Set(now),
    })
    .on_conflict_do_nothing_on([
        calendar_alert::Column::TenantId,
        calendar_alert::Column::Pack,
        calendar_alert::Column::Year,
    ])
    .exec(tx.conn())
    .await?;
    Ok(matches!(inserted, sea_orm::TryInsertResult::Inserted(_)))
}

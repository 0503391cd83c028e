//! Compliance data the dialer keeps beside its lists: Reassigned Numbers
//! Database results (imported per tenant, by blind index, or asked of a live
//! source behind [`ReassignedSource`]), and the once-per-tenant report of a
//! jurisdiction pack's missing official holiday calendar.

use chrono::{DateTime, NaiveDate, Utc};
use guardline_audit_client::EventBuilder;

use crate::domain::decision::RuleResult;
use crate::domain::reassigned::{self, Answer, QueryResult};
use crate::error::{Error, Result};
use crate::service::{Caller, Dialer};
use crate::store::{Store, Tx, compliance};

/// Where reassigned-number results come from: the imported files (the
/// default, [`Imported`]), or a live client of the FCC's database, which
/// implements this port.
#[async_trait::async_trait]
pub trait ReassignedSource: Send + Sync {
    /// Every result known for the number (by blind index) in `tenant`.
    async fn results(&self, tenant: &str, blind_index: &[u8]) -> Result<Vec<QueryResult>>;
}

/// The results imported with `ImportDnc` (`DNC_LIST_REASSIGNED`).
#[derive(Clone, Debug)]
pub struct Imported(pub Store);

#[async_trait::async_trait]
impl ReassignedSource for Imported {
    async fn results(&self, tenant: &str, blind_index: &[u8]) -> Result<Vec<QueryResult>> {
        compliance::results(&self.0, tenant, blind_index).await
    }
}

impl Dialer {
    /// The `consent.reassigned` rule for a consent granted at `granted`.
    pub(crate) async fn reassigned_rule(
        &self,
        tenant: &str,
        blind_index: &[u8],
        granted: DateTime<Utc>,
    ) -> Result<RuleResult> {
        let results = self.reassigned.results(tenant, blind_index).await?;
        Ok(reassigned::judge(granted, &results))
    }

    /// Stores a results file obtained on `obtained` (`dnc.manage`); a
    /// result for the same number and date replaces the older one.
    pub async fn import_reassigned(
        &self,
        who: &Caller,
        tenant: &str,
        obtained: NaiveDate,
        rows: Vec<(String, NaiveDate, Answer)>,
    ) -> Result<u64> {
        who.require("dnc.manage", tenant, &[])?;
        let numbers: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
        let keys = self.blind_indexes(tenant, &numbers, &[]).await?;
        let results: Vec<_> =
            rows.into_iter().zip(&keys).map(|((_, asked, answer), key)| (key.clone(), asked, answer)).collect();
        let tx = self.store.begin().await?;
        compliance::put_results(&tx, tenant, obtained, &results).await?;
        let (user, service) = who.actor();
        let event = EventBuilder::new(tenant, "dialer.reassigned.import")
            .actor(user, service)
            .detail("obtained", obtained)
            .detail("results", keys.len());
        self.store.commit(tx, [event]).await?;
        Ok(keys.len() as u64)
    }

    /// Reports, once per tenant, pack and year, a pack whose official
    /// calendar for this year (or, from 1 December, next year) is missing:
    /// an audit event that the audit service raises as `calendar_missing`.
    pub(crate) async fn report_missing_calendars(
        &self,
        tx: &Tx,
        tenant: &str,
        packs: &[String],
        now: DateTime<Utc>,
    ) -> Result<()> {
        for name in packs {
            let Some(year) = self.packs.get(name).and_then(|p| p.days().missing_year(now.date_naive())) else {
                continue;
            };
            let key = (tenant.to_owned(), name.clone(), year);
            if self.calendars_reported.lock().is_ok_and(|seen| seen.contains(&key)) {
                continue;
            }
            // Another replica, or this one before a restart, may have reported it.
            if compliance::calendar_reported(tx, &key).await? {
                if let Ok(mut seen) = self.calendars_reported.lock() {
                    seen.insert(key);
                }
                continue;
            }
            if !compliance::calendar_report(tx, &key, now).await? {
                continue;
            }
            let event = EventBuilder::new(tenant, "dialer.calendar.missing")
                .actor("", crate::NAME)
                .resource("pack", name)
                .detail("pack", name)
                .detail("year", year);
            tx.enqueue(event).await?;
        }
        Ok(())
    }
}

/// A results file's header date must be a date, not in the future.
pub(crate) fn obtained_date(at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Result<NaiveDate> {
    let at = at.ok_or_else(|| Error::invalid("header.copy_date", "the date the results were obtained"))?;
    if at > now {
        return Err(Error::invalid("header.copy_date", "not in the future"));
    }
    Ok(at.date_naive())
}

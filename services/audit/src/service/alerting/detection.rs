//! Detection across replicas. One replica at a time holds the alerting
//! lease; it reads every tenant's log from where the detector last stopped
//! (whichever replica appended the events), feeds the rules, checks
//! delivery gaps and sends the due webhooks. Every replica relays the
//! alerts raised, by whichever holder, to its own `WatchAlerts` streams.
//! When the holder dies, another takes the lease at its term and goes on
//! from the stored cursors; the rules' sliding windows start afresh there.

use std::time::Duration;

use guardline_runtime::lease::Leases;

use super::Alerting;
use crate::domain::canonical::Event;
use crate::error::{AuditError, Result};

/// The lease of detection and delivery.
pub const LEASE: &str = "audit.alerting";

/// Entries read from one tenant's log at a time.
const PAGE: u64 = 1000;

impl Alerting {
    /// One round, if this replica holds (or takes) the lease for `term`:
    /// new events through the rules, gap checks, due webhooks. Returns
    /// whether it held the lease.
    pub async fn round(&self, leases: &Leases, term: Duration) -> Result<bool> {
        if !leases.acquire(LEASE, term).await? {
            return Ok(false);
        }
        // Thresholds may have been changed through another replica: every
        // tenant's, re-read in one query (a quiet tenant's gap check too).
        let fresh = self.store.all_thresholds().await?;
        *self.thresholds.lock().await =
            fresh.into_iter().filter_map(|(t, json)| serde_json::from_str(&json).ok().map(|th| (t, th))).collect();
        self.tail().await?;
        self.check_gaps(self.clock.now()).await?;
        self.deliver_due().await?;
        Ok(true)
    }

    /// Feeds the rules every event appended since the cursors.
    async fn tail(&self) -> Result<()> {
        let cursors = self.store.alert_cursors().await?;
        for (tenant, size) in self.store.tree_sizes().await? {
            let mut next = cursors.get(&tenant).copied().unwrap_or(0);
            while next < size {
                let page = self.store.records(&tenant, next, Some(PAGE)).await?;
                let Some(last) = page.last().map(|r| r.index) else { break };
                let events = page
                    .iter()
                    .map(|r| Event::decode(&r.entry).ok_or(AuditError::EntryCorrupt { index: r.index as i64 }))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                self.observe(&events).await?;
                next = last + 1;
                self.store.set_alert_cursor(&tenant, next).await?;
            }
        }
        Ok(())
    }

    /// Sends this replica's watchers the alerts raised since the last relay
    /// (on the first, only those raised from then on).
    pub async fn relay(&self) -> Result<usize> {
        let mut last = self.relayed.lock().await;
        if last.is_none() {
            *last = Some(self.store.newest_alert().await?.unwrap_or_default());
        }
        let mut sent = 0;
        loop {
            let alerts = self.store.alerts_after(last.as_deref(), 500).await?;
            let Some(newest) = alerts.last().map(|a| a.id.clone()) else { return Ok(sent) };
            sent += alerts.len();
            for a in alerts {
                let _ = self.tx.send(a);
            }
            *last = Some(newest);
        }
    }
}

//! Bulk movement of leads: guarded export (permission, reason for clear
//! values, a per-tenant daily quota, a synchronous audit event with the
//! count) and validated import (per-row errors, duplicates found by blind
//! index, each row all-or-nothing).

use guardline_audit_client::EventBuilder;
use guardline_audit_client::Outcome;
use guardline_authz::{Resource, Subject, decide};

use crate::error::{Error, Result, VaultError};
use crate::service::{LeadInput, Vault, View};

/// A refused import row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowError {
    /// Row number in the source.
    pub row: u64,
    /// Offending field.
    pub field: String,
    /// Why.
    pub reason: String,
}

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Rows stored.
    pub imported: u64,
    /// Rows whose number already belongs to a lead.
    pub duplicates: u64,
    /// Rows refused.
    pub errors: Vec<RowError>,
}

impl Vault {
    /// The leads to export (every lead within the caller's read scope), after
    /// checking permission, reason and quota and recording the export in
    /// audit synchronously. With `clear`, the views are not to be masked.
    pub async fn export(&self, who: &Subject, tenant: &str, clear: bool, reason: &str) -> Result<Vec<View>> {
        let res = Resource { tenant: tenant.into(), ..Default::default() };
        let d = decide(who, "lead.export", &res);
        if !d.allowed {
            return Err(Error::PermissionDenied(d.rule));
        }
        if clear {
            let d = decide(who, "lead.reveal", &res);
            if !d.allowed {
                return Err(Error::PermissionDenied(format!("clear values: {}", d.rule)));
            }
            if reason.trim().len() < 4 {
                return Err(Error::invalid("reason", "clear exports need a reason of at least 4 characters"));
            }
        }
        let mut views = Vec::new();
        let mut before: Option<String> = None;
        loop {
            let page = self.list(who, tenant, before.as_deref(), 1000).await?;
            let done = page.len() < 1000;
            before = page.last().map(|v| v.row.id.clone());
            views.extend(page);
            if done {
                break;
            }
        }
        let day = self.clock.now().format("%Y-%m-%d").to_string();
        let used = self.store.exports(tenant, &day).await?;
        if used + views.len() as u64 > self.export_quota {
            return Err(VaultError::ExportQuotaExceeded { quota: self.export_quota }.into());
        }
        let event = EventBuilder::new(tenant, "lead.export")
            .actor(&who.user, "")
            .outcome(Outcome::Allowed, reason.trim())
            .detail("count", views.len())
            .detail("clear", clear);
        self.audit().append_now(vec![event.build()]).await?;
        self.store.set_exports(tenant, &day, used + views.len() as u64).await?;
        Ok(views)
    }

    /// Imports rows; each valid row is stored in its own transaction, so a
    /// bad row never half-writes and never blocks the good ones.
    pub async fn import(&self, who: &Subject, tenant: &str, rows: Vec<(u64, LeadInput)>) -> Result<ImportReport> {
        let mut report = ImportReport::default();
        for (n, input) in rows {
            match self.create(who, tenant, input).await {
                Ok(_) => report.imported += 1,
                Err(Error::InvalidArgument { reason, .. }) if reason == crate::service::DUPLICATE => {
                    report.duplicates += 1
                }
                Err(Error::InvalidArgument { field, reason }) => report.errors.push(RowError { row: n, field, reason }),
                Err(Error::PermissionDenied(reason)) => {
                    report.errors.push(RowError { row: n, field: "lead.owner_id".into(), reason })
                }
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }
}

//! Deletion: purging what retention makes due, erasing a lead's recordings,
//! and the destruction both end in (the key first, then the object; the
//! row stays as a tombstone). Holds, spoken consent and failed MACs keep a
//! recording.

use chrono::{DateTime, Utc};
use guardline_audit_client::EventBuilder;
use object_store::ObjectStoreExt;
use object_store::path::Path;

use super::{DEFAULT_DELETE_AFTER_DAYS, PurgeRun, Purged, Recordings, object_error};
use crate::domain::recording::{Retention, retention};
use crate::error::Result;
use crate::store::{recording, state};

impl Recordings {
    /// Destroys a recording: key first (crypto-shredding), then the object;
    /// the row stays as a tombstone.
    async fn destroy(&self, row: recording::Model, new_state: &str, action: &str, actor: (&str, &str)) -> Result<()> {
        let path = row.object_path.clone();
        let event = EventBuilder::new(&row.tenant_id, action).actor(actor.0, actor.1).resource("recording", &row.id);
        self.store.tombstone(row, new_state, event).await?;
        match self.objects.delete(&Path::from(path.as_str())).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(object_error(e)),
        }
    }

    /// Deletes what is due at `as_of`, at most `limit` (0: no limit), or
    /// with `dry_run` only counts it. Held recordings, and recordings that
    /// hold spoken consent while the consent is kept, are counted, never
    /// deleted.
    pub async fn purge(
        &self,
        tenant: &str,
        as_of: DateTime<Utc>,
        run: PurgeRun,
        actor: (&str, &str),
    ) -> Result<Purged> {
        let mut out = Purged::default();
        let mut classes = std::collections::HashMap::new();
        for r in self.store.stored(tenant, None).await? {
            // Hold, dates and class decide deletion: an edited row is left
            // alone (and audited), never purged on its edited values.
            let Some(r) = self.intact(r, actor.1).await? else { continue };
            if !classes.contains_key(&r.retention_class) {
                // A class deleted since keeps its recordings at the default period.
                let days =
                    self.retention_class(tenant, &r.retention_class).await.map_or(DEFAULT_DELETE_AFTER_DAYS, |c| c.1);
                classes.insert(r.retention_class.clone(), days);
            }
            let stored_at = r.stored_at.unwrap_or(r.started_at);
            let class_due = stored_at + chrono::Duration::days(classes[&r.retention_class]);
            match retention(class_due, r.retain_until, r.consent_length_ms.is_some(), r.legal_hold, as_of) {
                Retention::Keep => {}
                Retention::KeepForConsent => out.kept_for_consent += 1,
                Retention::Held => out.held += 1,
                Retention::Purge if run.limit > 0 && out.purged >= u64::from(run.limit) => out.more = true,
                Retention::Purge => {
                    if !run.dry_run {
                        self.destroy(r, state::PURGED, "recording.purge", actor).await?;
                    }
                    out.purged += 1;
                }
            }
        }
        Ok(out)
    }

    /// Erases a lead's recordings, except those under legal hold, which are
    /// reported back. Returns (erased, held ids).
    pub async fn erase_lead(&self, tenant: &str, lead: &str, actor: (&str, &str)) -> Result<(u64, Vec<String>)> {
        let (mut erased, mut held) = (0, Vec::new());
        for r in self.store.stored(tenant, Some(lead)).await? {
            // A row that fails its MAC may be held: it is reported as held
            // (the erasure waits for a person), never deleted.
            let id = r.id.clone();
            let Some(r) = self.intact(r, actor.1).await? else {
                held.push(id);
                continue;
            };
            if r.legal_hold {
                held.push(r.id.clone());
                continue;
            }
            self.destroy(r, state::ERASED, "recording.erase", actor).await?;
            erased += 1;
        }
        Ok((erased, held))
    }
}

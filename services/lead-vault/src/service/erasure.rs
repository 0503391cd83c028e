//! Erasure by crypto-shredding. `request_erasure` opens a case with a
//! deadline; `execute_erasure` asks recordings to erase the lead's
//! recordings (a legal hold blocks the case), then in one transaction
//! deletes the lead's sealed record key and ciphertexts, moves its blind
//! indexes to the tenant's internal do-not-call list and queues the receipt
//! for audit. Consent records stay: they hold the blind index and evidence
//! hashes, no PII.

use chrono::Duration;
use guardline_audit_client::EventBuilder;
use guardline_authz::{Resource, Subject, decide};

use crate::error::{Error, Result, VaultError};
use crate::service::{Actor, Vault};
use crate::store::erasure_case;
use guardline_phone::Phone;

/// Case states as stored.
pub use crate::domain::erasure as state;

/// The recordings service as erasure needs it: erase every recording of a
/// lead, except those under legal hold. Returns (erased, held recording ids).
#[async_trait::async_trait]
pub trait RecordingsEraser: Send + Sync {
    /// Erases the lead's recordings.
    async fn erase_lead(&self, tenant: &str, lead: &str) -> Result<(u64, Vec<String>)>;
}

/// Whom the data subject names.
#[derive(Clone, Debug)]
pub enum ErasureSubject {
    /// A lead id.
    Lead(String),
    /// A phone number (E.164, or national with the tenant's region).
    Phone(String),
}

impl Vault {
    fn require_erasure(who: &Subject, tenant: &str) -> Result<()> {
        let d = decide(who, "erasure.execute", &Resource { tenant: tenant.into(), ..Default::default() });
        if d.allowed { Ok(()) } else { Err(Error::PermissionDenied(d.rule)) }
    }

    /// Opens an erasure case (or returns the lead's open one).
    pub async fn request_erasure(
        &self,
        who: &Subject,
        tenant: &str,
        subject: ErasureSubject,
    ) -> Result<erasure_case::Model> {
        Self::require_erasure(who, tenant)?;
        let lead_id = match subject {
            ErasureSubject::Lead(id) if id.is_empty() => return Err(Error::invalid("lead_id", "required")),
            ErasureSubject::Lead(id) => self.store.tenant_lead(tenant, &id).await?.ok_or(Error::NotFound)?.id,
            ErasureSubject::Phone(p) => {
                let phone = Phone::parse(&p, None)
                    .map_err(|_| Error::invalid("phone", "not a valid phone number in E.164 form (+8613812345678)"))?;
                let key = self.index_key(tenant).await?;
                let bi = phone.blind_index(&key).to_vec();
                self.store.lead_of_number(tenant, bi).await?.ok_or(Error::NotFound)?
            }
        };
        if let Some(open) = self.store.open_case(tenant, &lead_id).await? {
            return Ok(open);
        }
        let deadline = self.settings(tenant).await?.erasure_deadline_days;
        let now = self.clock.now();
        let case = erasure_case::Model {
            id: format!("erasure-{}", uuid::Uuid::now_v7().simple()),
            tenant_id: tenant.into(),
            lead_id,
            state: state::OPEN.into(),
            requested_at: now,
            due_at: now + Duration::days(i64::from(deadline)),
            executed_at: None,
            blocked_reason: String::new(),
            requested_by: who.user.clone(),
        };
        let event = EventBuilder::new(tenant, "erasure.request")
            .actor(&who.user, "")
            .resource("erasure_case", &case.id)
            .detail("lead_id", &case.lead_id)
            .detail("due_at", case.due_at.to_rfc3339());
        self.store.insert_case(&case, event).await?;
        Ok(case)
    }

    /// Executes a case: recordings first (a legal hold blocks), then the lead.
    pub async fn execute_erasure(&self, who: &Subject, tenant: &str, case_id: &str) -> Result<erasure_case::Model> {
        Self::require_erasure(who, tenant)?;
        if case_id.is_empty() {
            return Err(Error::invalid("case_id", "required"));
        }
        let case = self.store.case(tenant, case_id).await?.ok_or(Error::NotFound)?;
        if case.state == state::DONE {
            return Err(VaultError::CaseAlreadyExecuted.into());
        }
        let recordings = self.recordings.as_ref().ok_or_else(|| Error::Unavailable("recordings".into()))?;
        let (recordings_erased, held) = recordings.erase_lead(tenant, &case.lead_id).await?;
        if !held.is_empty() {
            let reason = format!("{} recording(s) under legal hold", held.len());
            self.store.block_case(case_id, &reason).await?;
            return Ok(erasure_case::Model { state: state::BLOCKED.into(), blocked_reason: reason, ..case });
        }
        let now = self.clock.now();
        let receipt = |removed: bool, dnc_added: usize| {
            EventBuilder::new(tenant, "erasure.execute")
                .actor(&who.user, "")
                .resource("erasure_case", case_id)
                .detail("lead_id", &case.lead_id)
                .detail("record_key_destroyed", removed)
                .detail("fields", "phones,name,address,needs,notes")
                .detail("dnc_added", dnc_added)
                .detail("recordings_erased", recordings_erased)
                .detail("executed_at", now.to_rfc3339())
        };
        self.store.erase_lead(tenant, (case_id, &case.lead_id), now, receipt).await?;
        Ok(erasure_case::Model {
            state: state::DONE.into(),
            executed_at: Some(now),
            blocked_reason: String::new(),
            ..case
        })
    }

    /// Cases of the tenant, newest first.
    pub async fn list_erasure_cases(
        &self,
        who: &Actor<'_>,
        tenant: &str,
        state: Option<&str>,
        overdue_only: bool,
    ) -> Result<Vec<erasure_case::Model>> {
        who.require("erasure.execute", tenant)?;
        let overdue_at = overdue_only.then(|| self.clock.now());
        self.store.cases(tenant, state, overdue_at).await
    }
}

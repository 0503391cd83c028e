//! Journey 8, audit: the tenant's data operations are in its log, which the
//! auditor exports and verifies offline with `guardline-audit-log` (every
//! signed tree head, RFC 9162 Merkle tree, Ed25519).

use anyhow::Result;
pub use guardline_audit_log::verify::Finding;
use guardline_proto::audit::v1 as apb;

use crate::{Mesh, Org, audit_events, audit_service, bearer, consented_lead};

/// What journey 8 saw.
#[derive(Debug)]
pub struct Audit {
    /// A lead created and consented to in this journey.
    pub lead: String,
    /// The `consent.record` events in the log.
    pub events: Vec<apb::AuditEvent>,
    /// The export, as JSON lines.
    pub export: String,
    /// What offline verification of the export found.
    pub finding: Finding,
}

/// Journey 8.
pub async fn audit(m: &impl Mesh, org: &Org) -> Result<Audit> {
    m.step("8. Audit: the tenant's log, exported and verified offline");
    let lead = consented_lead(m, org, "+8613912348888").await?;
    let events = audit_events(m, org, "consent.record").await?;
    m.say(&format!("the log holds the consent just recorded ({} consent events)", events.len()));
    let req = apb::ExportEventsRequest { tenant_id: org.tenant.clone(), range: None };
    let mut stream = audit_service(m)?.export_events(bearer(&org.auditor, req)).await?.into_inner();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.message().await? {
        bytes.extend_from_slice(&chunk.data);
    }
    let export = String::from_utf8(bytes)?;
    let finding =
        guardline_audit_log::export::verify_export(&export, &m.audit_pins()?).map_err(|e| anyhow::anyhow!("{e}"))?;
    match &finding {
        Finding::Intact { size } => {
            m.say(&format!("{size} entries, every signed tree head verified with a pinned key (RFC 9162, Ed25519)"))
        }
        Finding::Tampered { index, problem } => m.say(&format!("TAMPERED at {index}: {problem}")),
    }
    m.say("`guardline audit verify --tenant T` does the same from the command line");
    Ok(Audit { lead, events, export, finding })
}

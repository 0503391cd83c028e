//! Journey 6, erasure: a customer asks by phone number; the admin executes
//! the case, which crypto-shreds the lead, erases its recordings and puts
//! the number on the internal do-not-call list, while the consent history
//! stays as evidence without personal data.

use anyhow::Result;
use guardline_proto::audit::v1 as apb;
use guardline_proto::dialer::v1 as dpb;
use guardline_proto::recordings::v1 as rpb;
use guardline_proto::vault::v1 as vpb;

use crate::dialing::AGENT_LINE;
use crate::{Mesh, Org, audit_events, bearer, consented_lead, dialer, recordings, refused, upload_recording, vault};

/// The number of the customer who asks.
pub const CUSTOMER: &str = "+8613912347777";

/// What journey 6 saw.
#[derive(Debug)]
pub struct Erasure {
    /// The customer's lead.
    pub lead: String,
    /// The case as opened and as executed.
    pub opened: vpb::ErasureCase,
    /// See `opened`.
    pub done: vpb::ErasureCase,
    /// Reading the lead afterwards.
    pub lead_gone: tonic::Status,
    /// Reading its recording afterwards.
    pub recording_gone: tonic::Status,
    /// Checking a call to the number afterwards.
    pub dial: dpb::CheckCallResponse,
    /// The lead's consent history afterwards.
    pub kept: Vec<vpb::ConsentRecord>,
    /// The `erasure.execute` receipts in audit.
    pub receipts: Vec<apb::AuditEvent>,
}

/// Journey 6.
pub async fn erasure(m: &impl Mesh, org: &Org) -> Result<Erasure> {
    m.step("6. Erasure: crypto-shredding on request");
    let lead = consented_lead(m, org, CUSTOMER).await?;
    let rec = upload_recording(m, org, &lead, None).await?;
    let ask = vpb::RequestErasureRequest {
        tenant_id: org.tenant.clone(),
        subject: Some(vpb::request_erasure_request::Subject::Phone(CUSTOMER.into())),
    };
    let opened = vault(m)?.request_erasure(bearer(&org.admin, ask)).await?.into_inner();
    let due = opened.due_at.as_ref().and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0));
    m.say(&format!(
        "erasure case {} opened, due {}",
        opened.id,
        due.map(|t| t.date_naive().to_string()).unwrap_or_default()
    ));
    let exec = vpb::ExecuteErasureRequest { tenant_id: org.tenant.clone(), case_id: opened.id.clone() };
    let done = vault(m)?.execute_erasure(bearer(&org.admin, exec)).await?.into_inner();
    m.say("executed: record key destroyed, ciphertexts deleted, recordings erased, number on the internal do-not-call list");
    let get = vpb::GetLeadRequest { tenant_id: org.tenant.clone(), lead_id: lead.clone() };
    let lead_gone = refused(vault(m)?.get_lead(bearer(&org.admin, get)).await, "reading an erased lead")?;
    let get = rpb::GetRecordingRequest { tenant_id: org.tenant.clone(), recording_id: rec.id.clone() };
    let recording_gone =
        refused(recordings(m, m.gateway())?.get_recording(bearer(&org.admin, get)).await, "reading an erased call")?;
    m.say(&format!("the lead: {:?}; its recording: {:?}", lead_gone.code(), recording_gone.code()));
    let call = dpb::CheckCallRequest {
        tenant_id: org.tenant.clone(),
        callee: Some(dpb::check_call_request::Callee::E164(CUSTOMER.into())),
        caller_line: AGENT_LINE.into(),
        purpose: "service".into(),
        ..Default::default()
    };
    let dial = dialer(m, m.gateway())?.check_call(bearer(&org.agent1, call)).await?.into_inner();
    m.say(&format!("calling the number again: {}", crate::dialing::explain(&dial)));
    let history = vpb::GetConsentHistoryRequest { tenant_id: org.tenant.clone(), lead_id: lead.clone() };
    let kept = vault(m)?.get_consent_history(bearer(&org.admin, history)).await?.into_inner().records;
    m.say(&format!("its consent history, kept as evidence without PII: {} records", kept.len()));
    let receipts = audit_events(m, org, "erasure.execute").await?;
    Ok(Erasure { lead, opened, done, lead_gone, recording_gone, dial, kept, receipts })
}

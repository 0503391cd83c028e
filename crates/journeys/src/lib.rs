//! The product's user journeys 1–8 as client code over the public gRPC API,
//! written once and used by `guardline demo` (which narrates them through
//! [`Mesh::say`]) and by the end-to-end suite (which asserts on what each
//! journey returns). Every journey fails with an error when the mesh answers
//! what the product promises it never would (a read that no longer decrypts,
//! a refused step that went through).
//!
//! Each journey builds what it needs in the tenant it is given, so the suite
//! can run them in parallel and the demo can run them in one tenant.

pub mod audit;
pub mod dialing;
pub mod erasure;
pub mod exfiltration;
pub mod leads;
pub mod onboarding;
pub mod recording;
pub mod rotation;
pub mod time;

use anyhow::Result;
use guardline_proto::audit::v1 as apb;
use guardline_proto::audit::v1::audit_service_client::AuditServiceClient;
use guardline_proto::dialer::v1::dialer_policy_service_client::DialerPolicyServiceClient;
use guardline_proto::identity::v1::identity_service_client::IdentityServiceClient;
use guardline_proto::recordings::v1 as rpb;
use guardline_proto::recordings::v1::recordings_service_client::RecordingsServiceClient;
use guardline_proto::vault::v1 as vpb;
use guardline_proto::vault::v1::lead_vault_service_client::LeadVaultServiceClient;
use guardline_runtime::GrpcChannel;
use tonic::{Request, Status};

pub use onboarding::{Org, PASSWORD, login, onboard};

/// Pinned audit head-signing keys (re-exported for the meshes).
pub use guardline_audit_log::pin::Pins;

/// A running mesh, as the journeys reach it, and where they narrate.
pub trait Mesh {
    /// A channel to `service` as the mesh identity `identity`.
    fn channel(&self, service: &str, identity: &str) -> Result<GrpcChannel>;
    /// The identity that may create tenants (a platform admin).
    fn platform_admin(&self) -> &str;
    /// The identity a gateway or client application calls with.
    fn gateway(&self) -> &str;
    /// The narration hook: a journey begins a numbered step.
    fn step(&self, _title: &str) {}
    /// The narration hook: what the services just answered. Lines never
    /// hold a clear value of personal data.
    fn say(&self, _line: &str) {}
    /// Rotates the tenant's key in the key store, as a key administrator
    /// would in Vault; `false` where the mesh's keyring is out of reach
    /// (the embedded local keyring lives inside `guardline up`).
    fn rotate_tenant_key(&self, _tenant: &str) -> Result<bool> {
        Ok(false)
    }
    /// Makes tenant key versions below `version` unusable for decryption;
    /// `false` where the keyring is out of reach.
    fn set_min_decryption_version(&self, _tenant: &str, _version: u64) -> Result<bool> {
        Ok(false)
    }
    /// The fingerprints of the audit service's head-signing keys, as its
    /// operator hands them out of band: an export is verified against
    /// these, never against the keys it carries.
    fn audit_pins(&self) -> Result<Pins>;
}

/// Pins from a file of fingerprints (one a line), as the audit service's
/// `--pin-file` writes them.
pub fn read_pins(path: &std::path::Path) -> Result<Pins> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Pins::from_text(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// `msg` with a bearer token.
pub fn bearer<T>(token: &str, msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    if let Ok(v) = format!("Bearer {token}").parse() {
        r.metadata_mut().insert("authorization", v);
    }
    r
}

/// The refusal `result` must be; an error if the step went through.
pub fn refused<T>(result: Result<T, Status>, what: &str) -> Result<Status> {
    match result {
        Err(status) => Ok(status),
        Ok(_) => anyhow::bail!("{what} was allowed"),
    }
}

/// A protobuf timestamp of `t`, to the second.
pub fn at(t: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: 0 }
}

fn identity(m: &impl Mesh, who: &str) -> Result<IdentityServiceClient<GrpcChannel>> {
    Ok(IdentityServiceClient::new(m.channel("identity", who)?))
}

fn vault(m: &impl Mesh) -> Result<LeadVaultServiceClient<GrpcChannel>> {
    vault_as(m, m.gateway())
}

fn vault_as(m: &impl Mesh, who: &str) -> Result<LeadVaultServiceClient<GrpcChannel>> {
    Ok(LeadVaultServiceClient::new(m.channel("lead-vault", who)?))
}

fn dialer(m: &impl Mesh, who: &str) -> Result<DialerPolicyServiceClient<GrpcChannel>> {
    Ok(DialerPolicyServiceClient::new(m.channel("dialer-policy", who)?))
}

fn recordings(m: &impl Mesh, who: &str) -> Result<RecordingsServiceClient<GrpcChannel>> {
    Ok(RecordingsServiceClient::new(m.channel("recordings", who)?))
}

fn audit_service(m: &impl Mesh) -> Result<AuditServiceClient<GrpcChannel>> {
    Ok(AuditServiceClient::new(m.channel("audit", m.gateway())?))
}

/// A lead of agent 1 with web-form marketing consent granted yesterday;
/// returns its id.
pub async fn consented_lead(m: &impl Mesh, org: &Org, phone: &str) -> Result<String> {
    let input = vpb::LeadInput { phones: vec![phone.into()], name: "王五".into(), ..Default::default() };
    let req = vpb::CreateLeadRequest { tenant_id: org.tenant.clone(), lead: Some(input) };
    let id = vault(m)?.create_lead(bearer(&org.agent1, req)).await?.into_inner().id;
    let consent = vpb::RecordConsentRequest {
        tenant_id: org.tenant.clone(),
        lead_id: id.clone(),
        purpose: "marketing".into(),
        channel: "web_form".into(),
        evidence: Some(vpb::ConsentEvidence {
            form_sha256: vec![1; 32],
            disclosure_version: "v2".into(),
            ..Default::default()
        }),
        granted_at: Some(at(chrono::Utc::now() - chrono::Duration::days(1))),
        expires_at: None,
    };
    vault(m)?.record_consent(bearer(&org.agent1, consent)).await?;
    Ok(id)
}

/// The audio every journey's call records: 10 kB.
pub const AUDIO: [u8; 10_000] = [7u8; 10_000];

/// A call of agent 1 to `lead`, recorded and uploaded by the telephony
/// bridge, with the spoken consent at `consent` (offset, length in ms).
pub async fn upload_recording(
    m: &impl Mesh,
    org: &Org,
    lead: &str,
    consent: Option<(u64, u64)>,
) -> Result<rpb::Recording> {
    let header = rpb::RecordingHeader {
        tenant_id: org.tenant.clone(),
        call_id: format!("call-{lead}-{}", chrono::Utc::now().timestamp_micros()),
        lead_id: lead.into(),
        agent_id: org.agent1_id.clone(),
        team_id: org.teams[0].clone(),
        caller_line: "+14155552671".into(),
        started_at: Some(at(chrono::Utc::now())),
        duration_seconds: 30,
        format: "audio/wav".into(),
        consent_offset_ms: consent.map(|c| c.0),
        consent_length_ms: consent.map(|c| c.1),
        ..Default::default()
    };
    use rpb::upload_recording_request::Item;
    let end = rpb::UploadEnd { size_bytes: AUDIO.len() as u64, sha256: vec![] };
    let msgs = [Item::Header(header), Item::Chunk(AUDIO.to_vec()), Item::End(end)]
        .map(|item| rpb::UploadRecordingRequest { item: Some(item) });
    Ok(recordings(m, "telephony-bridge")?.upload_recording(tokio_stream::iter(msgs)).await?.into_inner())
}

/// The whole recording as `token` may play it.
pub async fn download(m: &impl Mesh, org: &Org, token: &str, recording: &str) -> Result<Vec<u8>, Status> {
    let req = rpb::DownloadRecordingRequest {
        tenant_id: org.tenant.clone(),
        recording_id: recording.into(),
        offset: 0,
        length: 0,
    };
    let mut rec = recordings(m, m.gateway()).map_err(|e| Status::unavailable(e.to_string()))?;
    let mut stream = rec.download_recording(bearer(token, req)).await?.into_inner();
    let mut out = Vec::new();
    while let Some(chunk) = stream.message().await? {
        out.extend_from_slice(&chunk.chunk);
    }
    Ok(out)
}

/// The tenant's audit events of `action`, read by the auditor once they
/// arrived (the outboxes deliver asynchronously); an error after 10 s.
pub async fn audit_events(m: &impl Mesh, org: &Org, action: &str) -> Result<Vec<apb::AuditEvent>> {
    let mut audit = audit_service(m)?;
    for _ in 0..100 {
        let q = apb::QueryEventsRequest { tenant_id: org.tenant.clone(), action: action.into(), ..Default::default() };
        let events = audit.query_events(bearer(&org.auditor, q)).await?.into_inner().events;
        if !events.is_empty() {
            return Ok(events);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    anyhow::bail!("no {action} event arrived in audit")
}

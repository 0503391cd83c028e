//! Journey 4, recording: a call stored encrypted with its spoken consent
//! pointed at, played only in scope, and kept by a purge while it is held
//! or still needed as consent evidence.

use anyhow::Result;
use guardline_proto::recordings::v1 as rpb;
use guardline_proto::vault::v1 as vpb;

use crate::{AUDIO, Mesh, Org, at, bearer, download, recordings, refused, upload_recording, vault};

/// Where the callee's spoken consent is in the recording (offset, length in ms).
pub const SPOKEN_CONSENT: (u64, u64) = (12_500, 8_000);

/// What journey 4 saw.
#[derive(Debug)]
pub struct Recording {
    /// The call with the spoken consent.
    pub recording: rpb::Recording,
    /// The consent's evidence, as the vault recorded it.
    pub evidence: vpb::ConsentEvidence,
    /// What the owner (agent 1) played.
    pub played: Vec<u8>,
    /// What agent 2 (another team) got.
    pub other_team: tonic::Status,
    /// A later call without consent, under a legal hold.
    pub held: rpb::Recording,
    /// A purge past the default retention of three years.
    pub purge: rpb::PurgeExpiredResponse,
    /// What the owner played of the held call after the purge.
    pub held_after_purge: Vec<u8>,
}

/// Journey 4.
pub async fn recording(m: &impl Mesh, org: &Org) -> Result<Recording> {
    m.step("4. Recording: encrypted, with the spoken consent pointed at, played only in scope");
    let input = vpb::LeadInput { phones: vec!["+8613912345555".into()], name: "赵六".into(), ..Default::default() };
    let req = vpb::CreateLeadRequest { tenant_id: org.tenant.clone(), lead: Some(input) };
    let lead = vault(m)?.create_lead(bearer(&org.agent1, req)).await?.into_inner().id;
    let recording = upload_recording(m, org, &lead, Some(SPOKEN_CONSENT)).await?;
    m.say(&format!(
        "the telephony bridge uploads a call of {} bytes: stored encrypted as {}",
        AUDIO.len(),
        recording.id
    ));
    let consent = vpb::RecordConsentRequest {
        tenant_id: org.tenant.clone(),
        lead_id: lead.clone(),
        purpose: "marketing".into(),
        channel: "call_recording".into(),
        evidence: Some(vpb::ConsentEvidence {
            recording_id: recording.id.clone(),
            recording_offset_ms: SPOKEN_CONSENT.0,
            recording_length_ms: SPOKEN_CONSENT.1,
            disclosure_version: "script-7".into(),
            ..Default::default()
        }),
        granted_at: Some(at(chrono::Utc::now())),
        expires_at: None,
    };
    let recorded = vault(m)?.record_consent(bearer(&org.agent1, consent)).await?.into_inner();
    let evidence = recorded.evidence.unwrap_or_default();
    m.say("consent recorded, pointing at 12.5 s to 20.5 s of the recording");
    let played = download(m, org, &org.agent1, &recording.id).await?;
    m.say(&format!("agent1 (the owner) plays it: {} bytes", played.len()));
    let other_team = refused(download(m, org, &org.agent2, &recording.id).await, "agent 2 playing North's call")?;
    m.say(&format!("agent2 (another team) tries: {:?}", other_team.code()));
    let (held, purge) = hold_and_purge(m, org, &lead).await?;
    let held_after_purge = download(m, org, &org.agent1, &held.id).await?;
    Ok(Recording { recording, evidence, played, other_team, held, purge, held_after_purge })
}

/// A later call to `lead` without consent goes under a legal hold; then
/// the operator forecasts a purge three years and two months from now, past
/// the default retention (three years) and within consent evidence's (four).
/// Only a dry run may look ahead: a real purge runs on the service's clock.
async fn hold_and_purge(m: &impl Mesh, org: &Org, lead: &str) -> Result<(rpb::Recording, rpb::PurgeExpiredResponse)> {
    let held = upload_recording(m, org, lead, None).await?;
    let hold = rpb::SetLegalHoldRequest {
        tenant_id: org.tenant.clone(),
        recording_id: held.id.clone(),
        reason: "complaint under investigation".into(),
    };
    recordings(m, m.gateway())?.set_legal_hold(bearer(&org.admin, hold)).await?;
    let as_of = chrono::Utc::now() + chrono::Duration::days(3 * 365 + 60);
    let purge =
        rpb::PurgeExpiredRequest { tenant_id: org.tenant.clone(), as_of: Some(at(as_of)), limit: 0, dry_run: true };
    let purge = recordings(m, "operator")?.purge_expired(purge).await?.into_inner();
    m.say(&format!(
        "a purge forecast for {}: {} would be deleted, {} kept under a legal hold, {} kept as consent evidence",
        as_of.date_naive(),
        purge.purged,
        purge.held,
        purge.kept_for_consent
    ));
    Ok((held, purge))
}

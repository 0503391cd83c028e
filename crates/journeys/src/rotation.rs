//! Journey 7, rotation: the tenant key is rotated in the key store and the
//! services rewrap what it wraps; a new tenant data key is rotated in and
//! every record key re-wrapped in the background; old key versions are
//! made unusable. Everything reads after every step, or the journey fails.

use std::time::Duration;

use anyhow::{Result, ensure};
use guardline_proto::recordings::v1 as rpb;
use guardline_proto::vault::v1 as vpb;

use crate::{AUDIO, Mesh, Org, bearer, consented_lead, download, recordings, upload_recording, vault, vault_as};

/// What journey 7 saw.
#[derive(Debug)]
pub struct Rotation {
    /// The vault's and recordings' rewraps after the tenant key rotated,
    /// where the mesh could rotate it.
    pub rewrapped: Option<(vpb::RewrapTenantKeysResponse, rpb::RewrapTenantKeysResponse)>,
    /// The data key's status once the background re-wrap ended.
    pub status: vpb::KeyStatus,
    /// Whether the tenant key's old versions were made unusable.
    pub retired_old_versions: bool,
    /// How many times every lead and the recording were read back.
    pub reads: u32,
}

/// Every lead opens (a masked read and a reveal) and the recording plays.
pub async fn everything_reads(m: &impl Mesh, org: &Org, leads: &[String], recording: &str) -> Result<()> {
    for id in leads {
        let get = vpb::GetLeadRequest { tenant_id: org.tenant.clone(), lead_id: id.clone() };
        let lead = vault(m)?.get_lead(bearer(&org.agent1, get)).await?.into_inner();
        ensure!(lead.phones[0].masked.starts_with("+86 139****"), "lead {id} reads masked");
    }
    let reveal = vpb::RevealFieldRequest {
        tenant_id: org.tenant.clone(),
        lead_id: leads[0].clone(),
        field: vpb::LeadField::Name as i32,
        index: 0,
        reason: "checking the rotation".into(),
    };
    let name = vault(m)?.reveal_field(bearer(&org.admin, reveal)).await?.into_inner();
    ensure!(name.value == "王五", "the revealed name is the one stored");
    ensure!(download(m, org, &org.agent1, recording).await? == AUDIO, "the recording plays as uploaded");
    Ok(())
}

/// The tenant key rotates in the key store; both services rewrap.
async fn rotate_tenant_key(
    m: &impl Mesh,
    org: &Org,
) -> Result<Option<(vpb::RewrapTenantKeysResponse, rpb::RewrapTenantKeysResponse)>> {
    if !m.rotate_tenant_key(&org.tenant)? {
        m.say("the tenant key lives in the embedded keyring here; with Vault it rotates in transit first");
        return Ok(None);
    }
    let req = vpb::RewrapTenantKeysRequest { tenant_id: org.tenant.clone() };
    let v = vault_as(m, "operator")?.rewrap_tenant_keys(req).await?.into_inner();
    let req = rpb::RewrapTenantKeysRequest { tenant_id: org.tenant.clone() };
    let r = recordings(m, "operator")?.rewrap_tenant_keys(req).await?.into_inner();
    m.say(&format!(
        "the tenant key rotated in Vault (version {}); the vault rewrapped {} data keys, recordings {}",
        v.tenant_key_version, v.rewrapped, r.rewrapped
    ));
    Ok(Some((v, r)))
}

/// A new data key; waits (up to 10 s) for the background re-wrap.
async fn rotate_data_key(m: &impl Mesh, org: &Org) -> Result<vpb::KeyStatus> {
    let mut op = vault_as(m, "operator")?;
    let mut status =
        op.rotate_data_key(vpb::RotateDataKeyRequest { tenant_id: org.tenant.clone() }).await?.into_inner();
    for _ in 0..200 {
        if !status.in_progress {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        status = op.get_key_status(vpb::GetKeyStatusRequest { tenant_id: org.tenant.clone() }).await?.into_inner();
    }
    m.say(&format!(
        "the operator rotated the data key: {} of {} record keys re-wrapped, {} retiring keys left",
        status.rewrapped,
        status.total,
        status.retiring_data_key_ids.len()
    ));
    Ok(status)
}

/// Journey 7 over three leads and a recording.
pub async fn rotation(m: &impl Mesh, org: &Org) -> Result<Rotation> {
    m.step("7. Rotation: keys rotated, everything re-wrapped, old versions retired, everything still reads");
    let mut leads = Vec::new();
    for i in 0..3 {
        leads.push(consented_lead(m, org, &format!("+86139123460{i:02}")).await?);
    }
    let rec = upload_recording(m, org, &leads[0], None).await?;
    everything_reads(m, org, &leads, &rec.id).await?;
    let rewrapped = rotate_tenant_key(m, org).await?;
    let status = rotate_data_key(m, org).await?;
    everything_reads(m, org, &leads, &rec.id).await?;
    let version = rewrapped.as_ref().map_or(1, |(v, _)| v.tenant_key_version);
    let retired_old_versions = m.set_min_decryption_version(&org.tenant, u64::from(version))?;
    if retired_old_versions {
        everything_reads(m, org, &leads, &rec.id).await?;
        m.say(&format!("tenant key versions below {version} made unusable: everything still reads"));
    }
    m.say("every lead and the recording read back after each step");
    Ok(Rotation { rewrapped, status, retired_old_versions, reads: 2 + u32::from(retired_old_versions) })
}

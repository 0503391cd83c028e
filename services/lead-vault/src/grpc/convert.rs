//! Proto <-> domain conversions of the lead vault's messages; every value
//! a lead carries leaves masked.

use guardline_proto::common::v1::MaskedValue;
use guardline_proto::vault::v1 as pb;
use tonic::Status;

use crate::domain::mask;
use crate::error::Error;
use crate::service::settings::VaultSettings;
use crate::service::{Address, LeadInput, Vault, View};

pub(super) fn masked(s: String) -> Option<MaskedValue> {
    Some(MaskedValue { masked: s, clear: false })
}

pub(super) fn to_pb(v: View) -> pb::Lead {
    let (phones, name, address) = Vault::masked(&v);
    let r = v.row;
    pb::Lead {
        id: r.id,
        tenant_id: r.tenant_id,
        owner_id: r.owner_id,
        team_id: r.team_id,
        phones: phones.into_iter().map(|p| MaskedValue { masked: p, clear: false }).collect(),
        name: masked(name),
        address: masked(address),
        needs: masked(mask::WITHHELD.into()),
        notes: masked(mask::WITHHELD.into()),
        tags: serde_json::from_str(&r.tags).unwrap_or_default(),
        source: r.source,
        region: r.region,
        time_zone: r.time_zone,
        status: pb::LeadStatus::New as i32,
        version: r.version as u64,
    }
}

pub(super) fn input(i: pb::LeadInput) -> LeadInput {
    let a = i.address.unwrap_or_default();
    LeadInput {
        phones: i.phones,
        default_region: i.default_region,
        name: i.name,
        address: Address { province: a.province, city: a.city, district: a.district, street: a.street },
        needs: i.needs,
        notes: i.notes,
        tags: i.tags,
        source: i.source,
        time_zone: i.time_zone,
        owner_id: i.owner_id,
        team_id: i.team_id,
    }
}

pub(super) fn ts(t: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 }
}

pub(super) fn from_ts(
    field: &str,
    t: Option<&prost_types::Timestamp>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, Status> {
    t.map(|t| {
        chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)
            .ok_or_else(|| Status::from(Error::invalid(field, "out of range")))
    })
    .transpose()
}

pub(super) fn consent_pb(c: crate::store::consent::Model) -> pb::ConsentRecord {
    pb::ConsentRecord {
        id: c.id,
        tenant_id: c.tenant_id,
        lead_id: c.lead_id,
        purpose: c.purpose,
        channel: c.channel,
        evidence: Some(pb::ConsentEvidence {
            form_sha256: c.form_sha256,
            disclosure_version: c.disclosure_version,
            page_url: c.page_url,
            recording_id: c.recording_id,
            recording_offset_ms: c.recording_offset_ms as u64,
            recording_length_ms: c.recording_length_ms as u64,
        }),
        granted_at: Some(ts(c.granted_at)),
        expires_at: c.expires_at.map(ts),
        withdrawn_at: c.withdrawn_at.map(ts),
    }
}

pub(super) fn erasure_pb(c: crate::store::erasure_case::Model) -> pb::ErasureCase {
    use crate::service::erasure::state;
    let st = match c.state.as_str() {
        state::OPEN => pb::ErasureState::Open,
        state::DONE => pb::ErasureState::Done,
        state::BLOCKED => pb::ErasureState::Blocked,
        _ => pb::ErasureState::Unspecified,
    };
    pb::ErasureCase {
        id: c.id,
        tenant_id: c.tenant_id,
        lead_id: c.lead_id,
        state: st as i32,
        requested_at: Some(ts(c.requested_at)),
        due_at: Some(ts(c.due_at)),
        executed_at: c.executed_at.map(ts),
        blocked_reason: c.blocked_reason,
    }
}

pub(super) fn key_status_pb(tenant_id: String, s: crate::service::rotation::KeyStatus) -> pb::KeyStatus {
    pb::KeyStatus {
        tenant_id,
        active_data_key_id: s.active,
        retiring_data_key_ids: s.retiring,
        rewrapped: s.rewrapped,
        total: s.total,
        in_progress: s.in_progress,
    }
}

pub(super) fn settings_pb(tenant_id: String, s: VaultSettings) -> pb::VaultSettings {
    pb::VaultSettings {
        tenant_id,
        erasure_deadline_days: s.erasure_deadline_days,
        consent_retention_days: s.consent_retention_days,
    }
}

//! `Debug` for the messages that carry PII or secrets (`build.rs` lists them
//! in `REDACTED`): ids, enums, counts and flags are shown; every value a
//! person or a secret is in is left out. So a request formatted into a log
//! line or a panic message shows no phone number, name, address, password,
//! token, TOTP code, audio or source address.

use std::fmt;

use crate::common::v1 as common;
use crate::dialer::v1 as dialer;
use crate::identity::v1 as identity;
use crate::recordings::v1 as recordings;
use crate::vault::v1 as vault;

/// `Debug` showing only the named fields, and `..` for the rest.
macro_rules! redacted {
    ($($ty:ty => [$($field:ident),*]),* $(,)?) => {$(
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let name = stringify!($ty);
                let mut s = f.debug_struct(name.rsplit("::").next().unwrap_or(name).trim());
                $(s.field(stringify!($field), &self.$field);)*
                s.finish_non_exhaustive()
            }
        }
    )*};
}

/// `Debug` of a oneof showing only which variant it is.
macro_rules! variant_only {
    ($($ty:ty => [$($variant:ident),*]),* $(,)?) => {$(
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $(Self::$variant(..) => f.write_str(concat!(stringify!($variant), "(..)")),)*
                }
            }
        }
    )*};
}

redacted! {
    common::MaskedValue => [clear],
    common::RequestContext => [region, trace_id],
    identity::LoginRequest => [tenant_id],
    identity::LoginResponse => [access_token_expires_at, risk],
    identity::CreateUserRequest => [tenant_id, roles, team_ids],
    identity::UpdateUserRequest => [tenant_id, user_id, status],
    identity::EnrollTotpRequest => [tenant_id, context],
    identity::EnrollTotpResponse => [],
    identity::ConfirmTotpRequest => [tenant_id, context],
    identity::RefreshRequest => [],
    identity::LogoutRequest => [],
    vault::LeadInput => [default_region, tags, source, time_zone, owner_id, team_id],
    vault::Address => [],
    vault::RevealFieldResponse => [remaining_quota],
    vault::ExportLeadsResponse => [lead],
    vault::DialTarget => [time_zone, owner_id, team_id, internal_dnc],
    vault::LookupNumberRequest => [tenant_id],
    vault::LookupNumbersRequest => [tenant_id],
    vault::RequestErasureRequest => [tenant_id, subject],
    vault::ConsentEvidence => [disclosure_version, recording_id, recording_offset_ms, recording_length_ms],
    dialer::CheckCallRequest => [tenant_id, callee, campaign_id, purpose, agent_id, plan_at, correlation_id],
    dialer::AddToDncRequest => [tenant_id, list, campaign_id, reason],
    dialer::RemoveFromDncRequest => [tenant_id, list, campaign_id, reason],
    dialer::ResolveBindingResponse => [binding_id],
    dialer::ImportDncRequest => [item],
    recordings::UploadRecordingRequest => [item],
    recordings::DownloadRecordingResponse => [],
}

variant_only! {
    vault::request_erasure_request::Subject => [LeadId, Phone],
    dialer::check_call_request::Callee => [LeadId, E164],
    dialer::import_dnc_request::Item => [Header, Data],
    recordings::upload_recording_request::Item => [Header, Chunk, End],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatted_requests_and_answers_show_no_pii() {
        let lead = vault::LeadInput {
            phones: vec!["+8613812345678".into()],
            name: "张三丰".into(),
            address: Some(vault::Address { street: "人民路88号".into(), ..Default::default() }),
            needs: "wants-a-loan-marker".into(),
            notes: "note-marker".into(),
            ..Default::default()
        };
        let shown = [
            format!("{lead:?}"),
            format!("{:?}", vault::CreateLeadRequest { tenant_id: "t1".into(), lead: Some(lead.clone()) }),
            format!("{:?}", vault::ImportRow { row_number: 2, lead: Some(lead) }),
            format!(
                "{:?}",
                identity::LoginRequest {
                    password: "pw-marker".into(),
                    totp_code: "123456".into(),
                    ..Default::default()
                }
            ),
            format!(
                "{:?}",
                identity::LoginResponse {
                    access_token: "eyJ-marker".into(),
                    refresh_token: "rt-marker".into(),
                    ..Default::default()
                }
            ),
            format!("{:?}", vault::RevealFieldResponse { value: "张三丰".into(), remaining_quota: 3 }),
            format!(
                "{:?}",
                dialer::CheckCallRequest {
                    callee: Some(dialer::check_call_request::Callee::E164("+8613812345678".into())),
                    ..Default::default()
                }
            ),
            format!(
                "{:?}",
                recordings::UploadRecordingRequest {
                    item: Some(recordings::upload_recording_request::Item::Chunk(b"audio-marker".to_vec()))
                }
            ),
            format!(
                "{:?}",
                common::RequestContext {
                    source_address: "203.0.113.9".into(),
                    user_agent: "ua-marker".into(),
                    ..Default::default()
                }
            ),
            format!("{:?}", vault::GetLeadRequest { tenant_id: "t1".into(), lead_id: "l1".into() }),
        ];
        for s in &shown {
            for marker in ["13812345678", "张三丰", "人民路", "marker", "pw-", "123456", "203.0.113.9"] {
                assert!(!s.contains(marker), "`{marker}` in {s}");
            }
        }
        assert!(shown[1].contains("CreateLeadRequest") && shown[1].contains("t1"), "{}", shown[1]);
        assert!(shown[6].contains("E164(..)"), "{}", shown[6]);
        assert!(shown[9].contains("l1"), "ordinary messages keep their derived Debug: {}", shown[9]);
    }
}

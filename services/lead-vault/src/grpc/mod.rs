//! The gRPC face of the lead vault: resolves the caller, converts proto to
//! domain and back, and masks every value it returns (clear values leave only
//! through `RevealField`, a clear export, and `GetDialTarget` for
//! dialer-policy alone).

use std::sync::Arc;

use guardline_authz::{Resource, Subject, decide};
use guardline_proto::common::v1::PageResponse;
use guardline_proto::recordings::v1::recordings_service_client::RecordingsServiceClient;
use guardline_proto::vault::v1 as pb;
use guardline_proto::vault::v1::lead_vault_service_server::{LeadVaultService, LeadVaultServiceServer};
use guardline_runtime::args::MeshArgs;
use guardline_runtime::authz::AllowList;
use guardline_runtime::peer::PeerInfo;
use guardline_runtime::token::TokenVerifier;
use tonic::{Request, Response, Status};

mod convert;
mod ledger;

use crate::error::Error;
use crate::service::settings::SettingsChange;
use crate::service::{Caller, Field, Vault};
use convert::*;

/// The API.
#[derive(Debug)]
pub struct Api {
    vault: Arc<Vault>,
    verifier: Arc<TokenVerifier>,
    audit: guardline_runtime::GrpcChannel,
}

impl Api {
    /// Serves `vault`; user tokens verified with `verifier`; the audit log
    /// read over `audit` (the ledger of lead versions).
    pub fn new(vault: Arc<Vault>, verifier: Arc<TokenVerifier>, audit: guardline_runtime::GrpcChannel) -> Self {
        Self { vault, verifier, audit }
    }

    async fn user<T>(&self, req: &Request<T>) -> Result<Subject, Status> {
        let c = self.verifier.authenticate(req).await?;
        Ok(Subject::from_claims(&c.tenant, &c.sub, &c.teams, &c.perms))
    }

    /// The operator's service identity acting alone (no user token), or
    /// the user of the request's token.
    async fn user_or_operator<T>(&self, req: &Request<T>) -> Result<Caller, Status> {
        if PeerInfo::is_service_acting_alone(req, "operator") {
            return Ok(Caller::Service("operator"));
        }
        Ok(Caller::User(self.user(req).await?))
    }

    /// Who may run a key operation on `tenant`: the operator's service
    /// identity (no user token), or a user allowed `key.rotate` there.
    /// Returns the audit actor (user id, service identity).
    async fn key_operator<T>(&self, req: &Request<T>, tenant: &str) -> Result<(String, String), Status> {
        if tenant.is_empty() {
            return Err(Error::invalid("tenant_id", "required").into());
        }
        if PeerInfo::is_service_acting_alone(req, "operator") {
            return Ok((String::new(), "operator".into()));
        }
        let who = self.user(req).await?;
        let d = decide(&who, "key.rotate", &Resource { tenant: tenant.into(), ..Default::default() });
        if !d.allowed {
            return Err(Error::PermissionDenied(d.rule).into());
        }
        Ok((who.user, String::new()))
    }
}

/// The generated server with the message size limits applied.
pub fn server(api: Api, max_message_bytes: usize) -> LeadVaultServiceServer<Api> {
    LeadVaultServiceServer::new(api)
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes)
}

/// The RPCs open to every mesh peer: each handler requires a user token
/// (or checks its own trusted services); the others are listed with the
/// identities that may call them. An RPC in neither list is refused.
const MESH_OPEN: &[&str] = &[
    "CreateLead",
    "GetLead",
    "ListLeads",
    "UpdateLead",
    "RevealField",
    "ExportLeads",
    "ImportLeads",
    "TransferOwnership",
    "RecordConsent",
    "WithdrawConsent",
    "GetConsentHistory",
    "RequestErasure",
    "ExecuteErasure",
    "ListErasureCases",
    "VerifyIntegrity",
    "RewrapTenantKeys",
    "RotateDataKey",
    "GetKeyStatus",
    "GetVaultSettings",
    "UpdateVaultSettings",
    "PruneConsent",
];

/// Which service identities may call which RPC.
pub fn allow_list(mesh: &MeshArgs) -> AllowList {
    AllowList::new()
        .mesh("guardline.vault.v1.LeadVaultService", MESH_OPEN)
        .allow("/guardline.vault.v1.LeadVaultService/CheckConsent", [mesh.identity_of("dialer-policy")])
        .allow("/guardline.vault.v1.LeadVaultService/GetDialTarget", [mesh.identity_of("dialer-policy")])
        .allow("/guardline.vault.v1.LeadVaultService/LookupNumber", [mesh.identity_of("dialer-policy")])
        .allow("/guardline.vault.v1.LeadVaultService/LookupNumbers", [mesh.identity_of("dialer-policy")])
}

/// Erasure's view of the recordings service, over mTLS as `lead-vault`.
#[derive(Clone, Debug)]
pub struct RecordingsClient(RecordingsServiceClient<guardline_runtime::GrpcChannel>);

impl RecordingsClient {
    /// The recordings service over `channel`.
    pub fn new(channel: guardline_runtime::GrpcChannel) -> Self {
        Self(RecordingsServiceClient::new(channel))
    }
}

#[tonic::async_trait]
impl crate::service::erasure::RecordingsEraser for RecordingsClient {
    async fn erase_lead(&self, tenant: &str, lead: &str) -> crate::error::Result<(u64, Vec<String>)> {
        let req = guardline_proto::recordings::v1::EraseLeadRecordingsRequest {
            tenant_id: tenant.into(),
            lead_id: lead.into(),
        };
        let r = self.0.clone().erase_lead_recordings(req).await.map_err(|s| {
            Error::Unavailable(format!("recordings could not erase the lead's recordings: {}", s.code()))
        })?;
        let r = r.into_inner();
        Ok((r.erased, r.held_recording_ids))
    }
}

type Reply<T> = Result<Response<T>, Status>;
type ExportStream =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::ExportLeadsResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl LeadVaultService for Api {
    type ExportLeadsStream = ExportStream;

    #[tracing::instrument(skip_all, fields(rpc = "create_lead", tenant = %req.get_ref().tenant_id))]
    async fn create_lead(&self, req: Request<pb::CreateLeadRequest>) -> Reply<pb::Lead> {
        let who = self.user(&req).await?;
        let r = req.into_inner();
        let lead = r.lead.ok_or_else(|| Status::from(Error::invalid("lead", "required")))?;
        Ok(Response::new(to_pb(self.vault.create(&who, &r.tenant_id, input(lead)).await?)))
    }

    #[tracing::instrument(skip_all, fields(rpc = "get_lead", tenant = %req.get_ref().tenant_id))]
    async fn get_lead(&self, req: Request<pb::GetLeadRequest>) -> Reply<pb::Lead> {
        let who = self.user(&req).await?;
        let r = req.get_ref();
        Ok(Response::new(to_pb(self.vault.get(&who, &r.tenant_id, &r.lead_id).await?)))
    }

    #[tracing::instrument(skip_all, fields(rpc = "list_leads", tenant = %req.get_ref().tenant_id))]
    async fn list_leads(&self, req: Request<pb::ListLeadsRequest>) -> Reply<pb::ListLeadsResponse> {
        let who = self.user(&req).await?;
        let r = req.into_inner();
        let page = r.page.unwrap_or_default();
        let size = if page.page_size == 0 { 50 } else { u64::from(page.page_size).min(1000) };
        let before = (!page.page_token.is_empty()).then_some(page.page_token.as_str());
        let views = self.vault.list(&who, &r.tenant_id, before, size).await?;
        let next = if views.len() as u64 == size {
            views.last().map(|v| v.row.id.clone()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListLeadsResponse {
            leads: views.into_iter().map(to_pb).collect(),
            page: Some(PageResponse { next_page_token: next }),
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "record_consent", tenant = %req.get_ref().tenant_id))]
    async fn record_consent(&self, req: Request<pb::RecordConsentRequest>) -> Reply<pb::ConsentRecord> {
        let who = self.user(&req).await?;
        let r = req.into_inner();
        let e = r.evidence.unwrap_or_default();
        let c = crate::service::consent::NewConsent {
            purpose: r.purpose,
            channel: r.channel,
            form_sha256: e.form_sha256,
            disclosure_version: e.disclosure_version,
            page_url: e.page_url,
            recording: (!e.recording_id.is_empty()).then_some((
                e.recording_id,
                e.recording_offset_ms,
                e.recording_length_ms,
            )),
            granted_at: from_ts("granted_at", r.granted_at.as_ref())?
                .ok_or_else(|| Status::from(Error::invalid("granted_at", "required")))?,
            expires_at: from_ts("expires_at", r.expires_at.as_ref())?,
        };
        Ok(Response::new(consent_pb(self.vault.record_consent(&who, &r.tenant_id, &r.lead_id, c).await?)))
    }

    #[tracing::instrument(skip_all, fields(rpc = "withdraw_consent", tenant = %req.get_ref().tenant_id))]
    async fn withdraw_consent(&self, req: Request<pb::WithdrawConsentRequest>) -> Reply<pb::ConsentRecord> {
        let who = self.user(&req).await?;
        let r = req.get_ref();
        Ok(Response::new(consent_pb(self.vault.withdraw_consent(&who, &r.tenant_id, &r.consent_id).await?)))
    }

    #[tracing::instrument(skip_all, fields(rpc = "get_consent_history", tenant = %req.get_ref().tenant_id))]
    async fn get_consent_history(
        &self,
        req: Request<pb::GetConsentHistoryRequest>,
    ) -> Reply<pb::GetConsentHistoryResponse> {
        let who = self.user(&req).await?;
        let r = req.get_ref();
        let records = self.vault.consent_history(&who, &r.tenant_id, &r.lead_id).await?;
        Ok(Response::new(pb::GetConsentHistoryResponse { records: records.into_iter().map(consent_pb).collect() }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "check_consent", tenant = %req.get_ref().tenant_id))]
    async fn check_consent(&self, req: Request<pb::CheckConsentRequest>) -> Reply<pb::CheckConsentResponse> {
        // Only dialer-policy reaches this (allow-list).
        let r = req.into_inner();
        let at = from_ts("at", r.at.as_ref())?.unwrap_or_else(|| self.vault.clock.now());
        let found = self.vault.check_consent(&r.tenant_id, &r.lead_id, &r.purpose, at).await?;
        Ok(Response::new(match found {
            Some((consent_id, granted)) => {
                pb::CheckConsentResponse { active: true, consent_id, granted_at: Some(ts(granted)) }
            }
            None => pb::CheckConsentResponse::default(),
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "get_dial_target", tenant = %req.get_ref().tenant_id))]
    async fn get_dial_target(&self, req: Request<pb::GetDialTargetRequest>) -> Reply<pb::DialTarget> {
        // Only dialer-policy reaches this (allow-list).
        let r = req.into_inner();
        let t = self.vault.dial_target(&r.tenant_id, &r.lead_id, r.phone_index).await?;
        Ok(Response::new(pb::DialTarget {
            e164: t.e164,
            blind_index: t.blind_index,
            time_zone: t.time_zone,
            owner_id: t.owner_id,
            team_id: t.team_id,
            internal_dnc: t.internal_dnc.is_some(),
            internal_dnc_reason: t.internal_dnc.unwrap_or_default(),
            address_region: t.address_region,
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "lookup_numbers", tenant = %req.get_ref().tenant_id))]
    async fn lookup_numbers(&self, req: Request<pb::LookupNumbersRequest>) -> Reply<pb::LookupNumbersResponse> {
        // Only dialer-policy reaches this (allow-list).
        let r = req.into_inner();
        let found = self.vault.lookup_numbers(&r.tenant_id, &r.e164).await?;
        let lookups = found
            .into_iter()
            .map(|(blind_index, why)| pb::NumberLookup {
                blind_index,
                internal_dnc: why.is_some(),
                internal_dnc_reason: why.unwrap_or_default(),
            })
            .collect();
        Ok(Response::new(pb::LookupNumbersResponse { lookups }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "lookup_number", tenant = %req.get_ref().tenant_id))]
    async fn lookup_number(&self, req: Request<pb::LookupNumberRequest>) -> Reply<pb::NumberLookup> {
        // Only dialer-policy reaches this (allow-list).
        let r = req.into_inner();
        let (blind_index, reason) = self.vault.lookup_number(&r.tenant_id, &r.e164).await?;
        Ok(Response::new(pb::NumberLookup {
            blind_index,
            internal_dnc: reason.is_some(),
            internal_dnc_reason: reason.unwrap_or_default(),
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "verify_integrity", tenant = %req.get_ref().tenant_id))]
    async fn verify_integrity(&self, req: Request<pb::VerifyIntegrityRequest>) -> Reply<pb::VerifyIntegrityResponse> {
        let who = self.user(&req).await?;
        let authorization =
            req.metadata().get("authorization").cloned().ok_or(Error::Unauthenticated("no token".into()))?;
        let ledger = ledger::AuditVersions::new(self.audit.clone(), authorization);
        let (scanned, findings) = self.vault.verify_integrity(&who, &req.get_ref().tenant_id, &ledger).await?;
        let findings = findings
            .into_iter()
            .map(|(lead_id, problem)| pb::IntegrityFinding { lead_id, problem: problem.into() })
            .collect();
        Ok(Response::new(pb::VerifyIntegrityResponse { scanned, findings }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "update_lead", tenant = %req.get_ref().tenant_id))]
    async fn update_lead(&self, req: Request<pb::UpdateLeadRequest>) -> Reply<pb::Lead> {
        let who = self.user(&req).await?;
        let r = req.into_inner();
        let lead = input(r.lead.unwrap_or_default());
        let view =
            self.vault.update(&who, &r.tenant_id, &r.lead_id, r.expected_version, lead, &r.update_fields).await?;
        Ok(Response::new(to_pb(view)))
    }

    #[tracing::instrument(skip_all, fields(rpc = "transfer_ownership", tenant = %req.get_ref().tenant_id))]
    async fn transfer_ownership(
        &self,
        req: Request<pb::TransferOwnershipRequest>,
    ) -> Reply<pb::TransferOwnershipResponse> {
        let who = self.user(&req).await?;
        let r = req.into_inner();
        let transferred =
            self.vault.transfer(&who, &r.tenant_id, &r.from_owner_id, &r.to_owner_id, &r.lead_ids).await?;
        Ok(Response::new(pb::TransferOwnershipResponse { transferred }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "export_leads", tenant = %req.get_ref().tenant_id))]
    async fn export_leads(&self, req: Request<pb::ExportLeadsRequest>) -> Reply<ExportStream> {
        let who = self.user(&req).await?;
        let r = req.into_inner();
        let views = self.vault.export(&who, &r.tenant_id, r.clear, &r.reason).await?;
        let mode = if r.clear { "clear" } else { "masked" };
        guardline_runtime::metrics::business()
            .exported
            .add(views.len() as u64, &[guardline_runtime::metrics::label("mode", mode)]);
        let clear = r.clear;
        let out = tokio_stream::iter(views.into_iter().map(move |v| {
            let clear_phones = if clear { v.pii.phones.clone() } else { Vec::new() };
            Ok(pb::ExportLeadsResponse { lead: Some(to_pb(v)), clear_phones })
        }));
        Ok(Response::new(Box::pin(out)))
    }

    #[tracing::instrument(skip_all, fields(rpc = "import_leads"))]
    async fn import_leads(
        &self,
        req: Request<tonic::Streaming<pb::ImportLeadsRequest>>,
    ) -> Reply<pb::ImportLeadsResponse> {
        let who = self.user(&req).await?;
        let mut stream = req.into_inner();
        let Some(pb::ImportLeadsRequest { item: Some(pb::import_leads_request::Item::Header(h)) }) =
            stream.message().await?
        else {
            return Err(Error::invalid("header", "the first message must be the header").into());
        };
        let mut rows = Vec::new();
        while let Some(m) = stream.message().await? {
            match m.item {
                Some(pb::import_leads_request::Item::Row(row)) => {
                    let mut lead = input(row.lead.unwrap_or_default());
                    if lead.default_region.is_empty() {
                        lead.default_region = h.default_region.clone();
                    }
                    if lead.owner_id.is_empty() {
                        lead.owner_id = h.default_owner_id.clone();
                    }
                    rows.push((row.row_number, lead));
                }
                _ => return Err(Error::invalid("row", "only rows may follow the header").into()),
            }
        }
        let report = self.vault.import(&who, &h.tenant_id, rows).await?;
        Ok(Response::new(pb::ImportLeadsResponse {
            imported: report.imported,
            duplicates: report.duplicates,
            errors: report
                .errors
                .into_iter()
                .map(|e| pb::RowError { row_number: e.row, field: e.field, description: e.reason })
                .collect(),
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "reveal_field", tenant = %req.get_ref().tenant_id))]
    async fn reveal_field(&self, req: Request<pb::RevealFieldRequest>) -> Reply<pb::RevealFieldResponse> {
        let who = self.user(&req).await?;
        let r = req.into_inner();
        // An unknown field is refused by the vault, after authorization.
        let field = match pb::LeadField::try_from(r.field) {
            Ok(pb::LeadField::Phone) => Some(Field::Phone(r.index as usize)),
            Ok(pb::LeadField::Name) => Some(Field::Name),
            Ok(pb::LeadField::Address) => Some(Field::Address),
            Ok(pb::LeadField::Needs) => Some(Field::Needs),
            Ok(pb::LeadField::Notes) => Some(Field::Notes),
            _ => None,
        };
        let name = pb::LeadField::try_from(r.field).map_or("UNKNOWN", |f| f.as_str_name());
        let (value, remaining_quota) = self.vault.reveal(&who, &r.tenant_id, &r.lead_id, field, &r.reason).await?;
        use guardline_runtime::metrics::{business, label};
        business().reveals.add(1, &[label("field", name.trim_start_matches("LEAD_FIELD_"))]);
        Ok(Response::new(pb::RevealFieldResponse { value, remaining_quota }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "request_erasure", tenant = %req.get_ref().tenant_id))]
    async fn request_erasure(&self, req: Request<pb::RequestErasureRequest>) -> Reply<pb::ErasureCase> {
        use crate::service::erasure::ErasureSubject;
        use pb::request_erasure_request::Subject as S;
        let who = self.user(&req).await?;
        let r = req.into_inner();
        let subject = match r.subject {
            Some(S::LeadId(id)) => ErasureSubject::Lead(id),
            Some(S::Phone(p)) => ErasureSubject::Phone(p),
            None => return Err(Error::invalid("subject", "give a lead_id or a phone").into()),
        };
        Ok(Response::new(erasure_pb(self.vault.request_erasure(&who, &r.tenant_id, subject).await?)))
    }

    #[tracing::instrument(skip_all, fields(rpc = "execute_erasure", tenant = %req.get_ref().tenant_id))]
    async fn execute_erasure(&self, req: Request<pb::ExecuteErasureRequest>) -> Reply<pb::ErasureCase> {
        let who = self.user(&req).await?;
        let r = req.into_inner();
        Ok(Response::new(erasure_pb(self.vault.execute_erasure(&who, &r.tenant_id, &r.case_id).await?)))
    }

    #[tracing::instrument(skip_all, fields(rpc = "list_erasure_cases", tenant = %req.get_ref().tenant_id))]
    async fn list_erasure_cases(
        &self,
        req: Request<pb::ListErasureCasesRequest>,
    ) -> Reply<pb::ListErasureCasesResponse> {
        use crate::service::erasure::state;
        let who = self.user_or_operator(&req).await?;
        let r = req.into_inner();
        // Authorization first: a caller who may not list learns nothing of the filter's rules.
        who.actor().require("erasure.execute", &r.tenant_id)?;
        let filter = match pb::ErasureState::try_from(r.state) {
            Ok(pb::ErasureState::Unspecified) => None,
            Ok(pb::ErasureState::Open) => Some(state::OPEN),
            Ok(pb::ErasureState::Done) => Some(state::DONE),
            Ok(pb::ErasureState::Blocked) => Some(state::BLOCKED),
            Err(_) => return Err(Error::invalid("state", "unknown erasure state").into()),
        };
        let cases = self.vault.list_erasure_cases(&who.actor(), &r.tenant_id, filter, r.overdue_only).await?;
        Ok(Response::new(pb::ListErasureCasesResponse { cases: cases.into_iter().map(erasure_pb).collect() }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "rewrap_tenant_keys", tenant = %req.get_ref().tenant_id))]
    async fn rewrap_tenant_keys(
        &self,
        req: Request<pb::RewrapTenantKeysRequest>,
    ) -> Reply<pb::RewrapTenantKeysResponse> {
        let tenant = req.get_ref().tenant_id.clone();
        let (user, service) = self.key_operator(&req, &tenant).await?;
        let (rewrapped, version) = self.vault.rewrap_tenant_keys(&tenant, (&user, &service)).await?;
        Ok(Response::new(pb::RewrapTenantKeysResponse { rewrapped, tenant_key_version: version }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "rotate_data_key", tenant = %req.get_ref().tenant_id))]
    async fn rotate_data_key(&self, req: Request<pb::RotateDataKeyRequest>) -> Reply<pb::KeyStatus> {
        let tenant = req.get_ref().tenant_id.clone();
        let (user, service) = self.key_operator(&req, &tenant).await?;
        let status = self.vault.rotate_data_key(&tenant, (&user, &service)).await?;
        Ok(Response::new(key_status_pb(tenant, status)))
    }

    #[tracing::instrument(skip_all, fields(rpc = "get_key_status", tenant = %req.get_ref().tenant_id))]
    async fn get_key_status(&self, req: Request<pb::GetKeyStatusRequest>) -> Reply<pb::KeyStatus> {
        let tenant = req.get_ref().tenant_id.clone();
        self.key_operator(&req, &tenant).await?;
        let status = self.vault.key_status(&tenant).await?;
        Ok(Response::new(key_status_pb(tenant, status)))
    }

    #[tracing::instrument(skip_all, fields(rpc = "get_vault_settings", tenant = %req.get_ref().tenant_id))]
    async fn get_vault_settings(&self, req: Request<pb::GetVaultSettingsRequest>) -> Reply<pb::VaultSettings> {
        let who = self.user(&req).await?;
        let tenant = req.into_inner().tenant_id;
        let s = self.vault.get_settings(&who, &tenant).await?;
        Ok(Response::new(settings_pb(tenant, s)))
    }

    #[tracing::instrument(skip_all, fields(rpc = "update_vault_settings", tenant = %req.get_ref().tenant_id))]
    async fn update_vault_settings(&self, req: Request<pb::UpdateVaultSettingsRequest>) -> Reply<pb::VaultSettings> {
        let who = self.user_or_operator(&req).await?;
        let r = req.into_inner();
        let change = SettingsChange {
            erasure_deadline_days: r.erasure_deadline_days,
            consent_retention_days: r.consent_retention_days,
        };
        let s = self.vault.update_settings(&who.actor(), &r.tenant_id, change).await?;
        Ok(Response::new(settings_pb(r.tenant_id, s)))
    }

    #[tracing::instrument(skip_all, fields(rpc = "prune_consent", tenant = %req.get_ref().tenant_id))]
    async fn prune_consent(&self, req: Request<pb::PruneConsentRequest>) -> Reply<pb::PruneConsentResponse> {
        let r = req.get_ref().clone();
        let who = self.user_or_operator(&req).await?;
        let actor = who.actor();
        actor.require("policy.manage", &r.tenant_id)?;
        let (pruned, more) =
            self.vault.prune_consent(&r.tenant_id, (r.limit, r.dry_run), (actor.user(), actor.service())).await?;
        Ok(Response::new(pb::PruneConsentResponse { pruned, more }))
    }
}

//! The gRPC face of dialer-policy: resolves the caller (a user token, or a
//! mesh service acting alone), converts proto to domain and back, and calls
//! the domain. The lead vault client behind [`VaultPort`] lives here too.

use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use futures::Stream;
use guardline_authz::Subject;
use guardline_proto::dialer::v1 as pb;
use guardline_proto::dialer::v1::dialer_policy_service_server::{DialerPolicyService, DialerPolicyServiceServer};
use guardline_proto::vault::v1 as vpb;
use guardline_proto::vault::v1::lead_vault_service_client::LeadVaultServiceClient;
use guardline_runtime::args::MeshArgs;
use guardline_runtime::authz::AllowList;
use guardline_runtime::peer::PeerInfo;
use guardline_runtime::token::TokenVerifier;
use tonic::{Request, Response, Status};

use crate::domain::numbers::LineParser;
use crate::error::Error;
use crate::service::attempts::result;
use crate::service::dnc::ImportTarget;
use crate::service::{Caller, Dialer, Target, VaultPort};

mod convert;

use convert::*;

/// The API.
pub struct Api {
    dialer: Arc<Dialer>,
    verifier: Arc<TokenVerifier>,
    /// Service accounts that may call without a user token.
    trusted: Vec<String>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").finish_non_exhaustive()
    }
}

impl Api {
    /// Serves `dialer`; user tokens verified with `verifier`.
    pub fn new(dialer: Arc<Dialer>, verifier: Arc<TokenVerifier>, trusted: Vec<String>) -> Self {
        Self { dialer, verifier, trusted }
    }

    /// A user by bearer token, else the mesh service that called.
    async fn caller<T>(&self, req: &Request<T>) -> Result<Caller, Status> {
        if req.metadata().contains_key("authorization") {
            let c = self.verifier.authenticate(req).await?;
            return Ok(Caller::User(Subject::from_claims(&c.tenant, &c.sub, &c.teams, &c.perms)));
        }
        // Without a token, only the services trusted to act for any tenant:
        // a gateway that forgot to forward the user's token is refused.
        let service = PeerInfo::of(req)
            .and_then(|p| p.identity.as_ref())
            .and_then(|id| id.service_account().map(str::to_owned))
            .ok_or_else(|| Status::from(Error::Unauthenticated("no service identity and no bearer token".into())))?;
        if self.trusted.contains(&service) {
            Ok(Caller::Service(service))
        } else {
            Err(Status::from(Error::Unauthenticated(format!("{service} must send the user's bearer token"))))
        }
    }
}

impl Api {
    /// `ImportDnc` of Reassigned Numbers Database results: authorized, then read.
    async fn import_reassigned(
        &self,
        who: Caller,
        h: pb::ImportDncHeader,
        mut stream: tonic::Streaming<pb::ImportDncRequest>,
    ) -> Reply<pb::ImportDncResponse> {
        who.require("dnc.manage", &h.tenant_id, &[])?;
        if h.format != pb::DncFormat::Rnd as i32 {
            return Err(Error::invalid("header.format", "RND for reassigned-numbers results").into());
        }
        let obtained =
            crate::service::compliance::obtained_date(from_ts(h.copy_date, "header.copy_date")?, self.dialer.now())?;
        let mut parser = crate::domain::reassigned::ResultsParser::default();
        while let Some(m) = stream.message().await? {
            match m.item {
                Some(pb::import_dnc_request::Item::Data(chunk)) => parser.push(&chunk),
                _ => return Err(Error::invalid("data", "only data may follow the header").into()),
            }
        }
        let (rows, rejected) = parser.finish();
        let loaded = self.dialer.import_reassigned(&who, &h.tenant_id, obtained, rows).await?;
        Ok(Response::new(pb::ImportDncResponse { loaded, rejected }))
    }
}

/// The generated server with the message size limits applied.
pub fn server(api: Api, max_message_bytes: usize) -> DialerPolicyServiceServer<Api> {
    DialerPolicyServiceServer::new(api)
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes)
}

/// The RPCs open to every mesh peer: each handler requires a user token
/// (or checks its own trusted services); the others are listed with the
/// identities that may call them. An RPC in neither list is refused.
const MESH_OPEN: &[&str] = &[
    "CheckCall",
    "CheckCalls",
    "RecordCallAttempt",
    "RecordCallOutcome",
    "AddToDnc",
    "RemoveFromDnc",
    "ImportDnc",
    "GetLineHealth",
    "BindPrivacyNumber",
    "ReleaseBinding",
    "AddPrivacyNumbers",
    "SetDialPolicy",
    "GetDialPolicy",
    "GetRegistryStatus",
];

/// Which service identities may call which RPC.
pub fn allow_list(mesh: &MeshArgs) -> AllowList {
    AllowList::new()
        .mesh("guardline.dialer.v1.DialerPolicyService", MESH_OPEN)
        .allow("/guardline.dialer.v1.DialerPolicyService/ResolveBinding", [mesh.identity_of("telephony-bridge")])
}

/// The lead vault over mTLS, as [`VaultPort`].
pub struct VaultClient(LeadVaultServiceClient<guardline_runtime::GrpcChannel>);

impl VaultClient {
    /// The lead vault over `channel`.
    pub fn new(channel: guardline_runtime::GrpcChannel) -> Self {
        Self(LeadVaultServiceClient::new(channel))
    }
}

fn vault_error(s: Status, field: &str) -> Error {
    match s.code() {
        tonic::Code::NotFound => Error::NotFound,
        tonic::Code::InvalidArgument => Error::invalid(field, "refused by the lead vault"),
        code => Error::Unavailable(format!("lead-vault answered {code:?}")),
    }
}

#[tonic::async_trait]
impl VaultPort for VaultClient {
    async fn dial_target(&self, tenant: &str, lead_id: &str) -> crate::error::Result<Target> {
        let req = vpb::GetDialTargetRequest { tenant_id: tenant.into(), lead_id: lead_id.into(), phone_index: 0 };
        let t = self.0.clone().get_dial_target(req).await.map_err(|s| vault_error(s, "lead_id"))?.into_inner();
        Ok(Target {
            e164: t.e164,
            blind_index: t.blind_index,
            time_zone: t.time_zone,
            owner_id: t.owner_id,
            team_id: t.team_id,
            internal_dnc: t.internal_dnc.then_some(t.internal_dnc_reason),
            address_region: t.address_region,
        })
    }

    async fn lookup(&self, tenant: &str, e164: &str) -> crate::error::Result<(Vec<u8>, Option<String>)> {
        let req = vpb::LookupNumberRequest { tenant_id: tenant.into(), e164: e164.into() };
        let r = self.0.clone().lookup_number(req).await.map_err(|s| vault_error(s, "e164"))?.into_inner();
        Ok((r.blind_index, r.internal_dnc.then_some(r.internal_dnc_reason)))
    }

    async fn blind_indexes(&self, tenant: &str, e164: &[String]) -> crate::error::Result<Vec<Vec<u8>>> {
        let req = vpb::LookupNumbersRequest { tenant_id: tenant.into(), e164: e164.to_vec() };
        let r = self.0.clone().lookup_numbers(req).await.map_err(|s| vault_error(s, "e164"))?.into_inner();
        Ok(r.lookups.into_iter().map(|l| l.blind_index).collect())
    }

    async fn consent_granted(
        &self,
        tenant: &str,
        lead_id: &str,
        purpose: &str,
        at: DateTime<Utc>,
    ) -> crate::error::Result<Option<DateTime<Utc>>> {
        let req = vpb::CheckConsentRequest {
            tenant_id: tenant.into(),
            lead_id: lead_id.into(),
            purpose: purpose.into(),
            at: Some(ts(at)),
        };
        let r = self.0.clone().check_consent(req).await.map_err(|s| vault_error(s, "purpose"))?.into_inner();
        if !r.active {
            return Ok(None);
        }
        // An active consent always carries its grant time; without one it
        // counts as granted at the epoch, the most cautious reading.
        Ok(Some(from_ts(r.granted_at, "granted_at")?.unwrap_or_default()))
    }
}

type Reply<T> = Result<Response<T>, Status>;

/// Counts a decision by its verdict (`ALLOW`, `DENY`, `DEFER`).
fn count_decision(d: &pb::CheckCallResponse) {
    let verdict = pb::Verdict::try_from(d.verdict).map_or("UNKNOWN", |v| v.as_str_name());
    let verdict = verdict.trim_start_matches("VERDICT_");
    use guardline_runtime::metrics::{business, label};
    business().decisions.add(1, &[label("verdict", verdict)]);
}
type CheckStream = Pin<Box<dyn Stream<Item = Result<pb::CheckCallResponse, Status>> + Send>>;

#[tonic::async_trait]
impl DialerPolicyService for Api {
    type CheckCallsStream = CheckStream;

    #[tracing::instrument(skip_all, fields(rpc = "check_call", tenant = %req.get_ref().tenant_id))]
    async fn check_call(&self, req: Request<pb::CheckCallRequest>) -> Reply<pb::CheckCallResponse> {
        let who = self.caller(&req).await?;
        let r = req.into_inner();
        let correlation = r.correlation_id.clone();
        let d = decision_pb(self.dialer.check(&who, query(r)?).await?, correlation);
        count_decision(&d);
        Ok(Response::new(d))
    }

    /// Decisions come back in request order; a request that cannot be
    /// decided (bad input, unknown lead) answers DENY with the reason under
    /// the rule `request`, so one bad row does not end the scrub.
    #[tracing::instrument(skip_all, fields(rpc = "check_calls"))]
    async fn check_calls(&self, req: Request<tonic::Streaming<pb::CheckCallRequest>>) -> Reply<CheckStream> {
        let who = self.caller(&req).await?;
        let mut input = req.into_inner();
        let dialer = self.dialer.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let r = match input.message().await {
                    Ok(Some(r)) => r,
                    Ok(None) => break,
                    Err(s) => {
                        let _ = tx.send(Err(s)).await;
                        break;
                    }
                };
                let correlation = r.correlation_id.clone();
                let answer = match query(r) {
                    Ok(q) => dialer.check(&who, q).await,
                    Err(e) => Err(e),
                };
                let out = match answer {
                    Ok(d) => {
                        let d = decision_pb(d, correlation);
                        count_decision(&d);
                        d
                    }
                    Err(e) => {
                        let status = Status::from(e);
                        pb::CheckCallResponse {
                            verdict: pb::Verdict::Deny as i32,
                            rules: vec![pb::RuleResult {
                                rule: "request".into(),
                                outcome: pb::Verdict::Deny as i32,
                                reason: format!("{:?}: {}", status.code(), status.message()),
                            }],
                            correlation_id: correlation,
                            ..Default::default()
                        }
                    }
                };
                if tx.send(Ok(out)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    #[tracing::instrument(skip_all, fields(rpc = "record_call_attempt", tenant = %req.get_ref().tenant_id))]
    async fn record_call_attempt(
        &self,
        req: Request<pb::RecordCallAttemptRequest>,
    ) -> Reply<pb::RecordCallAttemptResponse> {
        let who = self.caller(&req).await?;
        let r = req.into_inner();
        let at = from_ts(r.at, "at")?;
        let attempt_id = self.dialer.record_attempt(&who, &r.tenant_id, &r.decision_id, at).await?;
        Ok(Response::new(pb::RecordCallAttemptResponse { attempt_id }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "record_call_outcome", tenant = %req.get_ref().tenant_id))]
    async fn record_call_outcome(
        &self,
        req: Request<pb::RecordCallOutcomeRequest>,
    ) -> Reply<pb::RecordCallOutcomeResponse> {
        let who = self.caller(&req).await?;
        let r = req.into_inner();
        let res = match pb::CallResult::try_from(r.result) {
            Ok(pb::CallResult::Answered) => Some(result::ANSWERED),
            Ok(pb::CallResult::NoAnswer) => Some(result::NO_ANSWER),
            Ok(pb::CallResult::Busy) => Some(result::BUSY),
            Ok(pb::CallResult::Complaint) => Some(result::COMPLAINT),
            Ok(pb::CallResult::OptOut) => Some(result::OPT_OUT),
            _ => None,
        };
        self.dialer.record_outcome(&who, &r.tenant_id, &r.attempt_id, res, r.duration_seconds).await?;
        Ok(Response::new(pb::RecordCallOutcomeResponse {}))
    }

    #[tracing::instrument(skip_all, fields(rpc = "add_to_dnc", tenant = %req.get_ref().tenant_id))]
    async fn add_to_dnc(&self, req: Request<pb::AddToDncRequest>) -> Reply<pb::AddToDncResponse> {
        let who = self.caller(&req).await?;
        let r = req.into_inner();
        // Authorization first: a caller who may not manage lists learns nothing of their rules.
        who.require("dnc.manage", &r.tenant_id, &[])?;
        let list = tenant_list(r.list, r.campaign_id, "list")?;
        let added = self.dialer.add_to_dnc(&who, &r.tenant_id, list, &r.e164, &r.blind_indexes, &r.reason).await?;
        Ok(Response::new(pb::AddToDncResponse { added }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "remove_from_dnc", tenant = %req.get_ref().tenant_id))]
    async fn remove_from_dnc(&self, req: Request<pb::RemoveFromDncRequest>) -> Reply<pb::RemoveFromDncResponse> {
        let who = self.caller(&req).await?;
        let r = req.into_inner();
        who.require("dnc.manage", &r.tenant_id, &[])?;
        let list = tenant_list(r.list, r.campaign_id, "list")?;
        let removed = self.dialer.remove_from_dnc(&who, &r.tenant_id, list, &r.e164, &r.reason).await?;
        Ok(Response::new(pb::RemoveFromDncResponse { removed }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "import_dnc"))]
    async fn import_dnc(&self, req: Request<tonic::Streaming<pb::ImportDncRequest>>) -> Reply<pb::ImportDncResponse> {
        let who = self.caller(&req).await?;
        let mut stream = req.into_inner();
        let Some(pb::ImportDncRequest { item: Some(pb::import_dnc_request::Item::Header(h)) }) =
            stream.message().await?
        else {
            return Err(Error::invalid("header", "the first message must be the header").into());
        };
        if h.list == pb::DncList::Reassigned as i32 {
            return self.import_reassigned(who, h, stream).await;
        }
        let ftc = match pb::DncFormat::try_from(h.format) {
            Ok(pb::DncFormat::Ftc) => true,
            Ok(pb::DncFormat::E164) => false,
            _ => return Err(Error::invalid("header.format", "FTC or E164").into()),
        };
        let target = match pb::DncList::try_from(h.list) {
            Ok(pb::DncList::National) => {
                let date = from_ts(h.copy_date, "header.copy_date")?
                    .ok_or_else(|| Error::invalid("header.copy_date", "the date of the registry copy"))?;
                let region = if h.region.is_empty() && ftc { "US".to_owned() } else { h.region };
                ImportTarget::National { region, date: date.date_naive() }
            }
            _ => ImportTarget::Tenant {
                tenant: h.tenant_id.clone(),
                list: tenant_list(h.list, h.campaign_id, "header.list")?,
            },
        };
        // Refused before the data is read.
        self.dialer.authorize_import(&who, &target)?;
        let mut parser = LineParser::new(ftc);
        while let Some(m) = stream.message().await? {
            match m.item {
                Some(pb::import_dnc_request::Item::Data(chunk)) => parser.push(&chunk),
                _ => return Err(Error::invalid("data", "only data may follow the header").into()),
            }
        }
        let done = self.dialer.import(&who, target, parser).await?;
        Ok(Response::new(pb::ImportDncResponse { loaded: done.loaded, rejected: done.rejected }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "get_line_health", tenant = %req.get_ref().tenant_id))]
    async fn get_line_health(&self, req: Request<pb::GetLineHealthRequest>) -> Reply<pb::LineHealth> {
        let who = self.caller(&req).await?;
        let r = req.into_inner();
        let h = self.dialer.line_health(&who, &r.tenant_id, &r.caller_line).await?;
        Ok(Response::new(pb::LineHealth {
            caller_line: r.caller_line,
            attempts_last_hour: h.stats.attempts_last_hour as u32,
            answer_rate: h.health.answer_rate,
            short_call_rate: h.health.short_call_rate,
            complaints: h.stats.recent_complaints as u32,
            risk_score: h.health.risk_score,
            throttled: h.health.throttled,
            reason: h.health.reason,
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "bind_privacy_number", tenant = %req.get_ref().tenant_id))]
    async fn bind_privacy_number(&self, req: Request<pb::BindPrivacyNumberRequest>) -> Reply<pb::PrivacyBinding> {
        let who = self.caller(&req).await?;
        let r = req.into_inner();
        let b = self.dialer.bind(&who, &r.tenant_id, &r.agent_line, &r.lead_id, r.ttl_seconds).await?;
        Ok(Response::new(pb::PrivacyBinding {
            id: b.id,
            privacy_number: b.privacy_number,
            expires_at: Some(ts(b.expires_at)),
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "resolve_binding", tenant = %req.get_ref().tenant_id))]
    async fn resolve_binding(&self, req: Request<pb::ResolveBindingRequest>) -> Reply<pb::ResolveBindingResponse> {
        // The allow-list admits the telephony bridge only; a user token is refused too.
        let who = self.caller(&req).await?;
        let r = req.into_inner();
        let (e164, binding_id) = self.dialer.resolve(&who, &r.tenant_id, &r.privacy_number, &r.calling_line).await?;
        Ok(Response::new(pb::ResolveBindingResponse { e164, binding_id }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "release_binding", tenant = %req.get_ref().tenant_id))]
    async fn release_binding(&self, req: Request<pb::ReleaseBindingRequest>) -> Reply<pb::ReleaseBindingResponse> {
        let who = self.caller(&req).await?;
        let r = req.into_inner();
        self.dialer.release(&who, &r.tenant_id, &r.binding_id).await?;
        Ok(Response::new(pb::ReleaseBindingResponse {}))
    }

    #[tracing::instrument(skip_all, fields(rpc = "add_privacy_numbers", tenant = %req.get_ref().tenant_id))]
    async fn add_privacy_numbers(
        &self,
        req: Request<pb::AddPrivacyNumbersRequest>,
    ) -> Reply<pb::AddPrivacyNumbersResponse> {
        let who = self.caller(&req).await?;
        let r = req.into_inner();
        let (added, pool_size) = self.dialer.add_privacy_numbers(&who, &r.tenant_id, &r.numbers).await?;
        Ok(Response::new(pb::AddPrivacyNumbersResponse { added, pool_size }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "set_dial_policy"))]
    async fn set_dial_policy(&self, req: Request<pb::SetDialPolicyRequest>) -> Reply<pb::DialPolicy> {
        let who = self.caller(&req).await?;
        let r = req.into_inner().policy.ok_or_else(|| Error::invalid("policy", "required"))?;
        let e = self
            .dialer
            .set_policy(&who, &r.tenant_id, &r.campaign_id, policy_from(&r))
            .await
            .map_err(|e| e.within("policy"))?;
        Ok(Response::new(policy_pb(r.tenant_id, r.campaign_id, e)))
    }

    #[tracing::instrument(skip_all, fields(rpc = "get_dial_policy", tenant = %req.get_ref().tenant_id))]
    async fn get_dial_policy(&self, req: Request<pb::GetDialPolicyRequest>) -> Reply<pb::DialPolicy> {
        let who = self.caller(&req).await?;
        let r = req.into_inner();
        let e = self.dialer.get_policy(&who, &r.tenant_id, &r.campaign_id).await?;
        Ok(Response::new(policy_pb(r.tenant_id, r.campaign_id, e)))
    }

    #[tracing::instrument(skip_all, fields(rpc = "get_registry_status"))]
    async fn get_registry_status(&self, req: Request<pb::GetRegistryStatusRequest>) -> Reply<pb::RegistryStatus> {
        self.caller(&req).await?;
        let copies = self
            .dialer
            .registry
            .status()
            .into_iter()
            .map(|(region, date, numbers, memory_bytes): (String, NaiveDate, u64, u64)| pb::RegistryCopy {
                region,
                copy_date: date.and_hms_opt(0, 0, 0).map(|d| ts(d.and_utc())),
                numbers,
                memory_bytes,
            })
            .collect();
        Ok(Response::new(pb::RegistryStatus { copies }))
    }
}

//! The gRPC face of recordings: resolves the caller, checks permission and
//! scope (outside the caller's scope a recording does not exist), converts
//! proto to domain and back. Proto types stop here.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use guardline_authz::{Resource, Scope, Subject, decide, widest_scope};
use guardline_proto::recordings::v1 as pb;
use guardline_proto::recordings::v1::recordings_service_server::{RecordingsService, RecordingsServiceServer};
use guardline_runtime::args::MeshArgs;
use guardline_runtime::authz::AllowList;
use guardline_runtime::peer::PeerInfo;
use guardline_runtime::token::TokenVerifier;
use tonic::{Request, Response, Status, Streaming};

use crate::error::Error;
use crate::service::{Header, ListFilter, PurgeRun, Recordings};
use crate::store::recording;

/// The API.
#[derive(Debug)]
pub struct Api {
    recordings: Arc<Recordings>,
    verifier: Arc<TokenVerifier>,
}

impl Api {
    /// Serves `recordings`; user tokens verified with `verifier`.
    pub fn new(recordings: Arc<Recordings>, verifier: Arc<TokenVerifier>) -> Self {
        Self { recordings, verifier }
    }

    async fn user<T>(&self, req: &Request<T>) -> Result<Subject, Status> {
        let c = self.verifier.authenticate(req).await?;
        Ok(Subject::from_claims(&c.tenant, &c.sub, &c.teams, &c.perms))
    }

    /// The recording, if `who` may perform `action` on it; NOT_FOUND otherwise
    /// for scope (so ids cannot be probed), PERMISSION_DENIED without the permission.
    async fn scoped(&self, who: &Subject, action: &str, tenant: &str, id: &str) -> Result<recording::Model, Status> {
        if widest_scope(who, action).is_none() || who.tenant != tenant {
            return Err(Status::from(Error::PermissionDenied(format!("no role grants {action} in this tenant"))));
        }
        let row = self.recordings.get(tenant, id, &who.user).await?;
        let res = Resource {
            tenant: row.tenant_id.clone(),
            owner: Some(row.agent_id.clone()),
            team: Some(row.team_id.clone()),
        };
        // Playing needs the lead within the caller's lead.read scope too.
        if !(decide(who, action, &res).allowed && decide(who, "lead.read", &res).allowed) {
            return Err(Error::NotFound.into());
        }
        Ok(row)
    }
}

/// The generated server with the message size limits applied.
pub fn server(api: Api, max_message_bytes: usize) -> RecordingsServiceServer<Api> {
    RecordingsServiceServer::new(api)
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes)
}

/// The RPCs open to every mesh peer: each handler requires a user token
/// (or checks its own trusted services); the others are listed with the
/// identities that may call them. An RPC in neither list is refused.
const MESH_OPEN: &[&str] = &[
    "DownloadRecording",
    "GetRecording",
    "ListRecordings",
    "VerifyRecording",
    "SetLegalHold",
    "ClearLegalHold",
    "PurgeExpired",
    "RewrapTenantKeys",
    "SetRetentionClass",
];

/// Uploads come from the telephony bridge; erasures from lead-vault and the operator.
pub fn allow_list(mesh: &MeshArgs) -> AllowList {
    AllowList::new()
        .mesh("guardline.recordings.v1.RecordingsService", MESH_OPEN)
        .allow("/guardline.recordings.v1.RecordingsService/UploadRecording", [mesh.identity_of("telephony-bridge")])
        .allow(
            "/guardline.recordings.v1.RecordingsService/EraseLeadRecordings",
            [mesh.identity_of("lead-vault"), mesh.identity_of("operator")],
        )
}

fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 }
}

fn from_ts(field: &str, t: Option<&prost_types::Timestamp>) -> Result<Option<DateTime<Utc>>, Status> {
    t.map(|t| {
        DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)
            .ok_or_else(|| Status::from(Error::invalid(field, "out of range")))
    })
    .transpose()
}

fn to_pb(r: recording::Model) -> pb::Recording {
    pb::Recording {
        header: Some(pb::RecordingHeader {
            tenant_id: r.tenant_id,
            call_id: r.call_id,
            lead_id: r.lead_id,
            agent_id: r.agent_id,
            caller_line: r.caller_line,
            started_at: Some(ts(r.started_at)),
            duration_seconds: u32::try_from(r.duration_seconds).unwrap_or(0),
            format: r.format,
            consent_offset_ms: r.consent_offset_ms.map(|v| v as u64),
            consent_length_ms: r.consent_length_ms.map(|v| v as u64),
            team_id: r.team_id,
            retention_class: r.retention_class,
        }),
        id: r.id,
        size_bytes: r.size_bytes as u64,
        sha256: r.sha256.unwrap_or_default(),
        stored_at: r.stored_at.map(ts),
        retain_until: Some(ts(r.retain_until)),
        legal_hold: r.legal_hold,
        legal_hold_reason: r.legal_hold_reason,
    }
}

impl Api {
    /// The operator's service identity acting alone, or a user allowed
    /// `action` in `tenant`; returns the audit actor (user id, service).
    async fn operator_or_user_with<T>(
        &self,
        req: &Request<T>,
        action: &str,
        tenant: &str,
    ) -> Result<(String, String), Status> {
        if PeerInfo::is_service_acting_alone(req, "operator") {
            return Ok((String::new(), service_caller(req).unwrap_or_default()));
        }
        let who = self.user(req).await?;
        require(&who, action, tenant)?;
        Ok((who.user, String::new()))
    }
}

fn service_caller<T>(req: &Request<T>) -> Option<String> {
    PeerInfo::of(req).and_then(|p| p.identity.as_ref()).map(ToString::to_string)
}

/// An upload's header message as the domain's header.
fn header(h: pb::RecordingHeader) -> Result<Header, Status> {
    let consent = match (h.consent_offset_ms, h.consent_length_ms) {
        (Some(o), Some(l)) => Some((o, l)),
        (None, None) => None,
        _ => {
            return Err(Error::invalid(
                "header.consent_length_ms",
                "give both the offset and the length of the consent segment",
            )
            .into());
        }
    };
    Ok(Header {
        tenant: h.tenant_id,
        call_id: h.call_id,
        lead_id: h.lead_id,
        agent_id: h.agent_id,
        team_id: h.team_id,
        caller_line: h.caller_line,
        started_at: from_ts("header.started_at", h.started_at.as_ref())?
            .ok_or_else(|| Status::from(Error::invalid("header.started_at", "required")))?,
        duration_seconds: h.duration_seconds,
        format: h.format,
        consent,
        retention_class: h.retention_class,
    })
}

type Reply<T> = Result<Response<T>, Status>;
type AudioStream =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::DownloadRecordingResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl RecordingsService for Api {
    type DownloadRecordingStream = AudioStream;

    #[tracing::instrument(skip_all, fields(rpc = "upload_recording"))]
    async fn upload_recording(&self, req: Request<Streaming<pb::UploadRecordingRequest>>) -> Reply<pb::Recording> {
        let uploader = service_caller(&req).unwrap_or_default();
        let mut stream = req.into_inner();
        let first = stream
            .message()
            .await?
            .ok_or_else(|| Status::from(Error::invalid("header", "the first message must be the header")))?;
        let Some(pb::upload_recording_request::Item::Header(h)) = first.item else {
            return Err(Error::invalid("header", "the first message must be the header").into());
        };
        let header = header(h)?;
        // Audio until the end message; the end's size and hash are checked
        // against what arrived, and a stream without one is an interrupted upload.
        let end: std::sync::Arc<std::sync::Mutex<Option<pb::UploadEnd>>> = Default::default();
        let seen_end = end.clone();
        let audio = stream.filter_map(move |m| {
            let seen_end = seen_end.clone();
            async move {
                match m {
                    Ok(pb::UploadRecordingRequest { item: Some(pb::upload_recording_request::Item::Chunk(c)) }) => {
                        Some(Ok(Bytes::from(c)))
                    }
                    Ok(pb::UploadRecordingRequest { item: Some(pb::upload_recording_request::Item::End(e)) }) => {
                        *seen_end.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
                        None
                    }
                    Ok(_) => Some(Err(Error::invalid("chunk", "only audio chunks and the end may follow the header"))),
                    Err(s) => Some(Err(Error::Unavailable(format!("upload interrupted: {}", s.code())))),
                }
            }
        });
        let closing = move || {
            end.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take().map(|e| (e.size_bytes, e.sha256))
        };
        // The upload runs in its own task: if the client disconnects, the
        // handler is dropped, but the task still sees the broken stream and
        // cleans up.
        let recordings = self.recordings.clone();
        let row = tokio::spawn(async move { recordings.upload(&uploader, header, Box::pin(audio), closing).await })
            .await
            .map_err(|e| Error::Internal(format!("the upload task: {e}")))??;
        Ok(Response::new(to_pb(row)))
    }

    #[tracing::instrument(skip_all, fields(rpc = "download_recording", tenant = %req.get_ref().tenant_id))]
    async fn download_recording(&self, req: Request<pb::DownloadRecordingRequest>) -> Reply<AudioStream> {
        let who = self.user(&req).await?;
        let r = req.into_inner();
        let row = self.scoped(&who, "recording.play", &r.tenant_id, &r.recording_id).await?;
        let pieces = self.recordings.read_range(&row, &who.user, r.offset, r.length).await?;
        self.recordings.audit_play(&row, &who.user, r.offset, r.length).await?;
        let out =
            tokio_stream::iter(pieces.into_iter().map(|b| Ok(pb::DownloadRecordingResponse { chunk: b.to_vec() })));
        Ok(Response::new(Box::pin(out)))
    }

    #[tracing::instrument(skip_all, fields(rpc = "get_recording", tenant = %req.get_ref().tenant_id))]
    async fn get_recording(&self, req: Request<pb::GetRecordingRequest>) -> Reply<pb::Recording> {
        let who = self.user(&req).await?;
        let r = req.get_ref();
        Ok(Response::new(to_pb(self.scoped(&who, "recording.play", &r.tenant_id, &r.recording_id).await?)))
    }

    #[tracing::instrument(skip_all, fields(rpc = "list_recordings", tenant = %req.get_ref().tenant_id))]
    async fn list_recordings(&self, req: Request<pb::ListRecordingsRequest>) -> Reply<pb::ListRecordingsResponse> {
        let who = self.user(&req).await?;
        let r = req.into_inner();
        if who.tenant != r.tenant_id {
            return Err(Status::from(Error::PermissionDenied("cross-tenant access is never allowed".into())));
        }
        widest_scope(&who, "recording.play")
            .ok_or_else(|| Status::from(Error::PermissionDenied("no role grants recording.play".into())))?;
        // What a caller may list is what its lead.read scope reaches.
        let scope = widest_scope(&who, "lead.read")
            .ok_or_else(|| Status::from(Error::PermissionDenied("no role grants lead.read".into())))?;
        let some = |s: String| (!s.is_empty()).then_some(s);
        let mut filter = ListFilter {
            lead: some(r.lead_id),
            agent: some(r.agent_id),
            call: some(r.call_id),
            from: from_ts("from", r.from.as_ref())?,
            to: from_ts("to", r.to.as_ref())?,
            before: some(r.page_token),
            ..Default::default()
        };
        match scope {
            Scope::Own => filter.owners = Some(vec![who.user.clone()]),
            Scope::Team => filter.teams = Some(who.teams.iter().cloned().collect()),
            Scope::Tenant => {}
        }
        let size = if r.page_size == 0 { 50 } else { u64::from(r.page_size).min(1000) };
        let rows = self.recordings.list(&r.tenant_id, &filter, size, &who.user).await?;
        let next = if rows.len() as u64 == size {
            rows.last().map(|x| x.id.clone()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListRecordingsResponse {
            recordings: rows.into_iter().map(to_pb).collect(),
            next_page_token: next,
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "verify_recording", tenant = %req.get_ref().tenant_id))]
    async fn verify_recording(&self, req: Request<pb::VerifyRecordingRequest>) -> Reply<pb::VerifyRecordingResponse> {
        let who = self.user(&req).await?;
        let r = req.get_ref();
        // Edited metadata is a finding too: named, not an error.
        let row = match self.scoped(&who, "recording.play", &r.tenant_id, &r.recording_id).await {
            Err(s) if guardline_runtime::error::reason(&s) == "RECORDING_TAMPERED" => {
                let problem = "metadata differs from what was stored".into();
                return Ok(Response::new(pb::VerifyRecordingResponse { ok: false, problem }));
            }
            other => other?,
        };
        let (ok, problem) = self.recordings.verify(&row, &who.user).await?;
        Ok(Response::new(pb::VerifyRecordingResponse { ok, problem }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "set_legal_hold", tenant = %req.get_ref().tenant_id))]
    async fn set_legal_hold(&self, req: Request<pb::SetLegalHoldRequest>) -> Reply<pb::Recording> {
        let who = self.user(&req).await?;
        let r = req.get_ref();
        require(&who, "policy.manage", &r.tenant_id)?;
        Ok(Response::new(to_pb(
            self.recordings.set_hold(&r.tenant_id, &r.recording_id, true, &r.reason, &who.user).await?,
        )))
    }

    #[tracing::instrument(skip_all, fields(rpc = "clear_legal_hold", tenant = %req.get_ref().tenant_id))]
    async fn clear_legal_hold(&self, req: Request<pb::ClearLegalHoldRequest>) -> Reply<pb::Recording> {
        let who = self.user(&req).await?;
        let r = req.get_ref();
        require(&who, "policy.manage", &r.tenant_id)?;
        Ok(Response::new(to_pb(
            self.recordings.set_hold(&r.tenant_id, &r.recording_id, false, &r.reason, &who.user).await?,
        )))
    }

    #[tracing::instrument(skip_all, fields(rpc = "rewrap_tenant_keys", tenant = %req.get_ref().tenant_id))]
    async fn rewrap_tenant_keys(
        &self,
        req: Request<pb::RewrapTenantKeysRequest>,
    ) -> Reply<pb::RewrapTenantKeysResponse> {
        let tenant = req.get_ref().tenant_id.clone();
        let actor = self.operator_or_user_with(&req, "key.rotate", &tenant).await?;
        let rewrapped = self.recordings.rewrap_tenant_keys(&tenant, (&actor.0, &actor.1)).await?;
        Ok(Response::new(pb::RewrapTenantKeysResponse { rewrapped }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "purge_expired", tenant = %req.get_ref().tenant_id))]
    async fn purge_expired(&self, req: Request<pb::PurgeExpiredRequest>) -> Reply<pb::PurgeExpiredResponse> {
        let r = req.get_ref().clone();
        let actor = self.operator_or_user_with(&req, "policy.manage", &r.tenant_id).await?;
        let requested = from_ts("as_of", r.as_of.as_ref())?;
        let as_of = guardline_runtime::clock::retention_instant(requested, self.recordings.now(), r.dry_run)?;
        let run = PurgeRun { limit: r.limit, dry_run: r.dry_run };
        let p = self.recordings.purge(&r.tenant_id, as_of, run, (&actor.0, &actor.1)).await?;
        Ok(Response::new(pb::PurgeExpiredResponse {
            purged: p.purged,
            held: p.held,
            kept_for_consent: p.kept_for_consent,
            more: p.more,
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "set_retention_class"))]
    async fn set_retention_class(&self, req: Request<pb::SetRetentionClassRequest>) -> Reply<pb::RetentionClass> {
        let tenant = req.get_ref().class.as_ref().map(|c| c.tenant_id.clone()).unwrap_or_default();
        let actor = self.operator_or_user_with(&req, "policy.manage", &tenant).await?;
        let class = req.into_inner().class.ok_or_else(|| Status::from(Error::invalid("class", "required")))?;
        if class.tenant_id.is_empty() {
            return Err(Error::invalid("class.tenant_id", "required").into());
        }
        let c = &class;
        let names = (c.tenant_id.as_str(), c.name.as_str());
        let actor = (actor.0.as_str(), actor.1.as_str());
        self.recordings.set_retention_class(names.0, names.1, c.min_days, c.delete_after_days, actor).await?;
        Ok(Response::new(class))
    }

    #[tracing::instrument(skip_all, fields(rpc = "erase_lead_recordings", tenant = %req.get_ref().tenant_id))]
    async fn erase_lead_recordings(
        &self,
        req: Request<pb::EraseLeadRecordingsRequest>,
    ) -> Reply<pb::EraseLeadRecordingsResponse> {
        let service = service_caller(&req).unwrap_or_default();
        let r = req.into_inner();
        let (erased, held_recording_ids) = self.recordings.erase_lead(&r.tenant_id, &r.lead_id, ("", &service)).await?;
        Ok(Response::new(pb::EraseLeadRecordingsResponse { erased, held_recording_ids }))
    }
}

fn require(who: &Subject, action: &str, tenant: &str) -> Result<(), Status> {
    let d = decide(who, action, &Resource { tenant: tenant.to_owned(), ..Default::default() });
    if d.allowed { Ok(()) } else { Err(Status::from(Error::PermissionDenied(d.rule))) }
}

//! The gRPC face of audit: converts proto to domain and back, resolves the
//! caller, and calls the log. Reading the log is itself appended to it.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use guardline_authz::{Resource, Subject, decide};
use guardline_proto::audit::v1 as pb;
use guardline_proto::audit::v1::audit_service_server::{AuditService, AuditServiceServer};
use guardline_proto::common::v1::{Outcome, PageResponse, RequestContext};
use guardline_runtime::args::MeshArgs;
use guardline_runtime::authz::AllowList;
use guardline_runtime::peer::PeerInfo;
use guardline_runtime::token::TokenVerifier;
use tonic::{Request, Response, Status};

use crate::domain::canonical::Event;
use crate::error::Error;
use crate::service::{Filter, Log};

/// The API.
#[derive(Debug)]
pub struct Api {
    log: Arc<Log>,
    verifier: Arc<TokenVerifier>,
}

impl Api {
    /// Serves `log`; user tokens are verified with `verifier`.
    pub fn new(log: Arc<Log>, verifier: Arc<TokenVerifier>) -> Self {
        Self { log, verifier }
    }

    /// The user behind a request, who must hold `action` in `tenant`; or a
    /// service of the mesh (no token) when `services_may` is set.
    async fn authorize<T>(
        &self,
        req: &Request<T>,
        tenant: &str,
        action: &str,
        services_may: bool,
    ) -> Result<Option<Subject>, Status> {
        if !req.metadata().contains_key("authorization") {
            let peer = PeerInfo::of(req).and_then(|p| p.identity.clone());
            return if services_may && peer.is_some() {
                Ok(None)
            } else {
                Err(Status::permission_denied(format!("{action} needs a user token")))
            };
        }
        let c = self.verifier.authenticate(req).await?;
        let subject = Subject::from_claims(&c.tenant, &c.sub, &c.teams, &c.perms);
        let d = decide(&subject, action, &Resource { tenant: tenant.to_owned(), ..Default::default() });
        if d.allowed { Ok(Some(subject)) } else { Err(Status::permission_denied(d.rule)) }
    }
}

/// The generated server with the message size limits applied.
pub fn server(api: Api, max_message_bytes: usize) -> AuditServiceServer<Api> {
    AuditServiceServer::new(api)
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes)
}

/// Only the mesh's services may append.
pub fn allow_list(mesh: &MeshArgs) -> AllowList {
    let writers = ["identity", "lead-vault", "dialer-policy", "recordings"].map(|s| mesh.identity_of(s));
    AllowList::new().allow("/guardline.audit.v1.AuditService/Append", writers)
}

fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 }
}

fn from_ts(field: &str, t: &prost_types::Timestamp) -> Result<DateTime<Utc>, Status> {
    DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)
        .ok_or_else(|| Error::invalid(field, "out of range").into())
}

fn outcome_str(o: i32) -> Option<&'static str> {
    match Outcome::try_from(o) {
        Ok(Outcome::Allowed) => Some("allowed"),
        Ok(Outcome::Denied) => Some("denied"),
        Ok(Outcome::Failed) => Some("failed"),
        _ => None,
    }
}

fn from_pb(i: usize, e: pb::AuditEvent) -> Result<Event, Status> {
    let time = e.time.as_ref().ok_or_else(|| Status::from(Error::invalid(format!("events[{i}].time"), "required")))?;
    let outcome = outcome_str(e.outcome).ok_or_else(|| {
        Status::from(Error::invalid(format!("events[{i}].outcome"), "must be ALLOWED, DENIED or FAILED"))
    })?;
    let actor = e.actor.unwrap_or_default();
    let resource = e.resource.unwrap_or_default();
    let ctx = e.context.unwrap_or_default();
    Ok(Event {
        id: e.id,
        tenant_id: e.tenant_id,
        time: from_ts(&format!("events[{i}].time"), time)?,
        actor_user: actor.user_id,
        actor_service: actor.service_identity,
        action: e.action,
        resource_type: resource.r#type,
        resource_id: resource.id,
        outcome: outcome.into(),
        reason: e.reason,
        source_address: ctx.source_address,
        device_id: ctx.device_id,
        user_agent: ctx.user_agent,
        region: ctx.region,
        trace_id: ctx.trace_id,
        details: e.details,
    })
}

fn to_pb(e: Event) -> pb::AuditEvent {
    let outcome = match e.outcome.as_str() {
        "allowed" => Outcome::Allowed,
        "denied" => Outcome::Denied,
        _ => Outcome::Failed,
    };
    pb::AuditEvent {
        id: e.id,
        tenant_id: e.tenant_id,
        time: Some(ts(e.time)),
        actor: Some(pb::Actor { user_id: e.actor_user, service_identity: e.actor_service }),
        action: e.action,
        resource: Some(pb::ResourceRef { r#type: e.resource_type, id: e.resource_id }),
        outcome: outcome as i32,
        reason: e.reason,
        context: Some(RequestContext {
            source_address: e.source_address,
            device_id: e.device_id,
            user_agent: e.user_agent,
            region: e.region,
            trace_id: e.trace_id,
        }),
        details: e.details,
    }
}

type Reply<T> = Result<Response<T>, Status>;
type ChunkStream =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::ExportChunk, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl AuditService for Api {
    async fn append(&self, req: Request<pb::AppendRequest>) -> Reply<pb::AppendResponse> {
        let events = req.into_inner().events;
        if events.len() > 1000 {
            return Err(Error::invalid("events", "at most 1000 per call").into());
        }
        let events = events.into_iter().enumerate().map(|(i, e)| from_pb(i, e)).collect::<Result<Vec<_>, _>>()?;
        let (stored_ids, duplicate_ids) = self.log.append(events).await?;
        Ok(Response::new(pb::AppendResponse { stored_ids, duplicate_ids }))
    }

    async fn get_signed_tree_head(&self, req: Request<pb::GetSignedTreeHeadRequest>) -> Reply<pb::SignedTreeHead> {
        let tenant = req.get_ref().tenant_id.clone();
        self.authorize(&req, &tenant, "audit.read", true).await?;
        let h = self.log.head(&tenant).await?.ok_or(Error::NotFound)?;
        Ok(Response::new(pb::SignedTreeHead {
            tenant_id: tenant,
            tree_size: h.head.tree_size,
            root_hash: h.head.root.to_vec(),
            timestamp: DateTime::from_timestamp_millis(h.head.timestamp_ms).map(ts),
            key_id: h.kid,
            signature: h.signature,
        }))
    }

    async fn get_inclusion_proof(&self, req: Request<pb::GetInclusionProofRequest>) -> Reply<pb::InclusionProof> {
        let r = req.get_ref().clone();
        self.authorize(&req, &r.tenant_id, "audit.read", true).await?;
        let (idx, path) = self.log.inclusion(&r.tenant_id, &r.event_id, r.tree_size).await?;
        Ok(Response::new(pb::InclusionProof {
            leaf_index: idx,
            tree_size: r.tree_size,
            path: path.iter().map(|h| h.to_vec()).collect(),
        }))
    }

    async fn get_consistency_proof(&self, req: Request<pb::GetConsistencyProofRequest>) -> Reply<pb::ConsistencyProof> {
        let r = req.get_ref().clone();
        self.authorize(&req, &r.tenant_id, "audit.read", true).await?;
        let path = self.log.consistency(&r.tenant_id, r.first_size, r.second_size).await?;
        Ok(Response::new(pb::ConsistencyProof {
            first_size: r.first_size,
            second_size: r.second_size,
            path: path.iter().map(|h| h.to_vec()).collect(),
        }))
    }

    async fn query_events(&self, req: Request<pb::QueryEventsRequest>) -> Reply<pb::QueryEventsResponse> {
        let tenant = req.get_ref().tenant_id.clone();
        let subject = self
            .authorize(&req, &tenant, "audit.read", false)
            .await?
            .ok_or_else(|| Status::permission_denied("audit.read needs a user token"))?;
        let r = req.into_inner();
        let range = r.range.unwrap_or_default();
        let filter = Filter {
            tenant: tenant.clone(),
            actor_user: (!r.actor_user_id.is_empty()).then_some(r.actor_user_id),
            action: (!r.action.is_empty()).then_some(r.action),
            resource: r.resource.filter(|x| !x.r#type.is_empty()).map(|x| (x.r#type, x.id)),
            outcome: outcome_str(r.outcome).map(str::to_owned),
            from: range.start.as_ref().map(|t| from_ts("range.start", t)).transpose()?,
            to: range.end.as_ref().map(|t| from_ts("range.end", t)).transpose()?,
        };
        let page = r.page.unwrap_or_default();
        let size = if page.page_size == 0 { 50 } else { u64::from(page.page_size).min(1000) };
        let before = if page.page_token.is_empty() {
            None
        } else {
            Some(
                page.page_token
                    .parse::<i64>()
                    .map_err(|_| Status::from(Error::invalid("page.page_token", "not a token from a previous page")))?,
            )
        };
        let rows = self.log.query(&filter, before, size).await?;
        let next = if rows.len() as u64 == size {
            rows.last().map(|(i, _)| i.to_string()).unwrap_or_default()
        } else {
            String::new()
        };
        // Reading the audit log is itself audited, in the same log.
        let read = Event {
            id: uuid::Uuid::now_v7().to_string(),
            tenant_id: tenant.clone(),
            time: Utc::now(),
            actor_user: subject.user.clone(),
            actor_service: "audit".into(),
            action: "audit.query".into(),
            resource_type: "audit_log".into(),
            resource_id: tenant,
            outcome: "allowed".into(),
            details: [("results".to_owned(), rows.len().to_string())].into(),
            ..Default::default()
        };
        self.log.append(vec![read]).await?;
        Ok(Response::new(pb::QueryEventsResponse {
            events: rows.into_iter().map(|(_, e)| to_pb(e)).collect(),
            page: Some(PageResponse { next_page_token: next }),
        }))
    }

    async fn export_events(&self, req: Request<pb::ExportEventsRequest>) -> Reply<ChunkStream> {
        use crate::domain::export::{FORMAT, Line};
        use base64::Engine;
        let tenant = req.get_ref().tenant_id.clone();
        let subject = self
            .authorize(&req, &tenant, "audit.read", false)
            .await?
            .ok_or_else(|| Status::permission_denied("audit.read needs a user token"))?;
        if req.get_ref().range.is_some() {
            return Err(Error::invalid("range", "exports cover the whole log, so that they verify offline").into());
        }
        let mut read = Event {
            id: uuid::Uuid::now_v7().to_string(),
            tenant_id: tenant.clone(),
            time: Utc::now(),
            actor_user: subject.user.clone(),
            actor_service: "audit".into(),
            action: "audit.export".into(),
            resource_type: "audit_log".into(),
            resource_id: tenant.clone(),
            outcome: "allowed".into(),
            ..Default::default()
        };
        read.details.insert("format".into(), FORMAT.into());
        self.log.append(vec![read]).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let log = self.log.clone();
        tokio::spawn(async move {
            let b64 = base64::engine::general_purpose::STANDARD;
            let keys = log.public_keys().iter().map(|(k, v)| (k.clone(), b64.encode(v))).collect();
            let mut chunk = Line::Header { format: FORMAT.into(), tenant_id: tenant.clone(), keys }.to_json_line();
            let mut from = 0;
            let mut last = None;
            loop {
                let page = match log.records_page(&tenant, from, Some(1000)).await {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = tx.send(Err(e.into())).await;
                        return;
                    }
                };
                if page.is_empty() {
                    break;
                }
                for r in &page {
                    chunk.push_str(&Line::entry(r).to_json_line());
                }
                from = page.last().map_or(from, |r| r.index + 1);
                last = page.last().cloned();
                if tx.send(Ok(pb::ExportChunk { data: std::mem::take(&mut chunk).into_bytes() })).await.is_err() {
                    return;
                }
            }
            if let Some(r) = last {
                let size = r.index + 1;
                match log.root_at(&tenant, size).await {
                    Ok(root) => chunk.push_str(
                        &Line::TreeHead {
                            tree_size: size,
                            root_hash: b64.encode(root),
                            timestamp_ms: r.head_timestamp_ms,
                            key_id: r.head_kid.clone(),
                            signature: b64.encode(&r.head_signature),
                        }
                        .to_json_line(),
                    ),
                    Err(e) => {
                        let _ = tx.send(Err(e.into())).await;
                        return;
                    }
                }
            }
            let _ = tx.send(Ok(pb::ExportChunk { data: chunk.into_bytes() })).await;
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    async fn set_retention(&self, req: Request<pb::SetRetentionRequest>) -> Reply<pb::SetRetentionResponse> {
        let r = req.get_ref().clone();
        self.authorize(&req, &r.tenant_id, "policy.manage", false).await?;
        if r.retention_days < 180 {
            return Err(Error::invalid("retention_days", "must be at least 180 days").into());
        }
        let days = self.log.set_retention(&r.tenant_id, r.retention_days).await?;
        Ok(Response::new(pb::SetRetentionResponse { retention_days: days }))
    }
}

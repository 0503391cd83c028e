//! The gRPC face of audit: converts proto to domain and back, resolves the
//! caller, and calls the log. Reading the log is itself appended to it.

use std::sync::Arc;

use chrono::DateTime;
use guardline_authz::{Resource, Subject, decide};
use guardline_proto::audit::v1 as pb;
use guardline_proto::audit::v1::audit_service_server::{AuditService, AuditServiceServer};
use guardline_proto::common::v1::PageResponse;
use guardline_runtime::args::MeshArgs;
use guardline_runtime::authz::AllowList;
use guardline_runtime::peer::{PeerInfo, SpiffeId};
use guardline_runtime::token::TokenVerifier;
use tonic::{Request, Response, Status};

use crate::domain::alerts::{Calendar, Hours};
use crate::domain::canonical::Event;
use crate::error::Error;
use crate::service::alerting::{Alerting, state};
use crate::service::{Filter, Log};
use guardline_proto::identity::v1::GetTenantRequest;
use guardline_proto::identity::v1::identity_service_client::IdentityServiceClient;
use guardline_runtime::GrpcChannel;

mod convert;

use convert::*;

/// The API.
#[derive(Debug)]
pub struct Api {
    log: Arc<Log>,
    alerting: Arc<Alerting>,
    verifier: Arc<TokenVerifier>,
}

impl Api {
    /// Serves `log` and `alerting`; user tokens are verified with `verifier`.
    pub fn new(log: Arc<Log>, alerting: Arc<Alerting>, verifier: Arc<TokenVerifier>) -> Self {
        Self { log, alerting, verifier }
    }

    /// A user holding `alert.manage`, or else `audit.read`.
    async fn alert_reader<T>(&self, req: &Request<T>, tenant: &str) -> Result<Subject, Status> {
        match self.authorize(req, tenant, "alert.manage", false).await {
            Ok(Some(s)) => Ok(s),
            _ => self
                .authorize(req, tenant, "audit.read", false)
                .await?
                .ok_or_else(|| Status::from(Error::PermissionDenied("needs a user token".into()))),
        }
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
                Err(Status::from(Error::PermissionDenied(format!("{action} needs a user token"))))
            };
        }
        let c = self.verifier.authenticate(req).await?;
        let subject = Subject::from_claims(&c.tenant, &c.sub, &c.teams, &c.perms);
        let d = decide(&subject, action, &Resource { tenant: tenant.to_owned(), ..Default::default() });
        if d.allowed { Ok(Some(subject)) } else { Err(Status::from(Error::PermissionDenied(d.rule))) }
    }
}

/// The generated server with the message size limits applied.
pub fn server(api: Api, max_message_bytes: usize) -> AuditServiceServer<Api> {
    AuditServiceServer::new(api)
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes)
}

/// The RPCs open to every mesh peer: each handler requires a user token
/// (or checks its own trusted services); the others are listed with the
/// identities that may call them. An RPC in neither list is refused.
const MESH_OPEN: &[&str] = &[
    "GetSignedTreeHead",
    "GetInclusionProof",
    "GetConsistencyProof",
    "QueryEvents",
    "ExportEvents",
    "SetRetention",
    "Prune",
    "ListAlerts",
    "WatchAlerts",
    "UpdateAlert",
    "ConfigureAlerts",
];

/// Only the mesh's services may append (the operator: its retention
/// findings, such as overdue erasures); only the operator and platform
/// admins rotate the head-signing key.
pub fn allow_list(mesh: &MeshArgs) -> AllowList {
    let writers = ["identity", "lead-vault", "dialer-policy", "recordings", "operator"].map(|s| mesh.identity_of(s));
    let key_admins = ["operator", "platform-admin"].map(|s| mesh.identity_of(s));
    AllowList::new()
        .mesh("guardline.audit.v1.AuditService", MESH_OPEN)
        .allow("/guardline.audit.v1.AuditService/Append", writers)
        .allow("/guardline.audit.v1.AuditService/RotateSigningKey", key_admins)
}

/// Attributes every event to the service whose certificate sent it: a
/// writer may leave the actor's service empty or name itself (by SPIFFE id
/// or service account); naming anyone else refuses the whole batch, before
/// anything in it is validated. A service a writer acted for is a detail
/// (`acting_service`) the writer vouches for, not the actor.
fn attribute(writer: &SpiffeId, events: &mut [pb::AuditEvent]) -> Result<(), Status> {
    let (full, account) = (writer.to_string(), writer.service_account().unwrap_or_default().to_owned());
    for (i, e) in events.iter_mut().enumerate() {
        let actor = e.actor.get_or_insert_with(Default::default);
        let claimed = actor.service_identity.as_str();
        if !(claimed.is_empty() || claimed == full || claimed == account) {
            return Err(Error::PermissionDenied(format!(
                "events[{i}].actor.service_identity must be empty or the caller's own identity"
            ))
            .into());
        }
        actor.service_identity.clone_from(&full);
    }
    Ok(())
}

type Reply<T> = Result<Response<T>, Status>;
type AlertStream = std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::Alert, Status>> + Send + 'static>>;
type ChunkStream =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::ExportChunk, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl AuditService for Api {
    type ExportEventsStream = ChunkStream;
    type WatchAlertsStream = AlertStream;

    #[tracing::instrument(skip_all, fields(rpc = "append"))]
    async fn append(&self, req: Request<pb::AppendRequest>) -> Reply<pb::AppendResponse> {
        let writer = PeerInfo::of(&req)
            .and_then(|p| p.identity.clone())
            .ok_or_else(|| Status::from(Error::PermissionDenied("append needs a service certificate".into())))?;
        let mut events = req.into_inner().events;
        attribute(&writer, &mut events)?;
        if events.len() > 1000 {
            return Err(Error::invalid("events", "at most 1000 per call").into());
        }
        let events = events.into_iter().enumerate().map(|(i, e)| from_pb(i, e)).collect::<Result<Vec<_>, _>>()?;
        let started = std::time::Instant::now();
        let (stored_ids, duplicate_ids) = self.log.append(events.clone()).await?;
        let metrics = guardline_runtime::metrics::business();
        metrics.audit_append.record(started.elapsed().as_secs_f64(), &[]);
        metrics.audit_appended.add(stored_ids.len() as u64, &[]);
        // Detection reads them from the log, in the replica holding its lease.
        Ok(Response::new(pb::AppendResponse { stored_ids, duplicate_ids }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "get_signed_tree_head", tenant = %req.get_ref().tenant_id))]
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

    #[tracing::instrument(skip_all, fields(rpc = "get_inclusion_proof", tenant = %req.get_ref().tenant_id))]
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

    #[tracing::instrument(skip_all, fields(rpc = "get_consistency_proof", tenant = %req.get_ref().tenant_id))]
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

    #[tracing::instrument(skip_all, fields(rpc = "query_events", tenant = %req.get_ref().tenant_id))]
    async fn query_events(&self, req: Request<pb::QueryEventsRequest>) -> Reply<pb::QueryEventsResponse> {
        let tenant = req.get_ref().tenant_id.clone();
        let subject = self
            .authorize(&req, &tenant, "audit.read", false)
            .await?
            .ok_or_else(|| Status::from(Error::PermissionDenied("audit.read needs a user token".into())))?;
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
            time: self.log.now(),
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

    #[tracing::instrument(skip_all, fields(rpc = "export_events", tenant = %req.get_ref().tenant_id))]
    async fn export_events(&self, req: Request<pb::ExportEventsRequest>) -> Reply<ChunkStream> {
        use crate::domain::export::FORMAT;
        let tenant = req.get_ref().tenant_id.clone();
        let subject = self
            .authorize(&req, &tenant, "audit.read", false)
            .await?
            .ok_or_else(|| Status::from(Error::PermissionDenied("audit.read needs a user token".into())))?;
        if req.get_ref().range.is_some() {
            return Err(Error::invalid("range", "exports cover the whole log, so that they verify offline").into());
        }
        let mut read = Event {
            id: uuid::Uuid::now_v7().to_string(),
            tenant_id: tenant.clone(),
            time: self.log.now(),
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
        let chunks = crate::service::export::chunks(self.log.clone(), tenant);
        let stream = tokio_stream::StreamExt::map(chunks, |c| {
            c.map(|data| pb::ExportChunk { data: data.into_bytes() }).map_err(Status::from)
        });
        Ok(Response::new(Box::pin(stream)))
    }

    #[tracing::instrument(skip_all, fields(rpc = "list_alerts", tenant = %req.get_ref().tenant_id))]
    async fn list_alerts(&self, req: Request<pb::ListAlertsRequest>) -> Reply<pb::ListAlertsResponse> {
        let tenant = req.get_ref().tenant_id.clone();
        self.alert_reader(&req, &tenant).await?;
        let r = req.into_inner();
        let st = match pb::AlertState::try_from(r.state) {
            Ok(pb::AlertState::Open) => Some(state::OPEN),
            Ok(pb::AlertState::Acknowledged) => Some(state::ACKNOWLEDGED),
            Ok(pb::AlertState::Resolved) => Some(state::RESOLVED),
            _ => None,
        };
        let page = r.page.unwrap_or_default();
        let size = if page.page_size == 0 { 50 } else { u64::from(page.page_size).min(1000) };
        let before = (!page.page_token.is_empty()).then_some(page.page_token.as_str());
        let rows = self.alerting.list(&tenant, st, before, size).await?;
        let next = if rows.len() as u64 == size {
            rows.last().map(|a| a.id.clone()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListAlertsResponse {
            alerts: rows.into_iter().map(alert_pb).collect(),
            page: Some(PageResponse { next_page_token: next }),
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "watch_alerts", tenant = %req.get_ref().tenant_id))]
    async fn watch_alerts(&self, req: Request<pb::WatchAlertsRequest>) -> Reply<AlertStream> {
        let tenant = req.get_ref().tenant_id.clone();
        self.alert_reader(&req, &tenant).await?;
        let mut rx = self.alerting.subscribe();
        let (tx, out) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(a) if a.tenant_id == tenant => {
                        if tx.send(Ok(alert_pb(a))).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(skipped = n, "alert watcher lagged; ListAlerts has them all");
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(out))))
    }

    #[tracing::instrument(skip_all, fields(rpc = "update_alert", tenant = %req.get_ref().tenant_id))]
    async fn update_alert(&self, req: Request<pb::UpdateAlertRequest>) -> Reply<pb::Alert> {
        let r = req.get_ref().clone();
        let who = self
            .authorize(&req, &r.tenant_id, "alert.manage", false)
            .await?
            .ok_or_else(|| Status::from(Error::PermissionDenied("needs a user token".into())))?;
        let st = match pb::AlertState::try_from(r.state) {
            Ok(pb::AlertState::Acknowledged) => state::ACKNOWLEDGED,
            Ok(pb::AlertState::Resolved) => state::RESOLVED,
            _ => return Err(Error::invalid("state", "use ACKNOWLEDGED or RESOLVED").into()),
        };
        Ok(Response::new(alert_pb(self.alerting.update(&r.tenant_id, &r.alert_id, st, &who.user).await?)))
    }

    #[tracing::instrument(skip_all, fields(rpc = "configure_alerts", tenant = %req.get_ref().tenant_id))]
    async fn configure_alerts(&self, req: Request<pb::ConfigureAlertsRequest>) -> Reply<pb::AlertSettings> {
        let r = req.get_ref().clone();
        self.authorize(&req, &r.tenant_id, "alert.manage", false).await?;
        let (current, _) = self.alerting.settings(&r.tenant_id).await?;
        let t = r.thresholds.as_ref().map_or(current.clone(), |p| merge_thresholds(current, p));
        let hooks = r.webhooks.into_iter().map(|w| (w.url, w.secret)).collect();
        let (t, urls) = self.alerting.configure(&r.tenant_id, t, hooks).await?;
        Ok(Response::new(pb::AlertSettings {
            tenant_id: r.tenant_id,
            thresholds: Some(thresholds_pb(&t)),
            webhook_urls: urls,
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "prune", tenant = %req.get_ref().tenant_id))]
    async fn prune(&self, req: Request<pb::PruneRequest>) -> Reply<pb::PruneResponse> {
        let r = req.get_ref().clone();
        // The operator (service identity, no user token) prunes on schedule; users need policy.manage.
        if !PeerInfo::is_service_acting_alone(&req, "operator") {
            self.authorize(&req, &r.tenant_id, "policy.manage", false).await?;
        }
        let requested = r.as_of.as_ref().map(|t| from_ts("as_of", t)).transpose()?;
        let as_of = guardline_runtime::clock::retention_instant(requested, self.log.now(), r.dry_run)?;
        let (pruned, first_index) = self.log.prune(&r.tenant_id, as_of, r.dry_run).await?;
        Ok(Response::new(pb::PruneResponse { pruned, first_index }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "set_retention", tenant = %req.get_ref().tenant_id))]
    async fn set_retention(&self, req: Request<pb::SetRetentionRequest>) -> Reply<pb::SetRetentionResponse> {
        let r = req.get_ref().clone();
        // The operator writes a RetentionPolicy's period; users need policy.manage.
        if !PeerInfo::is_service_acting_alone(&req, "operator") {
            self.authorize(&req, &r.tenant_id, "policy.manage", false).await?;
        }
        if r.tenant_id.is_empty() {
            return Err(Error::invalid("tenant_id", "required").into());
        }
        if r.retention_days < 180 {
            return Err(Error::invalid("retention_days", "must be at least 180 days").into());
        }
        let days = self.log.set_retention(&r.tenant_id, r.retention_days).await?;
        Ok(Response::new(pb::SetRetentionResponse { retention_days: days }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "rotate_signing_key", tenant = "_platform"))]
    async fn rotate_signing_key(
        &self,
        req: Request<pb::RotateSigningKeyRequest>,
    ) -> Reply<pb::RotateSigningKeyResponse> {
        // The allow-list admits only the operator and platform admins.
        let caller = PeerInfo::of(&req).and_then(|p| p.identity.clone()).map(|id| id.to_string()).unwrap_or_default();
        let r = self.log.rotate_signing_key(&caller, &req.get_ref().reason).await?;
        Ok(Response::new(pb::RotateSigningKeyResponse {
            key_id: r.kid,
            fingerprint: r.fingerprint,
            active: r.active,
            previous_key_id: r.previous,
        }))
    }
}

/// Identity, as alerting asks it for a tenant's working hours.
#[derive(Clone, Debug)]
pub struct IdentityHours(IdentityServiceClient<GrpcChannel>);

impl IdentityHours {
    /// Identity over `channel`.
    pub fn new(channel: GrpcChannel) -> Self {
        Self(IdentityServiceClient::new(channel))
    }
}

#[async_trait::async_trait]
impl crate::service::alerting::WorkingHours for IdentityHours {
    async fn calendar(&self, tenant: &str) -> Option<Calendar> {
        let mut client = self.0.clone();
        match client.get_tenant(GetTenantRequest { tenant_id: tenant.to_owned() }).await {
            Ok(t) => {
                let t = t.into_inner();
                t.time_zone.parse::<chrono_tz::Tz>().ok().map(|tz| Calendar {
                    tz,
                    hours: t
                        .working_hours
                        .into_iter()
                        .map(|h| Hours { weekdays: h.weekdays, start_minute: h.start_minute, end_minute: h.end_minute })
                        .collect(),
                })
            }
            Err(s) => {
                tracing::debug!(code = ?s.code(), "no working hours from identity; off-hours rule skipped");
                None
            }
        }
    }
}

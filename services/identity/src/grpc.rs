//! The gRPC face of identity: resolves the caller, validates and converts
//! proto to domain and back, and calls the service. Proto types stop here.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use guardline_authz::{Resource, Subject, decide};
use guardline_proto::common::v1::PageResponse;
use guardline_proto::identity::v1 as pb;
use guardline_proto::identity::v1::identity_service_server::{IdentityService, IdentityServiceServer};
use guardline_runtime::args::MeshArgs;
use guardline_runtime::authz::AllowList;
use guardline_runtime::peer::{PeerInfo, SpiffeId};
use tonic::{Request, Response, Status};

use crate::domain::{RiskAction, RiskLevel, RiskPolicy, WorkingHours};
use crate::error::Error;
use crate::service::{
    Caller, ClientContext, Credentials, Identity, LoginOutcome, NewUser, TenantSettings, UserChanges,
};
use crate::store::{self, login_event, role, status, tenant, user};

/// The API.
#[derive(Debug)]
pub struct Api {
    identity: Arc<Identity>,
    platform_admins: Vec<SpiffeId>,
    gateways: Vec<SpiffeId>,
}

impl Api {
    /// Serves `identity`; `platform_admins` may manage tenants.
    pub fn new(identity: Arc<Identity>, platform_admins: Vec<SpiffeId>) -> Self {
        Self { identity, platform_admins, gateways: Vec::new() }
    }

    /// `gateways` may report the end user's source address.
    pub fn with_gateways(mut self, gateways: Vec<SpiffeId>) -> Self {
        self.gateways = gateways;
        self
    }

    /// The login's source address: as a trusted gateway reports it, else
    /// the connection's peer address; never what any other caller claims.
    fn source_address<T>(&self, req: &Request<T>, claimed: String) -> String {
        let peer = PeerInfo::of(req);
        if peer.and_then(|p| p.identity.as_ref()).is_some_and(|id| self.gateways.contains(id)) {
            return claimed;
        }
        peer.and_then(|p| p.remote_addr).map(|a| a.ip().to_string()).unwrap_or_default()
    }

    async fn caller<T>(&self, req: &Request<T>) -> Result<Caller, Status> {
        if req.metadata().contains_key("authorization") {
            return Ok(Caller::User(self.identity.verifier.authenticate(req).await?));
        }
        let peer = PeerInfo::of(req)
            .and_then(|p| p.identity.clone())
            .ok_or_else(|| Status::unauthenticated("no service identity and no bearer token"))?;
        Ok(if self.platform_admins.contains(&peer) {
            Caller::Platform(peer.to_string())
        } else {
            Caller::Service(peer.to_string())
        })
    }
}

/// The generated server with the message size limits applied.
pub fn server(api: Api, max_message_bytes: usize) -> IdentityServiceServer<Api> {
    IdentityServiceServer::new(api)
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes)
}

/// The RPCs open to every mesh peer: each handler requires a user token
/// (or checks its own trusted services); the others are listed with the
/// identities that may call them. An RPC in neither list is refused.
const MESH_OPEN: &[&str] = &[
    "CreateTenant",
    "GetTenant",
    "UpdateTenantSettings",
    "CreateUser",
    "UpdateUser",
    "DisableUser",
    "ListUsers",
    "AssignRoles",
    "CreateRole",
    "ListRoles",
    "CreateTeam",
    "SetTeamMembers",
    "Login",
    "Refresh",
    "Logout",
    "EnrollTotp",
    "ConfirmTotp",
    "GetVerificationKeys",
    "RevokeSigningKey",
    "Authorize",
    "ListLoginEvents",
];

/// Which service identities may call which RPC: tenant creation is checked
/// in the handler (platform admins are configuration, not a fixed list).
pub fn allow_list(_mesh: &MeshArgs) -> AllowList {
    AllowList::new().mesh("guardline.identity.v1.IdentityService", MESH_OPEN)
}

fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 }
}

fn from_ts(field: &str, t: Option<&prost_types::Timestamp>) -> Result<Option<DateTime<Utc>>, Status> {
    t.map(|t| {
        DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)
            .ok_or_else(|| Error::invalid(field, "out of range").into())
    })
    .transpose()
}

fn risk_action(field: &str, a: i32) -> Result<RiskAction, Status> {
    match pb::RiskAction::try_from(a) {
        Ok(pb::RiskAction::AllowAndAlert) => Ok(RiskAction::AllowAndAlert),
        Ok(pb::RiskAction::RequireTotp) => Ok(RiskAction::RequireTotp),
        Ok(pb::RiskAction::Deny) => Ok(RiskAction::Deny),
        _ => Err(Error::invalid(field, "use ALLOW_AND_ALERT, REQUIRE_TOTP or DENY").into()),
    }
}

fn policy_from(p: &pb::LoginRiskPolicy) -> Result<RiskPolicy, Status> {
    let d = RiskPolicy::default();
    Ok(RiskPolicy {
        low: risk_action("login_risk_policy.low", p.low)?,
        medium: risk_action("login_risk_policy.medium", p.medium)?,
        high: risk_action("login_risk_policy.high", p.high)?,
        max_failed_attempts: if p.max_failed_attempts == 0 { d.max_failed_attempts } else { p.max_failed_attempts },
        lockout_seconds: if p.lockout_seconds == 0 { d.lockout_seconds } else { p.lockout_seconds },
    })
}

fn action_pb(a: RiskAction) -> pb::RiskAction {
    match a {
        RiskAction::Allow => pb::RiskAction::Unspecified,
        RiskAction::AllowAndAlert => pb::RiskAction::AllowAndAlert,
        RiskAction::RequireTotp => pb::RiskAction::RequireTotp,
        RiskAction::Deny => pb::RiskAction::Deny,
    }
}

fn level_pb(l: RiskLevel) -> pb::RiskLevel {
    match l {
        RiskLevel::None => pb::RiskLevel::None,
        RiskLevel::Low => pb::RiskLevel::Low,
        RiskLevel::Medium => pb::RiskLevel::Medium,
        RiskLevel::High => pb::RiskLevel::High,
    }
}

fn hours_from(h: &[pb::WorkingHours]) -> Vec<WorkingHours> {
    h.iter()
        .map(|h| WorkingHours { weekdays: h.weekdays.clone(), start_minute: h.start_minute, end_minute: h.end_minute })
        .collect()
}

fn tenant_pb(t: tenant::Model) -> pb::Tenant {
    let hours: Vec<WorkingHours> = serde_json::from_str(&t.working_hours).unwrap_or_default();
    let p: RiskPolicy = serde_json::from_str(&t.risk_policy).unwrap_or_default();
    pb::Tenant {
        id: t.id,
        name: t.name,
        status: if t.status == status::ACTIVE { pb::TenantStatus::Active } else { pb::TenantStatus::Suspended } as i32,
        time_zone: t.time_zone,
        working_hours: hours
            .into_iter()
            .map(|h| pb::WorkingHours { weekdays: h.weekdays, start_minute: h.start_minute, end_minute: h.end_minute })
            .collect(),
        login_risk_policy: Some(pb::LoginRiskPolicy {
            low: action_pb(p.low) as i32,
            medium: action_pb(p.medium) as i32,
            high: action_pb(p.high) as i32,
            max_failed_attempts: p.max_failed_attempts,
            lockout_seconds: p.lockout_seconds,
        }),
        created_at: Some(ts(t.created_at)),
    }
}

async fn user_pb(identity: &Identity, u: user::Model) -> Result<pb::User, Status> {
    let team_ids = identity.teams_of(&u.tenant_id, &u.id).await?;
    let locked = u.locked_until.is_some_and(|t| t > identity.clock.now());
    let status = match (u.status.as_str(), locked) {
        (status::ACTIVE, true) => pb::UserStatus::Locked,
        (status::ACTIVE, false) => pb::UserStatus::Active,
        _ => pb::UserStatus::Disabled,
    };
    Ok(pb::User {
        roles: store::roles_of(&u),
        totp_enrolled: u.totp_sealed.is_some(),
        id: u.id,
        tenant_id: u.tenant_id,
        login: u.login,
        display_name: u.display_name,
        team_ids,
        status: status as i32,
    })
}

fn role_pb(r: role::Model) -> pb::Role {
    pb::Role {
        permissions: serde_json::from_str(&r.permissions).unwrap_or_default(),
        name: r.name,
        tenant_id: r.tenant_id,
        built_in: r.built_in,
    }
}

fn login_pb(o: LoginOutcome) -> pb::LoginResponse {
    let (assessment, action) = o.risk;
    pb::LoginResponse {
        access_token: o.access_token,
        access_token_expires_at: Some(ts(o.expires_at)),
        refresh_token: o.refresh_token,
        risk: Some(pb::RiskAssessment {
            level: level_pb(assessment.level) as i32,
            reasons: assessment.reasons,
            action: action_pb(action) as i32,
        }),
    }
}

fn event_pb(e: login_event::Model) -> pb::LoginEvent {
    let level = match e.risk_level.as_str() {
        "low" => pb::RiskLevel::Low,
        "medium" => pb::RiskLevel::Medium,
        "high" => pb::RiskLevel::High,
        _ => pb::RiskLevel::None,
    };
    let action = match e.risk_action.as_str() {
        "allow_and_alert" => pb::RiskAction::AllowAndAlert,
        "require_totp" => pb::RiskAction::RequireTotp,
        "deny" => pb::RiskAction::Deny,
        _ => pb::RiskAction::Unspecified,
    };
    pb::LoginEvent {
        id: e.id,
        user_id: e.user_id.unwrap_or_default(),
        at: Some(ts(e.at)),
        success: e.success,
        failure_reason: e.failure_reason,
        risk: Some(pb::RiskAssessment {
            level: level as i32,
            reasons: serde_json::from_str(&e.risk_reasons).unwrap_or_default(),
            action: action as i32,
        }),
        context: Some(guardline_proto::common::v1::RequestContext {
            source_address: e.source_address,
            device_id: e.device_id,
            user_agent: e.user_agent,
            region: e.region,
            trace_id: String::new(),
        }),
    }
}

fn page_size(p: Option<&guardline_proto::common::v1::PageRequest>) -> (u64, Option<String>) {
    let size = p.map_or(50, |p| if p.page_size == 0 { 50 } else { u64::from(p.page_size) });
    (size.min(1000), p.map(|p| p.page_token.clone()).filter(|t| !t.is_empty()))
}

fn creds(tenant: &str, login: &str, password: &str) -> Option<Credentials> {
    (!login.is_empty()).then(|| Credentials {
        tenant: tenant.into(),
        login: login.into(),
        password: password.into(),
        totp_code: String::new(),
    })
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl IdentityService for Api {
    async fn create_tenant(&self, req: Request<pb::CreateTenantRequest>) -> Reply<pb::Tenant> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let settings = TenantSettings {
            time_zone: (!r.time_zone.is_empty()).then_some(r.time_zone),
            working_hours: Some(hours_from(&r.working_hours)),
            risk_policy: r.login_risk_policy.as_ref().map(policy_from).transpose()?,
        };
        Ok(Response::new(tenant_pb(self.identity.create_tenant(&caller, &r.name, settings).await?)))
    }

    async fn get_tenant(&self, req: Request<pb::GetTenantRequest>) -> Reply<pb::Tenant> {
        let caller = self.caller(&req).await?;
        Ok(Response::new(tenant_pb(self.identity.get_tenant(&caller, &req.get_ref().tenant_id).await?)))
    }

    async fn update_tenant_settings(&self, req: Request<pb::UpdateTenantSettingsRequest>) -> Reply<pb::Tenant> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let settings = TenantSettings {
            time_zone: r.time_zone,
            working_hours: (!r.working_hours.is_empty()).then(|| hours_from(&r.working_hours)),
            risk_policy: r.login_risk_policy.as_ref().map(policy_from).transpose()?,
        };
        Ok(Response::new(tenant_pb(self.identity.update_tenant(&caller, &r.tenant_id, settings).await?)))
    }

    async fn create_user(&self, req: Request<pb::CreateUserRequest>) -> Reply<pb::User> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let new = NewUser {
            login: r.login,
            display_name: r.display_name,
            password: r.password,
            roles: r.roles,
            team_ids: r.team_ids,
        };
        let u = self.identity.create_user(&caller, &r.tenant_id, new).await?;
        Ok(Response::new(user_pb(&self.identity, u).await?))
    }

    async fn update_user(&self, req: Request<pb::UpdateUserRequest>) -> Reply<pb::User> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let active = match r.status.map(pb::UserStatus::try_from) {
            None => None,
            Some(Ok(pb::UserStatus::Active)) => Some(true),
            Some(Ok(pb::UserStatus::Disabled)) => Some(false),
            Some(_) => return Err(Error::invalid("status", "use ACTIVE or DISABLED").into()),
        };
        let changes = UserChanges { display_name: r.display_name, active, password: r.password };
        let u = self.identity.update_user(&caller, &r.tenant_id, &r.user_id, changes).await?;
        Ok(Response::new(user_pb(&self.identity, u).await?))
    }

    async fn disable_user(&self, req: Request<pb::DisableUserRequest>) -> Reply<pb::User> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let changes = UserChanges { active: Some(false), ..Default::default() };
        let u = self.identity.update_user(&caller, &r.tenant_id, &r.user_id, changes).await?;
        Ok(Response::new(user_pb(&self.identity, u).await?))
    }

    async fn list_users(&self, req: Request<pb::ListUsersRequest>) -> Reply<pb::ListUsersResponse> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let (size, after) = page_size(r.page.as_ref());
        let team = (!r.team_id.is_empty()).then_some(r.team_id.as_str());
        let rows = self.identity.list_users(&caller, &r.tenant_id, team, after.as_deref(), size).await?;
        let next = if rows.len() as u64 == size {
            rows.last().map(|u| u.id.clone()).unwrap_or_default()
        } else {
            String::new()
        };
        let mut users = Vec::with_capacity(rows.len());
        for u in rows {
            users.push(user_pb(&self.identity, u).await?);
        }
        Ok(Response::new(pb::ListUsersResponse { users, page: Some(PageResponse { next_page_token: next }) }))
    }

    async fn assign_roles(&self, req: Request<pb::AssignRolesRequest>) -> Reply<pb::User> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let u = self.identity.assign_roles(&caller, &r.tenant_id, &r.user_id, r.roles).await?;
        Ok(Response::new(user_pb(&self.identity, u).await?))
    }

    async fn create_role(&self, req: Request<pb::CreateRoleRequest>) -> Reply<pb::Role> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        Ok(Response::new(role_pb(self.identity.create_role(&caller, &r.tenant_id, &r.name, &r.permissions).await?)))
    }

    async fn list_roles(&self, req: Request<pb::ListRolesRequest>) -> Reply<pb::ListRolesResponse> {
        let caller = self.caller(&req).await?;
        let roles = self.identity.list_roles(&caller, &req.get_ref().tenant_id).await?;
        Ok(Response::new(pb::ListRolesResponse { roles: roles.into_iter().map(role_pb).collect() }))
    }

    async fn create_team(&self, req: Request<pb::CreateTeamRequest>) -> Reply<pb::Team> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let t = self.identity.create_team(&caller, &r.tenant_id, &r.name).await?;
        Ok(Response::new(pb::Team {
            id: t.id,
            tenant_id: t.tenant_id,
            name: t.name,
            member_ids: vec![],
            lead_ids: vec![],
        }))
    }

    async fn set_team_members(&self, req: Request<pb::SetTeamMembersRequest>) -> Reply<pb::Team> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let (t, rows) =
            self.identity.set_team_members(&caller, &r.tenant_id, &r.team_id, &r.member_ids, &r.lead_ids).await?;
        let (leads, members): (Vec<_>, Vec<_>) = rows.into_iter().partition(|m| m.is_lead);
        Ok(Response::new(pb::Team {
            id: t.id,
            tenant_id: t.tenant_id,
            name: t.name,
            member_ids: members.into_iter().map(|m| m.user_id).collect(),
            lead_ids: leads.into_iter().map(|m| m.user_id).collect(),
        }))
    }

    async fn login(&self, req: Request<pb::LoginRequest>) -> Reply<pb::LoginResponse> {
        let claimed = req.get_ref().context.as_ref().map(|c| c.source_address.clone()).unwrap_or_default();
        let source_address = self.source_address(&req, claimed);
        let r = req.into_inner();
        let c = r.context.unwrap_or_default();
        let ctx = ClientContext { source_address, device_id: c.device_id, user_agent: c.user_agent, region: c.region };
        let creds = Credentials { tenant: r.tenant_id, login: r.login, password: r.password, totp_code: r.totp_code };
        Ok(Response::new(login_pb(self.identity.login(creds, ctx).await?)))
    }

    async fn refresh(&self, req: Request<pb::RefreshRequest>) -> Reply<pb::LoginResponse> {
        Ok(Response::new(login_pb(self.identity.refresh(&req.get_ref().refresh_token).await?)))
    }

    async fn logout(&self, req: Request<pb::LogoutRequest>) -> Reply<pb::LogoutResponse> {
        self.identity.logout(&req.get_ref().refresh_token).await?;
        Ok(Response::new(pb::LogoutResponse {}))
    }

    async fn enroll_totp(&self, req: Request<pb::EnrollTotpRequest>) -> Reply<pb::EnrollTotpResponse> {
        let claims = match self.caller(&req).await? {
            Caller::User(c) => Some(c),
            _ => None,
        };
        let r = req.get_ref();
        let user =
            self.identity.totp_subject(claims.as_ref(), creds(&r.tenant_id, &r.login, &r.password).as_ref()).await?;
        Ok(Response::new(pb::EnrollTotpResponse { provisioning_uri: self.identity.enroll_totp(&user).await? }))
    }

    async fn confirm_totp(&self, req: Request<pb::ConfirmTotpRequest>) -> Reply<pb::ConfirmTotpResponse> {
        let claims = match self.caller(&req).await? {
            Caller::User(c) => Some(c),
            _ => None,
        };
        let r = req.get_ref();
        let user =
            self.identity.totp_subject(claims.as_ref(), creds(&r.tenant_id, &r.login, &r.password).as_ref()).await?;
        self.identity.confirm_totp(&user, &r.code).await?;
        Ok(Response::new(pb::ConfirmTotpResponse {}))
    }

    async fn get_verification_keys(
        &self,
        _req: Request<pb::GetVerificationKeysRequest>,
    ) -> Reply<pb::GetVerificationKeysResponse> {
        let keys = self.identity.signers.published(self.identity.clock.now()).await;
        Ok(Response::new(pb::GetVerificationKeysResponse {
            keys: keys
                .into_iter()
                .map(|(k, not_after)| pb::VerificationKey {
                    kid: k.kid,
                    algorithm: "EdDSA".into(),
                    public_key: k.public_key,
                    not_after: not_after.map(ts),
                })
                .collect(),
        }))
    }

    async fn revoke_signing_key(
        &self,
        req: Request<pb::RevokeSigningKeyRequest>,
    ) -> Reply<pb::RevokeSigningKeyResponse> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        self.identity.revoke_signing_key(&caller, &r.kid, &r.reason).await?;
        Ok(Response::new(pb::RevokeSigningKeyResponse {}))
    }

    async fn authorize(&self, req: Request<pb::AuthorizeRequest>) -> Reply<pb::AuthorizeResponse> {
        // A verified access token speaks for itself; a bare principal is
        // judged only for a user of its own tenant (or the platform), so no
        // caller learns anything of another tenant's roles.
        if let Some(pb::authorize_request::Subject::Principal(p)) = &req.get_ref().subject {
            match self.caller(&req).await? {
                Caller::User(c) if c.tenant == p.tenant_id => {}
                Caller::Platform(_) => {}
                _ => {
                    return Err(Error::PermissionDenied(
                        "a principal is judged only for a user of its own tenant: send the access token".into(),
                    )
                    .into());
                }
            }
        }
        let r = req.into_inner();
        let subject = match r.subject {
            Some(pb::authorize_request::Subject::AccessToken(t)) => {
                let c = self.identity.verify(&t).await?;
                Subject::from_claims(&c.tenant, &c.sub, &c.teams, &c.perms)
            }
            Some(pb::authorize_request::Subject::Principal(p)) => {
                let perms = self.identity.permissions_of(&p.tenant_id, &p.roles).await?;
                Subject::from_claims(&p.tenant_id, &p.user_id, &p.team_ids, &perms)
            }
            None => return Err(Error::invalid("subject", "give an access token or a principal").into()),
        };
        let res = r.resource.unwrap_or_default();
        let resource = Resource {
            tenant: res.tenant_id,
            owner: (!res.owner_id.is_empty()).then_some(res.owner_id),
            team: (!res.team_id.is_empty()).then_some(res.team_id),
        };
        let d = decide(&subject, &r.action, &resource);
        Ok(Response::new(pb::AuthorizeResponse { allowed: d.allowed, rule: d.rule }))
    }

    async fn list_login_events(&self, req: Request<pb::ListLoginEventsRequest>) -> Reply<pb::ListLoginEventsResponse> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let (size, before) = page_size(r.page.as_ref());
        let range = r.range.unwrap_or_default();
        let range = (from_ts("range.start", range.start.as_ref())?, from_ts("range.end", range.end.as_ref())?);
        let user = (!r.user_id.is_empty()).then_some(r.user_id.as_str());
        let rows = self.identity.login_events(&caller, &r.tenant_id, user, range, before.as_deref(), size).await?;
        let next = if rows.len() as u64 == size {
            rows.last().map(|e| e.id.clone()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListLoginEventsResponse {
            events: rows.into_iter().map(event_pb).collect(),
            page: Some(PageResponse { next_page_token: next }),
        }))
    }
}

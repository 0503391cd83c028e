//! The gRPC face of identity: resolves the caller, validates and converts
//! proto to domain and back, and calls the service. Proto types stop here.

use std::sync::Arc;

use guardline_authz::{Resource, Subject, decide};
use guardline_proto::common::v1::{self as common, PageResponse};
use guardline_proto::identity::v1 as pb;
use guardline_proto::identity::v1::identity_service_server::{IdentityService, IdentityServiceServer};
use guardline_runtime::args::MeshArgs;
use guardline_runtime::authz::AllowList;
use guardline_runtime::peer::{PeerInfo, SpiffeId};
use tonic::{Request, Response, Status};

use crate::error::Error;
use crate::service::{Caller, ClientContext, Credentials, Identity, NewUser, TenantSettings, UserChanges};

mod convert;

use convert::*;

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
            .ok_or_else(|| Status::from(Error::Unauthenticated("no service identity and no bearer token".into())))?;
        Ok(if self.platform_admins.contains(&peer) {
            Caller::Platform(peer.to_string())
        } else {
            Caller::Service(peer.to_string())
        })
    }

    /// The user a TOTP call is about: the bearer token's user, or the one the
    /// credentials `(tenant, login, password)` name, judged at the source
    /// address a login from there would be.
    async fn totp_user<T>(
        &self,
        req: &Request<T>,
        (tenant, login, password): (&str, &str, &str),
        context: Option<&common::RequestContext>,
    ) -> Result<crate::store::user::Model, Status> {
        let claims = match self.caller(req).await? {
            Caller::User(c) => Some(c),
            _ => None,
        };
        let c = context.cloned().unwrap_or_default();
        let source_address = self.source_address(req, c.source_address);
        let ctx = ClientContext { source_address, device_id: c.device_id, user_agent: c.user_agent, region: c.region };
        Ok(self.identity.totp_subject(claims.as_ref(), creds(tenant, login, password).as_ref(), &ctx).await?)
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
    "ListTenants",
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
    "ResetTotp",
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

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl IdentityService for Api {
    #[tracing::instrument(skip_all, fields(rpc = "create_tenant"))]
    async fn create_tenant(&self, req: Request<pb::CreateTenantRequest>) -> Reply<pb::Tenant> {
        let caller = self.caller(&req).await?;
        // Authorization first, everywhere: a caller who may not act learns
        // nothing of the request's rules.
        self.identity.require_platform(&caller)?;
        let r = req.into_inner();
        let settings = TenantSettings {
            time_zone: (!r.time_zone.is_empty()).then_some(r.time_zone),
            working_hours: Some(hours_from(&r.working_hours)),
            risk_policy: r.login_risk_policy.as_ref().map(policy_from).transpose()?,
        };
        Ok(Response::new(tenant_pb(self.identity.create_tenant(&caller, &r.name, settings).await?)))
    }

    #[tracing::instrument(skip_all, fields(rpc = "get_tenant", tenant = %req.get_ref().tenant_id))]
    async fn get_tenant(&self, req: Request<pb::GetTenantRequest>) -> Reply<pb::Tenant> {
        let caller = self.caller(&req).await?;
        Ok(Response::new(tenant_pb(self.identity.get_tenant(&caller, &req.get_ref().tenant_id).await?)))
    }

    #[tracing::instrument(skip_all, fields(rpc = "list_tenants"))]
    async fn list_tenants(&self, req: Request<pb::ListTenantsRequest>) -> Reply<pb::ListTenantsResponse> {
        let caller = self.caller(&req).await?;
        let (size, after) = page_size(req.get_ref().page.as_ref());
        let rows = self.identity.list_tenants(&caller, after.as_deref(), size).await?;
        let next = if rows.len() as u64 == size { rows.last().map(|t| t.id.clone()) } else { None };
        let tenants = rows.into_iter().map(tenant_pb).collect();
        Ok(Response::new(pb::ListTenantsResponse {
            tenants,
            page: Some(PageResponse { next_page_token: next.unwrap_or_default() }),
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "update_tenant_settings", tenant = %req.get_ref().tenant_id))]
    async fn update_tenant_settings(&self, req: Request<pb::UpdateTenantSettingsRequest>) -> Reply<pb::Tenant> {
        let caller = self.caller(&req).await?;
        self.identity.require(&caller, &req.get_ref().tenant_id, "user.manage")?;
        let r = req.into_inner();
        let settings = TenantSettings {
            time_zone: r.time_zone,
            working_hours: (!r.working_hours.is_empty()).then(|| hours_from(&r.working_hours)),
            risk_policy: r.login_risk_policy.as_ref().map(policy_from).transpose()?,
        };
        Ok(Response::new(tenant_pb(self.identity.update_tenant(&caller, &r.tenant_id, settings).await?)))
    }

    #[tracing::instrument(skip_all, fields(rpc = "create_user", tenant = %req.get_ref().tenant_id))]
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

    #[tracing::instrument(skip_all, fields(rpc = "update_user", tenant = %req.get_ref().tenant_id))]
    async fn update_user(&self, req: Request<pb::UpdateUserRequest>) -> Reply<pb::User> {
        let caller = self.caller(&req).await?;
        self.identity.require(&caller, &req.get_ref().tenant_id, "user.manage")?;
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

    #[tracing::instrument(skip_all, fields(rpc = "disable_user", tenant = %req.get_ref().tenant_id))]
    async fn disable_user(&self, req: Request<pb::DisableUserRequest>) -> Reply<pb::User> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let changes = UserChanges { active: Some(false), ..Default::default() };
        let u = self.identity.update_user(&caller, &r.tenant_id, &r.user_id, changes).await?;
        Ok(Response::new(user_pb(&self.identity, u).await?))
    }

    #[tracing::instrument(skip_all, fields(rpc = "list_users", tenant = %req.get_ref().tenant_id))]
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

    #[tracing::instrument(skip_all, fields(rpc = "assign_roles", tenant = %req.get_ref().tenant_id))]
    async fn assign_roles(&self, req: Request<pb::AssignRolesRequest>) -> Reply<pb::User> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let u = self.identity.assign_roles(&caller, &r.tenant_id, &r.user_id, r.roles).await?;
        Ok(Response::new(user_pb(&self.identity, u).await?))
    }

    #[tracing::instrument(skip_all, fields(rpc = "create_role", tenant = %req.get_ref().tenant_id))]
    async fn create_role(&self, req: Request<pb::CreateRoleRequest>) -> Reply<pb::Role> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        Ok(Response::new(role_pb(self.identity.create_role(&caller, &r.tenant_id, &r.name, &r.permissions).await?)))
    }

    #[tracing::instrument(skip_all, fields(rpc = "list_roles", tenant = %req.get_ref().tenant_id))]
    async fn list_roles(&self, req: Request<pb::ListRolesRequest>) -> Reply<pb::ListRolesResponse> {
        let caller = self.caller(&req).await?;
        let roles = self.identity.list_roles(&caller, &req.get_ref().tenant_id).await?;
        Ok(Response::new(pb::ListRolesResponse { roles: roles.into_iter().map(role_pb).collect() }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "create_team", tenant = %req.get_ref().tenant_id))]
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

    #[tracing::instrument(skip_all, fields(rpc = "set_team_members", tenant = %req.get_ref().tenant_id))]
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

    #[tracing::instrument(skip_all, fields(rpc = "login", tenant = %req.get_ref().tenant_id))]
    async fn login(&self, req: Request<pb::LoginRequest>) -> Reply<pb::LoginResponse> {
        let claimed = req.get_ref().context.as_ref().map(|c| c.source_address.clone()).unwrap_or_default();
        let source_address = self.source_address(&req, claimed);
        let r = req.into_inner();
        let c = r.context.unwrap_or_default();
        let ctx = ClientContext { source_address, device_id: c.device_id, user_agent: c.user_agent, region: c.region };
        let creds = Credentials { tenant: r.tenant_id, login: r.login, password: r.password, totp_code: r.totp_code };
        Ok(Response::new(login_pb(self.identity.login(creds, ctx).await?)))
    }

    #[tracing::instrument(skip_all, fields(rpc = "refresh"))]
    async fn refresh(&self, req: Request<pb::RefreshRequest>) -> Reply<pb::LoginResponse> {
        Ok(Response::new(login_pb(self.identity.refresh(&req.get_ref().refresh_token).await?)))
    }

    #[tracing::instrument(skip_all, fields(rpc = "logout"))]
    async fn logout(&self, req: Request<pb::LogoutRequest>) -> Reply<pb::LogoutResponse> {
        self.identity.logout(&req.get_ref().refresh_token).await?;
        Ok(Response::new(pb::LogoutResponse {}))
    }

    #[tracing::instrument(skip_all, fields(rpc = "enroll_totp", tenant = %req.get_ref().tenant_id))]
    async fn enroll_totp(&self, req: Request<pb::EnrollTotpRequest>) -> Reply<pb::EnrollTotpResponse> {
        let r = req.get_ref();
        let user = self.totp_user(&req, (&r.tenant_id, &r.login, &r.password), r.context.as_ref()).await?;
        let provisioning_uri = self.identity.enroll_totp(&user, &r.current_code).await?;
        Ok(Response::new(pb::EnrollTotpResponse { provisioning_uri }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "confirm_totp", tenant = %req.get_ref().tenant_id))]
    async fn confirm_totp(&self, req: Request<pb::ConfirmTotpRequest>) -> Reply<pb::ConfirmTotpResponse> {
        let r = req.get_ref();
        let user = self.totp_user(&req, (&r.tenant_id, &r.login, &r.password), r.context.as_ref()).await?;
        self.identity.confirm_totp(&user, &r.code).await?;
        Ok(Response::new(pb::ConfirmTotpResponse {}))
    }

    #[tracing::instrument(skip_all, fields(rpc = "reset_totp", tenant = %req.get_ref().tenant_id))]
    async fn reset_totp(&self, req: Request<pb::ResetTotpRequest>) -> Reply<pb::ResetTotpResponse> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        self.identity.reset_totp(&caller, &r.tenant_id, &r.user_id, &r.reason).await?;
        Ok(Response::new(pb::ResetTotpResponse {}))
    }

    #[tracing::instrument(skip_all, fields(rpc = "get_verification_keys"))]
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

    #[tracing::instrument(skip_all, fields(rpc = "revoke_signing_key"))]
    async fn revoke_signing_key(
        &self,
        req: Request<pb::RevokeSigningKeyRequest>,
    ) -> Reply<pb::RevokeSigningKeyResponse> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        self.identity.revoke_signing_key(&caller, &r.kid, &r.reason).await?;
        Ok(Response::new(pb::RevokeSigningKeyResponse {}))
    }

    #[tracing::instrument(skip_all, fields(rpc = "authorize"))]
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

    #[tracing::instrument(skip_all, fields(rpc = "list_login_events", tenant = %req.get_ref().tenant_id))]
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

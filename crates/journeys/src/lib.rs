//! The product's user journeys as client code over the public gRPC API,
//! shared by `guardline demo` (which narrates them) and the end-to-end suite
//! (which asserts on them), so that both walk the same steps.

pub mod time;

use anyhow::Result;
use guardline_proto::identity::v1 as idpb;
use guardline_proto::identity::v1::identity_service_client::IdentityServiceClient;
use guardline_runtime::GrpcChannel;
use tonic::Request;

/// The password of every user the journeys create.
pub const PASSWORD: &str = "a long enough passphrase";

/// A running mesh, as the journeys reach it.
pub trait Mesh {
    /// A channel to `service` as the mesh identity `identity`.
    fn channel(&self, service: &str, identity: &str) -> Result<GrpcChannel>;
    /// The identity that may create tenants (a platform admin).
    fn platform_admin(&self) -> &str;
    /// The identity a gateway or client application calls with.
    fn gateway(&self) -> &str;
}

/// `msg` with a bearer token.
pub fn bearer<T>(token: &str, msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    if let Ok(v) = format!("Bearer {token}").parse() {
        r.metadata_mut().insert("authorization", v);
    }
    r
}

/// A tenant as journey 1 sets it up.
#[derive(Debug)]
pub struct Org {
    /// Tenant id.
    pub tenant: String,
    /// Tokens.
    pub admin: String,
    /// Team lead of North.
    pub team_lead: String,
    /// Agent of North.
    pub agent1: String,
    /// Agent of South.
    pub agent2: String,
    /// Auditor.
    pub auditor: String,
    /// User ids of the agents.
    pub agent1_id: String,
    /// User id of agent 2.
    pub agent2_id: String,
    /// North (agent 1, the team lead) and South (agent 2).
    pub teams: Vec<String>,
    /// What identity answered when the admin first tried to log in without
    /// a second factor.
    pub admin_without_totp: tonic::Status,
}

/// Logs `login` in; `totp` may be empty.
pub async fn login(m: &impl Mesh, tenant: &str, login: &str, totp: &str) -> Result<String, tonic::Status> {
    let req = idpb::LoginRequest {
        tenant_id: tenant.into(),
        login: login.into(),
        password: PASSWORD.into(),
        totp_code: totp.into(),
        ..Default::default()
    };
    let ch = m.channel("identity", m.gateway()).map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    IdentityServiceClient::new(ch).login(req).await.map(|r| r.into_inner().access_token)
}

/// The authenticator app: the code for `at` from the provisioning URI
/// identity gave at enrolment.
fn totp(uri: &str, at: u64) -> Result<String> {
    let app = totp_rs::Totp::from_url(uri).map_err(|e| anyhow::anyhow!("otpauth URI: {e}"))?;
    Ok(app.generate(at).to_string())
}

/// The admin enrolls TOTP through the gateway, confirms it, and logs in
/// with the next code; returns the admin's token.
async fn enroll_admin(m: &impl Mesh, tenant: &str) -> Result<String> {
    let mut gateway = IdentityServiceClient::new(m.channel("identity", m.gateway())?);
    let enroll = idpb::EnrollTotpRequest { tenant_id: tenant.into(), login: "admin".into(), password: PASSWORD.into() };
    let uri = gateway.enroll_totp(enroll).await?.into_inner().provisioning_uri;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let confirm = idpb::ConfirmTotpRequest {
        tenant_id: tenant.into(),
        login: "admin".into(),
        password: PASSWORD.into(),
        code: totp(&uri, now)?,
    };
    gateway.confirm_totp(confirm).await?;
    // The next time step: the code just used for the confirmation is spent.
    Ok(login(m, tenant, "admin", &totp(&uri, now + 30)?).await?)
}

/// Journey 1: a tenant named `name`, its admin (who must enroll TOTP before
/// logging in), teams North and South, a team lead of North, an agent in
/// each team and an auditor.
pub async fn onboard(m: &impl Mesh, name: &str) -> Result<Org> {
    let mut platform = IdentityServiceClient::new(m.channel("identity", m.platform_admin())?);
    let req = idpb::CreateTenantRequest { name: name.into(), time_zone: "Asia/Shanghai".into(), ..Default::default() };
    let tenant = platform.create_tenant(req).await?.into_inner().id;
    let user = |login: &str, role: &str, teams: Vec<String>| idpb::CreateUserRequest {
        tenant_id: tenant.clone(),
        login: login.into(),
        display_name: login.into(),
        password: PASSWORD.into(),
        roles: vec![role.into()],
        team_ids: teams,
    };
    platform.create_user(user("admin", "admin", vec![])).await?;
    let admin_without_totp = match login(m, &tenant, "admin", "").await {
        Err(s) => s,
        Ok(_) => anyhow::bail!("the admin logged in without a second factor"),
    };
    let admin = enroll_admin(m, &tenant).await?;
    let mut gateway = IdentityServiceClient::new(m.channel("identity", m.gateway())?);
    let mut teams = Vec::new();
    for n in ["North", "South"] {
        let req = idpb::CreateTeamRequest { tenant_id: tenant.clone(), name: n.into() };
        teams.push(gateway.create_team(bearer(&admin, req)).await?.into_inner().id);
    }
    let mut ids = Vec::new();
    for (l, role, team) in [
        ("lead1", "team_lead", Some(0)),
        ("agent1", "agent", Some(0)),
        ("agent2", "agent", Some(1)),
        ("auditor1", "auditor", None),
    ] {
        let t = team.map(|t: usize| vec![teams[t].clone()]).unwrap_or_default();
        ids.push(gateway.create_user(bearer(&admin, user(l, role, t))).await?.into_inner().id);
    }
    let members = idpb::SetTeamMembersRequest {
        tenant_id: tenant.clone(),
        team_id: teams[0].clone(),
        member_ids: vec![ids[1].clone()],
        lead_ids: vec![ids[0].clone()],
    };
    gateway.set_team_members(bearer(&admin, members)).await?;
    Ok(Org {
        team_lead: login(m, &tenant, "lead1", "").await?,
        agent1: login(m, &tenant, "agent1", "").await?,
        agent2: login(m, &tenant, "agent2", "").await?,
        auditor: login(m, &tenant, "auditor1", "").await?,
        agent1_id: ids[1].clone(),
        agent2_id: ids[2].clone(),
        teams,
        tenant,
        admin,
        admin_without_totp,
    })
}

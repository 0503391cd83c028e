//! Journey 1, onboarding: a tenant, its admin (who must enroll TOTP before
//! logging in), teams North and South, a team lead of North, an agent in
//! each team and an auditor.

use anyhow::Result;
use guardline_proto::identity::v1 as idpb;

use crate::{Mesh, bearer, identity, refused};

/// The password of every user the journeys create.
pub const PASSWORD: &str = "a long enough passphrase";

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
    /// What identity answered when agent 1 tried to create a user.
    pub agent_creates_user: tonic::Status,
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
    let mut gateway = identity(m, m.gateway()).map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    gateway.login(req).await.map(|r| r.into_inner().access_token)
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
    let mut gateway = identity(m, m.gateway())?;
    let enroll = idpb::EnrollTotpRequest {
        tenant_id: tenant.into(),
        login: "admin".into(),
        password: PASSWORD.into(),
        ..Default::default()
    };
    let uri = gateway.enroll_totp(enroll).await?.into_inner().provisioning_uri;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let confirm = idpb::ConfirmTotpRequest {
        tenant_id: tenant.into(),
        login: "admin".into(),
        password: PASSWORD.into(),
        code: totp(&uri, now)?,
        ..Default::default()
    };
    gateway.confirm_totp(confirm).await?;
    // The next time step: the code just used for the confirmation is spent.
    Ok(login(m, tenant, "admin", &totp(&uri, now + 30)?).await?)
}

fn user(tenant: &str, login: &str, role: &str, teams: Vec<String>) -> idpb::CreateUserRequest {
    idpb::CreateUserRequest {
        tenant_id: tenant.into(),
        login: login.into(),
        display_name: login.into(),
        password: PASSWORD.into(),
        roles: vec![role.into()],
        team_ids: teams,
    }
}

/// Journey 1 for a tenant named `name`.
pub async fn onboard(m: &impl Mesh, name: &str) -> Result<Org> {
    m.step("1. Onboarding: a tenant, its admin with TOTP, a team lead, two agents in two teams, an auditor");
    let mut platform = identity(m, m.platform_admin())?;
    let req = idpb::CreateTenantRequest { name: name.into(), time_zone: "Asia/Shanghai".into(), ..Default::default() };
    let tenant = platform.create_tenant(req).await?.into_inner().id;
    m.say(&format!("tenant `{name}` created: {tenant}"));
    platform.create_user(user(&tenant, "admin", "admin", vec![])).await?;
    let admin_without_totp = refused(login(m, &tenant, "admin", "").await, "an admin's login without TOTP")?;
    m.say(&format!("admin logs in without a second factor: refused: {}", admin_without_totp.message()));
    let admin = enroll_admin(m, &tenant).await?;
    m.say("admin enrolled TOTP (RFC 6238) and logged in with a code");
    let (teams, ids) = staff(m, &tenant, &admin).await?;
    m.say("teams North (lead1, agent1) and South (agent2), and auditor1, created by the admin");
    let agent1 = login(m, &tenant, "agent1", "").await?;
    let create = user(&tenant, "intruder", "admin", vec![]);
    let agent_creates_user =
        refused(identity(m, m.gateway())?.create_user(bearer(&agent1, create)).await, "an agent creating a user")?;
    m.say(&format!("agent1 tries to create a user: {:?}", agent_creates_user.code()));
    Ok(Org {
        team_lead: login(m, &tenant, "lead1", "").await?,
        agent1,
        agent2: login(m, &tenant, "agent2", "").await?,
        auditor: login(m, &tenant, "auditor1", "").await?,
        agent1_id: ids[1].clone(),
        agent2_id: ids[2].clone(),
        teams,
        tenant,
        admin,
        admin_without_totp,
        agent_creates_user,
    })
}

/// The admin creates the teams and their people; returns the team ids and
/// the user ids of lead1, agent1, agent2 and auditor1.
async fn staff(m: &impl Mesh, tenant: &str, admin: &str) -> Result<(Vec<String>, Vec<String>)> {
    let mut gateway = identity(m, m.gateway())?;
    let mut teams = Vec::new();
    for n in ["North", "South"] {
        let req = idpb::CreateTeamRequest { tenant_id: tenant.into(), name: n.into() };
        teams.push(gateway.create_team(bearer(admin, req)).await?.into_inner().id);
    }
    let mut ids = Vec::new();
    for (l, role, team) in [
        ("lead1", "team_lead", Some(0)),
        ("agent1", "agent", Some(0)),
        ("agent2", "agent", Some(1)),
        ("auditor1", "auditor", None),
    ] {
        let t = team.map(|t: usize| vec![teams[t].clone()]).unwrap_or_default();
        ids.push(gateway.create_user(bearer(admin, user(tenant, l, role, t))).await?.into_inner().id);
    }
    let members = idpb::SetTeamMembersRequest {
        tenant_id: tenant.into(),
        team_id: teams[0].clone(),
        member_ids: vec![ids[1].clone()],
        lead_ids: vec![ids[0].clone()],
    };
    gateway.set_team_members(bearer(admin, members)).await?;
    Ok((teams, ids))
}

//! The mesh a dialer-policy test or benchmark runs against: identity, audit,
//! lead-vault and dialer-policy in-process over real mTLS, on SQLite with the
//! local keyring or on PostgreSQL with OpenBao, and the tenant, leads and
//! helpers they share.
#![allow(dead_code, reason = "shared by the tests and the benchmarks, which use different parts")]

use std::time::Duration;

use chrono::{DateTime, Utc};
use guardline_proto::dialer::v1::dialer_policy_service_client::DialerPolicyServiceClient;
use guardline_proto::identity::v1 as idpb;
use guardline_proto::identity::v1::identity_service_client::IdentityServiceClient;
use guardline_proto::vault::v1 as vpb;
use guardline_proto::vault::v1::lead_vault_service_client::LeadVaultServiceClient;
use guardline_runtime::GrpcChannel;
use guardline_runtime::clock::ManualClock;
use guardline_testmesh::{Keys, TestMesh};
use tonic::Request;

/// A pack the tests load from `--packs-dir`: open around the clock, so that
/// tests deciding "now" do not depend on the hour they run at.
pub const ANYTIME: &str = r#"{"name":"anytime","description":"tests","windows":[{"days":["mon","tue","wed","thu","fri","sat","sun"],"start":"00:00","end":"24:00"}]}"#;

pub struct Mesh {
    t: TestMesh,
    pub dialer_uri: String,
    pub vault_uri: String,
    pub id_uri: String,
    pub audit_uri: String,
    /// The one clock of every service in the mesh: tests set and move it.
    pub clock: ManualClock,
    dialer_args: guardline_dialer_policy::Args,
}

pub async fn start(postgres: bool) -> Mesh {
    let clock = ManualClock::default();
    // Short, so that a revoked signing key is seen to stop quickly.
    let tweak = |m: &mut guardline_runtime::args::MeshArgs| m.key_refresh_interval = Duration::from_millis(300);
    let mut t = TestMesh::new(postgres, Keys::OpenBao, tweak).await.with_clock(clock.clone());
    // Tests move the clock by months: no rotation in between (key rotation
    // has tests of its own in identity).
    let identity =
        guardline_identity::Args { signing_key_rotation: Duration::from_secs(10 * 365 * 86_400), ..t.identity_args() };
    let packs = t.dir().join("packs");
    std::fs::create_dir_all(&packs).expect("packs dir");
    std::fs::write(packs.join("anytime.json"), ANYTIME).expect("pack");
    let dialer = guardline_dialer_policy::Args { packs_dir: Some(packs), ..t.dialer_args() };
    t.start_identity(identity).await;
    t.start_audit(t.audit_args()).await;
    t.start_vault(t.vault_args()).await;
    t.start_dialer(dialer.clone()).await;
    t.wait_serving("gateway").await;
    Mesh {
        dialer_uri: t.endpoint("dialer-policy"),
        vault_uri: t.endpoint("lead-vault"),
        id_uri: t.endpoint("identity"),
        audit_uri: t.endpoint("audit"),
        clock,
        dialer_args: dialer,
        t,
    }
}

impl Mesh {
    /// A second dialer replica on the same database (a registry directory
    /// of its own); a client of it.
    pub async fn second_dialer(&mut self) -> DialerPolicyServiceClient<GrpcChannel> {
        let registry_dir = self.t.dir().join("registry-2");
        let args = guardline_dialer_policy::Args { registry_dir, ..self.dialer_args.clone() };
        let uri = self.t.start_replica(|l, s| guardline_dialer_policy::run(args, l, s)).await;
        let mut c = DialerPolicyServiceClient::new(self.channel(&uri, "gateway"));
        for _ in 0..100 {
            let r = c.get_registry_status(guardline_proto::dialer::v1::GetRegistryStatusRequest {}).await;
            if !matches!(&r, Err(s) if s.code() == tonic::Code::Unavailable) {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the second dialer did not start");
    }

    pub fn channel(&self, uri: &str, name: &str) -> GrpcChannel {
        self.t.connect(uri, name)
    }
    pub fn dialer(&self) -> DialerPolicyServiceClient<GrpcChannel> {
        DialerPolicyServiceClient::new(self.channel(&self.dialer_uri, "gateway"))
    }
    pub fn dialer_as(&self, service: &str) -> DialerPolicyServiceClient<GrpcChannel> {
        DialerPolicyServiceClient::new(self.channel(&self.dialer_uri, service))
    }
    pub fn vault(&self) -> LeadVaultServiceClient<GrpcChannel> {
        LeadVaultServiceClient::new(self.channel(&self.vault_uri, "gateway"))
    }
    pub fn identity(&self) -> IdentityServiceClient<GrpcChannel> {
        IdentityServiceClient::new(self.channel(&self.id_uri, "platform-admin"))
    }
}

/// A tenant: tokens of agent1 (team A), agent2 (team B), a team lead of A, a
/// compliance officer, and their user ids.
pub struct Tenant {
    pub id: String,
    pub tokens: Vec<String>,
    pub users: Vec<String>,
}

pub const AGENT1: usize = 0;
pub const AGENT2: usize = 1;
pub const COMPLIANCE: usize = 3;

const USERS: [(&str, &str, usize); 4] =
    [("agent1", "agent", 0), ("agent2", "agent", 1), ("lead1", "team_lead", 0), ("comp1", "compliance_officer", 0)];
const PASSWORD: &str = "a long enough passphrase";

pub async fn tenant(m: &Mesh) -> Tenant {
    let mut p = m.identity();
    let id = p
        .create_tenant(idpb::CreateTenantRequest { name: "D".into(), ..Default::default() })
        .await
        .expect("tenant")
        .into_inner()
        .id;
    let mut teams = Vec::new();
    for n in ["A", "B"] {
        let req = idpb::CreateTeamRequest { tenant_id: id.clone(), name: n.into() };
        teams.push(p.create_team(req).await.expect("team").into_inner().id);
    }
    let mut users = Vec::new();
    for (login, role, team) in USERS {
        let user = p
            .create_user(idpb::CreateUserRequest {
                tenant_id: id.clone(),
                login: login.into(),
                display_name: login.into(),
                password: PASSWORD.into(),
                roles: vec![role.into()],
                team_ids: vec![teams[team].clone()],
            })
            .await
            .expect("user");
        users.push(user.into_inner().id);
    }
    let mut t = Tenant { id, tokens: Vec::new(), users };
    t.login(m).await;
    t
}

impl Tenant {
    /// Logs every user in again, at the mesh's now (after the clock moved
    /// past their tokens' lifetime).
    pub async fn login(&mut self, m: &Mesh) {
        let mut p = m.identity();
        self.tokens.clear();
        for (login, ..) in USERS {
            let login = idpb::LoginRequest {
                tenant_id: self.id.clone(),
                login: login.into(),
                password: PASSWORD.into(),
                ..Default::default()
            };
            self.tokens.push(p.login(login).await.expect("login").into_inner().access_token);
        }
    }
}

/// Sets the mesh's clock to `at` and logs the tenant's users in again.
pub async fn at(m: &Mesh, t: &mut Tenant, at: DateTime<Utc>) {
    m.clock.set(at);
    t.login(m).await;
}

pub fn with<T>(token: &str, mut r: Request<T>) -> Request<T> {
    r.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("ascii"));
    r
}

pub fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: 0 }
}

pub fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("rfc3339").with_timezone(&Utc)
}

/// Friday 2026-11-27 10:00 in Beijing: inside the `cn` pack's hours. Tests
/// set the mesh's clock to it; nothing reads it against the wall clock.
pub fn cn_open() -> DateTime<Utc> {
    utc("2026-11-27T02:00:00Z")
}

/// A lead of agent1 (in China unless the number says otherwise), with
/// marketing consent granted 30 days before the mesh's now unless told otherwise.
pub async fn lead(m: &Mesh, t: &Tenant, phone: &str, consent: bool) -> String {
    zoned_lead(m, t, phone, "", consent).await
}

/// As [`lead`], in the IANA zone `zone` (derived from the number when empty).
pub async fn zoned_lead(m: &Mesh, t: &Tenant, phone: &str, zone: &str, consent: bool) -> String {
    let input = vpb::LeadInput {
        phones: vec![phone.into()],
        name: "张三".into(),
        time_zone: zone.into(),
        ..Default::default()
    };
    let req = vpb::CreateLeadRequest { tenant_id: t.id.clone(), lead: Some(input) };
    let id = m.vault().create_lead(with(&t.tokens[AGENT1], Request::new(req))).await.expect("lead").into_inner().id;
    if consent {
        let c = vpb::RecordConsentRequest {
            tenant_id: t.id.clone(),
            lead_id: id.clone(),
            purpose: "marketing".into(),
            channel: "web_form".into(),
            evidence: Some(vpb::ConsentEvidence { form_sha256: vec![7; 32], ..Default::default() }),
            granted_at: Some(ts(m.clock.now() - chrono::Duration::days(30))),
            expires_at: None,
        };
        m.vault().record_consent(with(&t.tokens[AGENT1], Request::new(c))).await.expect("consent");
    }
    id
}

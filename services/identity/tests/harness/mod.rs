//! Identity started in-process on 127.0.0.1:0 over real mTLS, on SQLite or
//! PostgreSQL, with the local keyring.

use std::time::Duration;

use guardline_proto::identity::v1 as pb;
use guardline_proto::identity::v1::identity_service_client::IdentityServiceClient;
use guardline_runtime::GrpcChannel;
use guardline_testmesh::{Keys, TestMesh};
use tonic::Request;

pub type Client = IdentityServiceClient<GrpcChannel>;

pub struct Harness {
    t: TestMesh,
    pub database_url: String,
}

/// Identity alone (audit is down: its events wait in the outbox).
pub async fn start(postgres: bool) -> Harness {
    start_with(postgres, |_| {}).await
}

/// Identity alone, with its arguments changed by `change`.
pub async fn start_with(postgres: bool, change: impl FnOnce(&mut guardline_identity::Args)) -> Harness {
    let mut t = TestMesh::new(postgres, Keys::Local, |_| {}).await;
    let mut args = t.identity_args();
    change(&mut args);
    t.start_identity(args).await;
    t.wait_serving("platform-admin").await;
    Harness { database_url: t.database("identity").to_owned(), t }
}

impl Harness {
    /// A client presenting the certificate of service account `name`.
    /// A connection to the identity database, for what a test checks there.
    pub async fn db(&self) -> sea_orm::DatabaseConnection {
        guardline_runtime::storage::connect(&guardline_runtime::args::DatabaseArgs {
            database_url: self.database_url.clone(),
            database_max_connections: 1,
            database_schema: None,
        })
        .await
        .expect("db")
    }

    pub fn client(&self, name: &str) -> Client {
        IdentityServiceClient::new(self.channel(name))
    }

    /// A channel to identity presenting the certificate of `name`.
    pub fn channel(&self, name: &str) -> GrpcChannel {
        self.t.channel("identity", name)
    }

    /// A second identity replica on the same database; a client of it as `name`.
    pub async fn second_replica(&mut self, name: &str) -> Client {
        let args = self.t.identity_args();
        let uri = self.t.start_replica(|l, s| guardline_identity::run(args, l, s)).await;
        let mut c = IdentityServiceClient::new(self.t.connect(&uri, name));
        for _ in 0..100 {
            if c.get_verification_keys(pb::GetVerificationKeysRequest {}).await.is_ok() {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the second identity replica did not start");
    }

    /// Waits until the server answers.
    pub async fn ready(&self) -> Client {
        let mut c = self.client("platform-admin");
        for _ in 0..100 {
            if c.get_verification_keys(pb::GetVerificationKeysRequest {}).await.is_ok() {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("identity did not start");
    }
}

/// `msg` with a bearer token.
pub fn bearer<T>(msg: T, token: &str) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("ascii"));
    r
}

/// The base32 secret of an `otpauth://` URI, decoded.
pub fn totp_secret(uri: &str) -> Vec<u8> {
    let encoded = uri.split("secret=").nth(1).expect("secret").split('&').next().expect("value");
    totp_rs::Secret::try_from_base32(encoded).expect("base32").as_ref().to_vec()
}

/// A code for the next time step (the current one may have been spent).
pub fn next_code(secret: &[u8]) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    guardline_identity::domain::credentials::totp_code(secret, now + 30).expect("code")
}

pub fn ctx(ip: &str, device: &str, region: &str) -> Option<guardline_proto::common::v1::RequestContext> {
    Some(guardline_proto::common::v1::RequestContext {
        source_address: ip.into(),
        device_id: device.into(),
        region: region.into(),
        user_agent: "test".into(),
        trace_id: String::new(),
    })
}

pub const PASSWORD: &str = "a long enough passphrase";

/// A tenant with an admin (TOTP enrolled) and the admin's access token.
pub struct Tenant {
    pub id: String,
    pub admin_token: String,
    /// The TOTP code the admin's login spent (a replay must name this one,
    /// not the code of whatever 30 s step the test has reached since).
    pub spent_code: String,
}

pub async fn tenant(platform: &mut Client, name: &str, policy: Option<pb::LoginRiskPolicy>) -> Tenant {
    let t = platform
        .create_tenant(pb::CreateTenantRequest {
            name: name.into(),
            time_zone: "Asia/Shanghai".into(),
            working_hours: vec![],
            login_risk_policy: policy,
        })
        .await
        .expect("tenant")
        .into_inner();
    platform
        .create_user(pb::CreateUserRequest {
            tenant_id: t.id.clone(),
            login: "admin".into(),
            display_name: "Admin".into(),
            password: PASSWORD.into(),
            roles: vec!["admin".into()],
            team_ids: vec![],
        })
        .await
        .expect("admin");
    let uri = platform
        .enroll_totp(pb::EnrollTotpRequest {
            tenant_id: t.id.clone(),
            login: "admin".into(),
            password: PASSWORD.into(),
            ..Default::default()
        })
        .await
        .expect("enroll")
        .into_inner()
        .provisioning_uri;
    let secret = totp_secret(&uri);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let code = guardline_identity::domain::credentials::totp_code(&secret, now).expect("code");
    platform
        .confirm_totp(pb::ConfirmTotpRequest {
            code,
            tenant_id: t.id.clone(),
            login: "admin".into(),
            password: PASSWORD.into(),
            ..Default::default()
        })
        .await
        .expect("confirm");
    let spent_code = next_code(&secret);
    let login = platform
        .login(pb::LoginRequest {
            tenant_id: t.id.clone(),
            login: "admin".into(),
            password: PASSWORD.into(),
            totp_code: spent_code.clone(),
            context: ctx("203.0.113.7", "admin-laptop", "CN-31"),
        })
        .await
        .expect("admin login")
        .into_inner();
    Tenant { id: t.id, admin_token: login.access_token, spent_code }
}

pub async fn user(c: &mut Client, t: &Tenant, login: &str, roles: &[&str], teams: &[String]) -> String {
    c.create_user(bearer(
        pb::CreateUserRequest {
            tenant_id: t.id.clone(),
            login: login.into(),
            display_name: login.into(),
            password: PASSWORD.into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            team_ids: teams.to_vec(),
        },
        &t.admin_token,
    ))
    .await
    .expect("user")
    .into_inner()
    .id
}

pub async fn login(
    c: &mut Client,
    tenant: &str,
    login: &str,
    password: &str,
    ip: &str,
    device: &str,
    region: &str,
) -> Result<pb::LoginResponse, tonic::Status> {
    c.login(pb::LoginRequest {
        tenant_id: tenant.into(),
        login: login.into(),
        password: password.into(),
        totp_code: String::new(),
        context: ctx(ip, device, region),
    })
    .await
    .map(tonic::Response::into_inner)
}

//! Token verification with keys fetched from identity over real mTLS gRPC,
//! refreshed when a token names a key id not seen before.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use guardline_proto::identity::v1::identity_service_server::{IdentityService, IdentityServiceServer};
use guardline_proto::identity::v1::{
    self as pb, GetVerificationKeysRequest, GetVerificationKeysResponse, VerificationKey,
};
use guardline_runtime::args::ServerArgs;
use guardline_runtime::devca::DevCa;
use guardline_runtime::server::{GrpcServer, bind};
use guardline_runtime::tls::{TlsMaterial, install_crypto_provider};
use guardline_runtime::token::{Claims, IdentityKeys, TokenSigner, TokenVerifier};
use tokio_util::sync::CancellationToken;

/// Stands in for identity (its own issue builds the real one): publishes keys.
#[derive(Clone, Default)]
struct Published(Arc<Mutex<Vec<VerificationKey>>>);

#[tonic::async_trait]
impl IdentityService for Published {
    async fn get_verification_keys(
        &self,
        _: tonic::Request<GetVerificationKeysRequest>,
    ) -> Result<tonic::Response<GetVerificationKeysResponse>, tonic::Status> {
        Ok(tonic::Response::new(GetVerificationKeysResponse { keys: self.0.lock().expect("lock").clone() }))
    }

    // The rest of identity's API is not this double's.
    async fn revoke_signing_key(
        &self,
        _: tonic::Request<pb::RevokeSigningKeyRequest>,
    ) -> Reply<pb::RevokeSigningKeyResponse> {
        unused()
    }
    async fn create_tenant(&self, _: tonic::Request<pb::CreateTenantRequest>) -> Reply<pb::Tenant> {
        unused()
    }
    async fn get_tenant(&self, _: tonic::Request<pb::GetTenantRequest>) -> Reply<pb::Tenant> {
        unused()
    }
    async fn list_tenants(&self, _: tonic::Request<pb::ListTenantsRequest>) -> Reply<pb::ListTenantsResponse> {
        unused()
    }
    async fn update_tenant_settings(&self, _: tonic::Request<pb::UpdateTenantSettingsRequest>) -> Reply<pb::Tenant> {
        unused()
    }
    async fn create_user(&self, _: tonic::Request<pb::CreateUserRequest>) -> Reply<pb::User> {
        unused()
    }
    async fn update_user(&self, _: tonic::Request<pb::UpdateUserRequest>) -> Reply<pb::User> {
        unused()
    }
    async fn disable_user(&self, _: tonic::Request<pb::DisableUserRequest>) -> Reply<pb::User> {
        unused()
    }
    async fn list_users(&self, _: tonic::Request<pb::ListUsersRequest>) -> Reply<pb::ListUsersResponse> {
        unused()
    }
    async fn assign_roles(&self, _: tonic::Request<pb::AssignRolesRequest>) -> Reply<pb::User> {
        unused()
    }
    async fn create_role(&self, _: tonic::Request<pb::CreateRoleRequest>) -> Reply<pb::Role> {
        unused()
    }
    async fn list_roles(&self, _: tonic::Request<pb::ListRolesRequest>) -> Reply<pb::ListRolesResponse> {
        unused()
    }
    async fn create_team(&self, _: tonic::Request<pb::CreateTeamRequest>) -> Reply<pb::Team> {
        unused()
    }
    async fn set_team_members(&self, _: tonic::Request<pb::SetTeamMembersRequest>) -> Reply<pb::Team> {
        unused()
    }
    async fn login(&self, _: tonic::Request<pb::LoginRequest>) -> Reply<pb::LoginResponse> {
        unused()
    }
    async fn refresh(&self, _: tonic::Request<pb::RefreshRequest>) -> Reply<pb::LoginResponse> {
        unused()
    }
    async fn logout(&self, _: tonic::Request<pb::LogoutRequest>) -> Reply<pb::LogoutResponse> {
        unused()
    }
    async fn enroll_totp(&self, _: tonic::Request<pb::EnrollTotpRequest>) -> Reply<pb::EnrollTotpResponse> {
        unused()
    }
    async fn confirm_totp(&self, _: tonic::Request<pb::ConfirmTotpRequest>) -> Reply<pb::ConfirmTotpResponse> {
        unused()
    }
    async fn reset_totp(&self, _: tonic::Request<pb::ResetTotpRequest>) -> Reply<pb::ResetTotpResponse> {
        unused()
    }
    async fn authorize(&self, _: tonic::Request<pb::AuthorizeRequest>) -> Reply<pb::AuthorizeResponse> {
        unused()
    }
    async fn list_login_events(
        &self,
        _: tonic::Request<pb::ListLoginEventsRequest>,
    ) -> Reply<pb::ListLoginEventsResponse> {
        unused()
    }
}

type Reply<T> = Result<tonic::Response<T>, tonic::Status>;

fn unused<T>() -> Reply<T> {
    Err(tonic::Status::unimplemented("not served by the test double"))
}

fn publish(p: &Published, s: &TokenSigner) {
    let k = s.verification_key();
    p.0.lock().expect("lock").push(VerificationKey {
        kid: k.kid,
        algorithm: "EdDSA".into(),
        public_key: k.public_key,
        not_after: None,
    });
}

#[tokio::test]
async fn keys_come_from_identity_and_new_kids_trigger_a_refresh() {
    install_crypto_provider();
    let dir = tempfile::tempdir().expect("tmp");
    let ca = DevCa::open_or_create(dir.path(), "guardline.local", "test").expect("ca");
    let listener = bind("127.0.0.1:0".parse().expect("addr")).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let published = Published::default();
    let stop = CancellationToken::new();
    let server_tls = TlsMaterial::load(ca.issue("identity").expect("cert")).expect("tls");
    let s = stop.clone();
    let p = published.clone();
    tokio::spawn(async move {
        GrpcServer::new("identity")
            .add_service(IdentityServiceServer::new(p))
            .allow_list(
                guardline_runtime::authz::AllowList::new().mesh_service("guardline.identity.v1.IdentityService"),
            )
            .serve(listener, server_tls, &ServerArgs::on(addr), s)
            .await
    });

    let client_tls = TlsMaterial::load(ca.issue("audit").expect("cert")).expect("tls");
    let channel =
        guardline_runtime::connect(&format!("https://localhost:{}", addr.port()), client_tls).expect("channel");
    let verifier = TokenVerifier::new(IdentityKeys::new(channel)).with_min_refresh(Duration::from_millis(300));

    let first = TokenSigner::generate("k1").expect("key");
    publish(&published, &first);
    let claims = Claims::new("t1", "u1", vec!["agent".into()], vec![], Duration::from_secs(300));
    assert_eq!(verifier.verify(&first.sign(&claims).expect("sign")).await.expect("valid").sub, "u1");

    // Identity rotates its signing key: the new kid is unknown to the cache.
    let second = TokenSigner::generate("k2").expect("key");
    publish(&published, &second);
    let new_token = second.sign(&claims).expect("sign");
    assert!(verifier.verify(&new_token).await.is_err(), "refreshes are rate-limited");
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(verifier.verify(&new_token).await.is_ok(), "after the interval the new key is fetched");
    assert!(verifier.verify(&first.sign(&claims).expect("sign")).await.is_ok(), "old key still published");
    stop.cancel();
}

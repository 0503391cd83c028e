//! Token verification with keys fetched from identity over real mTLS gRPC,
//! refreshed when a token names a key id not seen before.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use guardline_proto::identity::v1::identity_service_server::{IdentityService, IdentityServiceServer};
use guardline_proto::identity::v1::{GetVerificationKeysRequest, GetVerificationKeysResponse, VerificationKey};
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

//! Unit tests of access tokens and the verifier's key set.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::*;

fn claims(lifetime_secs: u64) -> Claims {
    Claims::new("t1", "u1", vec!["agent".into()], vec!["team-a".into()], Duration::from_secs(lifetime_secs))
}

fn verifier(signers: &[&TokenSigner]) -> TokenVerifier {
    TokenVerifier::new(StaticKeys(signers.iter().map(|s| s.verification_key()).collect()))
}

fn unauthenticated(r: Result<Claims>) -> String {
    match r {
        Err(Error::Unauthenticated(m)) => m,
        other => panic!("expected unauthenticated, got {other:?}"),
    }
}

#[tokio::test]
async fn valid_token_round_trips() {
    let signer = TokenSigner::generate("k1").expect("key");
    let c = claims(600);
    let token = signer.sign(&c).expect("sign");
    assert_eq!(verifier(&[&signer]).verify(&token).await.expect("valid"), c);
}

#[tokio::test]
async fn expired_token_is_refused() {
    let signer = TokenSigner::generate("k1").expect("key");
    let mut c = claims(600);
    c.iat -= 1200;
    c.exp -= 1200;
    let token = signer.sign(&c).expect("sign");
    assert_eq!(unauthenticated(verifier(&[&signer]).verify(&token).await), "token expired");
}

#[tokio::test]
async fn token_signed_by_another_key_under_a_known_kid_is_refused() {
    let published = TokenSigner::generate("k1").expect("key");
    let forger = TokenSigner::generate("k1").expect("key");
    let token = forger.sign(&claims(600)).expect("sign");
    assert_eq!(unauthenticated(verifier(&[&published]).verify(&token).await), "token signature invalid");
}

#[tokio::test]
async fn unknown_kid_is_refused() {
    let published = TokenSigner::generate("k1").expect("key");
    let other = TokenSigner::generate("k9").expect("key");
    let token = other.sign(&claims(600)).expect("sign");
    assert_eq!(unauthenticated(verifier(&[&published]).verify(&token).await), "token signed by an unknown key");
}

#[tokio::test]
async fn tampered_claims_are_refused() {
    let signer = TokenSigner::generate("k1").expect("key");
    let token = signer.sign(&claims(600)).expect("sign");
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut c: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).expect("b64")).expect("json");
    c.tenant = "t2".into();
    c.roles = vec!["admin".into()];
    parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).expect("json"));
    let forged = parts.join(".");
    assert_eq!(unauthenticated(verifier(&[&signer]).verify(&forged).await), "token signature invalid");
}

#[tokio::test]
async fn lifetime_above_fifteen_minutes_is_refused() {
    let signer = TokenSigner::generate("k1").expect("key");
    let mut c = claims(600);
    c.exp = c.iat + 16 * 60;
    assert!(signer.sign(&c).is_err(), "the signer refuses long lifetimes");
    // A foreign signer that does not: forge the token by hand with the same key.
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("k1".into());
    let token = jsonwebtoken::encode(&header, &c, &signer.key).expect("encode");
    assert_eq!(unauthenticated(verifier(&[&signer]).verify(&token).await), "token lifetime above 15 minutes");
}

#[tokio::test]
async fn other_algorithms_and_garbage_are_refused() {
    let signer = TokenSigner::generate("k1").expect("key");
    let v = verifier(&[&signer]);
    let hs = jsonwebtoken::encode(
        &Header { kid: Some("k1".into()), ..Header::new(Algorithm::HS256) },
        &claims(600),
        &EncodingKey::from_secret(b"public key as hmac secret").expect("hmac key"),
    )
    .expect("encode");
    assert_eq!(unauthenticated(v.verify(&hs).await), "token algorithm must be EdDSA");
    assert_eq!(unauthenticated(v.verify("not.a.token").await), "malformed token");
}

#[tokio::test]
async fn tokens_of_a_rotated_out_key_stay_valid_while_published() {
    let old = TokenSigner::generate("k1").expect("key");
    let new = TokenSigner::generate("k2").expect("key");
    let v = verifier(&[&old, &new]);
    let old_token = old.sign(&claims(600)).expect("sign");
    let new_token = new.sign(&claims(600)).expect("sign");
    assert!(v.verify(&old_token).await.is_ok());
    assert!(v.verify(&new_token).await.is_ok());
}

#[tokio::test]
async fn bearer_metadata_is_required() {
    let signer = TokenSigner::generate("k1").expect("key");
    let v = verifier(&[&signer]);
    let req = tonic::Request::new(());
    assert_eq!(unauthenticated(v.authenticate(&req).await), "missing bearer token");
    let mut req = tonic::Request::new(());
    req.metadata_mut().insert("authorization", "Basic abc".parse().expect("ascii"));
    assert_eq!(unauthenticated(v.authenticate(&req).await), "authorization must be a Bearer token");
    let mut req = tonic::Request::new(());
    let token = signer.sign(&claims(60)).expect("sign");
    req.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("ascii"));
    assert_eq!(v.authenticate(&req).await.expect("valid").sub, "u1");
}

#[tokio::test]
async fn expiry_is_judged_by_the_services_clock() {
    let signer = TokenSigner::generate("k1").expect("key");
    let manual = crate::clock::ManualClock::default();
    let v = verifier(&[&signer]).with_clock(manual.clock());
    let token = signer.sign(&claims(600)).expect("sign");
    assert!(v.verify(&token).await.is_ok());
    manual.advance(chrono::Duration::minutes(11));
    assert_eq!(unauthenticated(v.verify(&token).await), "token expired");
    // Issued on a clock two days ahead: valid on that clock, not yet on the system's.
    let ahead = manual.clock().unix_seconds() + 2 * 86_400;
    manual.advance(chrono::Duration::days(2));
    let later = Claims::issued_at(ahead, "t1", "u1", vec![], vec![], Duration::from_secs(600));
    let token = signer.sign(&later).expect("sign");
    assert!(v.verify(&token).await.is_ok());
    assert_eq!(unauthenticated(verifier(&[&signer]).verify(&token).await), "token issued in the future");
}

/// Keys that a test changes between fetches.
#[derive(Clone, Default)]
struct Changing(std::sync::Arc<std::sync::Mutex<Vec<VerificationKey>>>);

impl KeySource for Changing {
    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<Vec<VerificationKey>>> + Send + '_>> {
        let keys = self.0.lock().map(|k| k.clone()).unwrap_or_default();
        Box::pin(async move { Ok(keys) })
    }
}

#[tokio::test]
async fn a_key_past_not_after_or_withdrawn_verifies_nothing() {
    let signer = TokenSigner::generate("k1").expect("key");
    let keys = Changing::default();
    let past = crate::clock::Clock::system().unix_seconds() - 1;
    keys.0.lock().expect("lock").push(VerificationKey { not_after: Some(past), ..signer.verification_key() });
    let v = TokenVerifier::new(keys.clone()).with_refresh_interval(Duration::from_millis(50));
    let token = signer.sign(&claims(600)).expect("sign");
    assert_eq!(unauthenticated(v.verify(&token).await), "token signed by a withdrawn key");
    // Published again without a limit: valid; then withdrawn from the set:
    // refused once the refresh interval has passed, though the kid was known.
    *keys.0.lock().expect("lock") = vec![signer.verification_key()];
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert!(v.verify(&token).await.is_ok());
    keys.0.lock().expect("lock").clear();
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(unauthenticated(v.verify(&token).await), "token signed by an unknown key");
}

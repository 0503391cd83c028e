//! End-user access tokens: Ed25519-signed JWTs with a `kid`, valid at most
//! 15 minutes, issued by the identity service and verified locally by every
//! service against public keys fetched from identity and cached.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, RwLock};

use crate::error::{Error, Result};

/// The longest an access token may live.
pub const MAX_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// The `iss` claim of every access token.
pub const ISSUER: &str = "guardline-identity";
/// Tolerated clock skew between services.
const LEEWAY_SECS: u64 = 30;
/// Unknown `kid`s trigger at most one key refresh per interval, so a flood of
/// forged tokens cannot turn into a flood of calls to identity.
const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(5);

/// The claims of an access token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer; always [`ISSUER`].
    pub iss: String,
    /// User id.
    pub sub: String,
    /// Tenant id.
    pub tenant: String,
    /// Role names held in the tenant.
    pub roles: Vec<String>,
    /// Team ids the user belongs to or leads.
    pub teams: Vec<String>,
    /// The union of the permissions of the roles (`lead.read:own`...), so that
    /// every service decides locally, without asking identity.
    #[serde(default)]
    pub perms: Vec<String>,
    /// Issued at (seconds since the epoch).
    pub iat: u64,
    /// Expires at (seconds since the epoch).
    pub exp: u64,
    /// Token id.
    pub jti: String,
}

impl Claims {
    /// Claims for `user` of `tenant`, issued now, valid for `lifetime` (capped at [`MAX_LIFETIME`]).
    pub fn new(tenant: &str, user: &str, roles: Vec<String>, teams: Vec<String>, lifetime: Duration) -> Self {
        Self::issued_at(unix_now(), tenant, user, roles, teams, lifetime)
    }

    /// Claims as [`Claims::new`], issued at `now` (seconds since the epoch).
    pub fn issued_at(
        now: u64,
        tenant: &str,
        user: &str,
        roles: Vec<String>,
        teams: Vec<String>,
        lifetime: Duration,
    ) -> Self {
        Self {
            iss: ISSUER.to_owned(),
            sub: user.to_owned(),
            tenant: tenant.to_owned(),
            roles,
            teams,
            perms: Vec::new(),
            iat: now,
            exp: now + lifetime.min(MAX_LIFETIME).as_secs(),
            jti: uuid::Uuid::new_v4().to_string(),
        }
    }
}

/// Adds the permissions the roles grant.
impl Claims {
    /// The claims with `perms` set.
    pub fn with_permissions(mut self, perms: Vec<String>) -> Self {
        self.perms = perms;
        self
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A public key that verifies tokens, as identity publishes it.
#[derive(Clone, Debug)]
pub struct VerificationKey {
    /// Key id.
    pub kid: String,
    /// Raw 32-byte Ed25519 public key.
    pub public_key: Vec<u8>,
    /// After this instant (seconds since the epoch) the key verifies
    /// nothing; `None` while it signs.
    pub not_after: Option<u64>,
}

/// Signs access tokens. Identity holds these; tests use them too.
pub struct TokenSigner {
    kid: String,
    key: EncodingKey,
    public_key: Vec<u8>,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl TokenSigner {
    /// A signer over a fresh Ed25519 key.
    pub fn generate(kid: &str) -> Result<Self> {
        use aws_lc_rs::signature::Ed25519KeyPair;
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new())
            .map_err(|_| Error::Internal("ed25519 key generation failed".into()))?;
        Self::from_pkcs8(kid, pkcs8.as_ref())
    }

    /// A signer over a PKCS#8 DER Ed25519 key.
    pub fn from_pkcs8(kid: &str, pkcs8: &[u8]) -> Result<Self> {
        use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|_| Error::Internal("ed25519 key".into()))?;
        Ok(Self {
            kid: kid.to_owned(),
            key: EncodingKey::from_ed_der(pkcs8),
            public_key: pair.public_key().as_ref().to_vec(),
        })
    }

    /// The key to publish for verifiers.
    pub fn verification_key(&self) -> VerificationKey {
        VerificationKey { kid: self.kid.clone(), public_key: self.public_key.clone(), not_after: None }
    }

    /// Signs `claims` (refusing a lifetime over [`MAX_LIFETIME`]).
    pub fn sign(&self, claims: &Claims) -> Result<String> {
        if claims.exp.saturating_sub(claims.iat) > MAX_LIFETIME.as_secs() {
            return Err(Error::Internal("token lifetime above 15 minutes".into()));
        }
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).map_err(|e| Error::Internal(format!("token signing: {e}")))
    }
}

/// Where verifiers get the current public keys from.
pub trait KeySource: Send + Sync + 'static {
    /// Fetches every key that may have signed an unexpired token.
    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<Vec<VerificationKey>>> + Send + '_>>;
}

/// A fixed set of keys (tests, and identity verifying its own tokens).
#[derive(Clone, Debug, Default)]
pub struct StaticKeys(pub Vec<VerificationKey>);

impl KeySource for StaticKeys {
    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<Vec<VerificationKey>>> + Send + '_>> {
        let keys = self.0.clone();
        Box::pin(async move { Ok(keys) })
    }
}

/// Fetches keys from the identity service's `GetVerificationKeys`.
#[derive(Clone, Debug)]
pub struct IdentityKeys {
    client: guardline_proto::identity::v1::identity_service_client::IdentityServiceClient<crate::GrpcChannel>,
}

impl IdentityKeys {
    /// Uses `channel` to reach identity.
    pub fn new(channel: crate::GrpcChannel) -> Self {
        Self { client: guardline_proto::identity::v1::identity_service_client::IdentityServiceClient::new(channel) }
    }
}

impl KeySource for IdentityKeys {
    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<Vec<VerificationKey>>> + Send + '_>> {
        let mut client = self.client.clone();
        Box::pin(async move {
            let keys = client
                .get_verification_keys(guardline_proto::identity::v1::GetVerificationKeysRequest {})
                .await
                .map_err(|s| Error::Unavailable(format!("identity verification keys: {}", s.code())))?
                .into_inner()
                .keys;
            Ok(keys
                .into_iter()
                .map(|k| VerificationKey {
                    kid: k.kid,
                    public_key: k.public_key,
                    not_after: k.not_after.map(|t| u64::try_from(t.seconds).unwrap_or(0)),
                })
                .collect())
        })
    }
}

/// How often the key set is fetched again even when every `kid` is known,
/// so that a withdrawn key stops verifying everywhere within this interval.
pub const KEY_REFRESH_INTERVAL: Duration = Duration::from_secs(60);

/// The cached keys and when they were fetched.
#[derive(Default)]
struct KeySet {
    by_kid: HashMap<String, (DecodingKey, Option<u64>)>,
    fetched: Option<Instant>,
}

impl KeySet {
    /// The key, if the set is younger than `max_age` and holds it.
    fn fresh(&self, kid: &str, max_age: Duration) -> Option<(DecodingKey, Option<u64>)> {
        self.fetched.filter(|t| t.elapsed() < max_age).and_then(|_| self.by_kid.get(kid).cloned())
    }
}

/// Verifies access tokens locally, refreshing its key cache on unknown
/// `kid`s and on a schedule, and honouring each key's `not_after`.
pub struct TokenVerifier {
    source: Arc<dyn KeySource>,
    keys: RwLock<KeySet>,
    /// Held while fetching (one fetch at a time); the last fetch's instant.
    last_refresh: Mutex<Option<Instant>>,
    min_refresh: Duration,
    max_age: Duration,
    clock: crate::clock::Clock,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier").finish_non_exhaustive()
    }
}

impl TokenVerifier {
    /// A verifier fetching keys from `source` on demand.
    pub fn new(source: impl KeySource) -> Self {
        Self {
            source: Arc::new(source),
            keys: RwLock::new(KeySet::default()),
            last_refresh: Mutex::new(None),
            min_refresh: MIN_REFRESH_INTERVAL,
            max_age: KEY_REFRESH_INTERVAL,
            clock: crate::clock::Clock::system(),
        }
    }

    /// Changes how often the whole key set is fetched again.
    pub fn with_refresh_interval(mut self, interval: Duration) -> Self {
        self.max_age = interval;
        self.min_refresh = self.min_refresh.min(interval);
        self
    }

    /// Judges expiry by `clock` (the service's) instead of the system clock.
    pub fn with_clock(mut self, clock: crate::clock::Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Changes how often an unknown `kid` may trigger a key refresh.
    pub fn with_min_refresh(mut self, interval: Duration) -> Self {
        self.min_refresh = interval;
        self
    }

    async fn key(&self, kid: &str) -> Result<(DecodingKey, Option<u64>)> {
        // The hot path: a shared read, no lock taken.
        if let Some(k) = self.keys.read().await.fresh(kid, self.max_age) {
            return Ok(k);
        }
        let mut last = self.last_refresh.lock().await;
        // Another task may have refreshed while we waited.
        if let Some(k) = self.keys.read().await.fresh(kid, self.max_age) {
            return Ok(k);
        }
        // At most one fetch per `min_refresh`, whether the set is stale or
        // the kid unknown, so forged kids cannot flood identity.
        if last.is_none_or(|t| t.elapsed() >= self.min_refresh) {
            *last = Some(Instant::now());
            match self.source.fetch().await {
                Ok(fetched) => {
                    let by_kid = fetched
                        .into_iter()
                        .map(|k| (k.kid.clone(), (DecodingKey::from_ed_der(&k.public_key), k.not_after)))
                        .collect();
                    *self.keys.write().await = KeySet { by_kid, fetched: *last };
                }
                // Identity unreachable: a key already known keeps verifying
                // (its `not_after` still holds) until a fetch succeeds.
                Err(e) if self.keys.read().await.by_kid.contains_key(kid) => {
                    tracing::warn!(error = %e, "verification keys not refreshed; using the cached set");
                }
                Err(e) => return Err(e),
            }
        }
        drop(last);
        self.keys
            .read()
            .await
            .by_kid
            .get(kid)
            .cloned()
            .ok_or_else(|| Error::Unauthenticated("token signed by an unknown key".into()))
    }

    /// Verifies signature, issuer, expiry and lifetime; returns the claims.
    pub async fn verify(&self, token: &str) -> Result<Claims> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| Error::Unauthenticated("malformed token".into()))?;
        if header.alg != Algorithm::EdDSA {
            return Err(Error::Unauthenticated("token algorithm must be EdDSA".into()));
        }
        let kid = header.kid.ok_or_else(|| Error::Unauthenticated("token has no key id".into()))?;
        let (key, not_after) = self.key(&kid).await?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        // Expiry is judged below by the service's clock, not jsonwebtoken's.
        validation.validate_exp = false;
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            Error::Unauthenticated(match e.kind() {
                ErrorKind::ExpiredSignature => "token expired".into(),
                ErrorKind::InvalidSignature => "token signature invalid".into(),
                ErrorKind::InvalidIssuer => "token issuer invalid".into(),
                _ => "token invalid".into(),
            })
        })?;
        let claims = data.claims;
        if claims.exp.saturating_sub(claims.iat) > MAX_LIFETIME.as_secs() {
            return Err(Error::Unauthenticated("token lifetime above 15 minutes".into()));
        }
        let now = self.clock.unix_seconds();
        if not_after.is_some_and(|n| now > n) {
            return Err(Error::Unauthenticated("token signed by a withdrawn key".into()));
        }
        if claims.exp.saturating_add(LEEWAY_SECS) <= now {
            return Err(Error::Unauthenticated("token expired".into()));
        }
        if claims.iat > now + LEEWAY_SECS {
            return Err(Error::Unauthenticated("token issued in the future".into()));
        }
        Ok(claims)
    }

    /// Verifies the `authorization: Bearer <token>` of a request.
    pub async fn authenticate<T>(&self, request: &tonic::Request<T>) -> Result<Claims> {
        let value = request
            .metadata()
            .get("authorization")
            .ok_or_else(|| Error::Unauthenticated("missing bearer token".into()))?
            .to_str()
            .map_err(|_| Error::Unauthenticated("malformed authorization header".into()))?;
        let token = value
            .strip_prefix("Bearer ")
            .ok_or_else(|| Error::Unauthenticated("authorization must be a Bearer token".into()))?;
        // The server's rate limiter verified this very token a moment ago.
        if let Some(v) = request.extensions().get::<Verified>()
            && v.token == token
        {
            return Ok(v.claims.clone());
        }
        self.verify(token).await
    }
}

/// A token the server's rate limiter verified for this request;
/// [`TokenVerifier::authenticate`] takes it instead of verifying again.
/// Only this crate can make one, so a caller cannot plant it.
#[derive(Clone, Debug)]
pub(crate) struct Verified {
    pub(crate) token: String,
    pub(crate) claims: Claims,
}

#[cfg(test)]
mod tests;

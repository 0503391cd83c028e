//! Tenant keys in Vault (or OpenBao) transit, through vaultrs: one transit key
//! per tenant (`tenant-<id>`), created on demand. Token, AppRole and
//! Kubernetes auth; a login-based token is renewed when two thirds of its
//! term have passed, logged in again when it can be renewed no more, and,
//! should Vault still answer 403, logged in again then.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::{Mutex, RwLock};
use vaultrs::api::transit::requests::{DataKeyType, UpdateKeyConfigurationRequest};
use vaultrs::api::transit::responses::ReadKeyData;
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;

use crate::error::{Error, Result};
use crate::provider::{KeyProvider, KeyVersions, SecretKey, WrappedKey, check_tenant};

/// How Guardline authenticates to Vault.
#[derive(Clone)]
pub enum VaultAuth {
    /// A static token.
    Token(String),
    /// AppRole login.
    AppRole {
        /// Auth mount, usually `approle`.
        mount: String,
        /// Role id.
        role_id: String,
        /// Secret id.
        secret_id: String,
    },
    /// Kubernetes login with the pod's service-account token.
    Kubernetes {
        /// Auth mount, usually `kubernetes`.
        mount: String,
        /// Vault role.
        role: String,
        /// Path of the service-account JWT.
        jwt_path: PathBuf,
    },
}

impl std::fmt::Debug for VaultAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print tokens or secret ids.
        f.write_str(match self {
            Self::Token(_) => "VaultAuth::Token(..)",
            Self::AppRole { .. } => "VaultAuth::AppRole(..)",
            Self::Kubernetes { .. } => "VaultAuth::Kubernetes(..)",
        })
    }
}

/// Tenant keys in a Vault transit mount.
pub struct VaultProvider {
    addr: String,
    client: RwLock<Arc<VaultClient>>,
    auth: VaultAuth,
    mount: String,
    ensured: Mutex<HashSet<String>>,
    /// The login token's lease (none for a static token).
    lease: std::sync::Mutex<Option<TokenLease>>,
    /// Held by the one call renewing the token.
    renewing: Mutex<()>,
    logins: std::sync::atomic::AtomicU64,
    renewals: std::sync::atomic::AtomicU64,
}

/// When a login token was obtained or renewed, and for how long.
#[derive(Clone, Copy, Debug)]
struct TokenLease {
    since: std::time::Instant,
    ttl: std::time::Duration,
    renewable: bool,
}

impl TokenLease {
    fn of(auth: &vaultrs::api::AuthInfo) -> Self {
        let ttl = std::time::Duration::from_secs(auth.lease_duration);
        Self { since: std::time::Instant::now(), ttl, renewable: auth.renewable }
    }

    /// Two thirds of its term have passed (a token with no term never does).
    fn due(&self) -> bool {
        !self.ttl.is_zero() && self.since.elapsed() * 3 >= self.ttl * 2
    }
}

impl std::fmt::Debug for VaultProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultProvider").field("mount", &self.mount).field("auth", &self.auth).finish_non_exhaustive()
    }
}

fn unavailable(e: ClientError) -> Error {
    match e {
        ClientError::APIError { code, .. } => Error::Unavailable(format!("vault answered {code}")),
        other => Error::Unavailable(format!("vault: {}", other.to_string().chars().take(200).collect::<String>())),
    }
}

fn is_forbidden(e: &ClientError) -> bool {
    matches!(e, ClientError::APIError { code: 403, .. })
}

fn key_name(tenant: &str) -> String {
    format!("tenant-{tenant}")
}

fn client_for(addr: &str, token: &str) -> Result<VaultClient> {
    let settings = VaultClientSettingsBuilder::default()
        .address(addr)
        .token(token)
        .timeout(Some(std::time::Duration::from_secs(10)))
        .build()
        .map_err(|e| Error::Config { field: "--vault-addr", reason: e.to_string() })?;
    VaultClient::new(settings).map_err(|e| Error::Config { field: "--vault-addr", reason: e.to_string() })
}

/// Runs a vaultrs call; on a 403 with login-based auth, logs in again and
/// retries once (AppRole and Kubernetes tokens expire).
macro_rules! vault_call {
    ($self:ident, |$c:ident| $call:expr) => {{
        let $c = $self.current().await;
        match $call.await {
            Err(e) if is_forbidden(&e) && !matches!($self.auth, VaultAuth::Token(_)) => {
                tracing::info!("vault token refused, logging in again");
                $self.login().await?;
                let $c = $self.current().await;
                $call.await.map_err(unavailable)
            }
            other => other.map_err(unavailable),
        }
    }};
}

impl VaultProvider {
    /// Connects to `addr` and authenticates; `mount` is the transit mount.
    pub async fn connect(addr: &str, auth: VaultAuth, mount: &str) -> Result<Self> {
        let client = Arc::new(client_for(addr, "")?);
        let this = Self {
            addr: addr.to_owned(),
            client: RwLock::new(client),
            auth,
            mount: mount.to_owned(),
            ensured: Mutex::new(HashSet::new()),
            lease: std::sync::Mutex::new(None),
            renewing: Mutex::new(()),
            logins: Default::default(),
            renewals: Default::default(),
        };
        this.login().await?;
        Ok(this)
    }

    /// (logins, renewals) so far: a login token is renewed before it expires
    /// and logged in again only when it can be renewed no more.
    pub fn token_history(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.logins.load(Relaxed), self.renewals.load(Relaxed))
    }

    /// The client, its token renewed first when two thirds of its term
    /// have passed (or replaced by a new login when it cannot be renewed:
    /// its maximum TTL reached). A failed renewal leaves it to the 403
    /// path of `vault_call!` to log in again.
    async fn current(&self) -> Arc<VaultClient> {
        let due = self.lease.lock().ok().and_then(|l| *l).is_some_and(|l| l.due());
        if due
            && let Ok(_one) = self.renewing.try_lock()
            && let Err(error) = self.renew().await
        {
            tracing::warn!(%error, "renewing the vault token failed; logging in again when it is refused");
        }
        self.client.read().await.clone()
    }

    async fn renew(&self) -> Result<()> {
        let Some(lease) = self.lease.lock().ok().and_then(|l| *l).filter(|l| l.due()) else { return Ok(()) };
        if lease.renewable {
            let client = self.client.read().await.clone();
            if let Ok(auth) = vaultrs::token::renew_self(client.as_ref(), None).await {
                // Renewed for less than what remains (its maximum TTL near): log in instead.
                let left = lease.ttl.saturating_sub(lease.since.elapsed());
                if std::time::Duration::from_secs(auth.lease_duration) > left {
                    self.renewals.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if let Ok(mut l) = self.lease.lock() {
                        *l = Some(TokenLease::of(&auth));
                    }
                    return Ok(());
                }
            }
        }
        self.login().await
    }

    async fn login(&self) -> Result<()> {
        let anonymous = client_for(&self.addr, "")?;
        let auth = match &self.auth {
            VaultAuth::Token(t) => {
                *self.client.write().await = Arc::new(client_for(&self.addr, t)?);
                return Ok(());
            }
            VaultAuth::AppRole { mount, role_id, secret_id } => {
                vaultrs::auth::approle::login(&anonymous, mount, role_id, secret_id).await.map_err(unavailable)?
            }
            VaultAuth::Kubernetes { mount, role, jwt_path } => {
                let jwt = std::fs::read_to_string(jwt_path)
                    .map_err(|e| Error::Config { field: "--vault-k8s-jwt-path", reason: e.to_string() })?;
                vaultrs::auth::kubernetes::login(&anonymous, mount, role, jwt.trim()).await.map_err(unavailable)?
            }
        };
        *self.client.write().await = Arc::new(client_for(&self.addr, &auth.client_token)?);
        if let Ok(mut l) = self.lease.lock() {
            *l = Some(TokenLease::of(&auth));
        }
        self.logins.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    async fn read_versions(&self, name: &str) -> Result<KeyVersions> {
        let resp = vault_call!(self, |c| vaultrs::transit::key::read(&*c, &self.mount, name)).map_err(|e| match e {
            Error::Unavailable(m) if m.ends_with("404") => Error::UnknownTenant,
            other => other,
        })?;
        // Symmetric keys map each usable version to its creation time.
        let created: std::collections::BTreeMap<u64, Option<u64>> = match resp.keys {
            ReadKeyData::Symmetric(m) => m.into_iter().filter_map(|(k, t)| Some((k.parse().ok()?, Some(t)))).collect(),
            ReadKeyData::Asymmetric(m) => m.into_keys().filter_map(|k| Some((k.parse().ok()?, None))).collect(),
        };
        let (latest, latest_created) = created.last_key_value().map_or((0, None), |(v, t)| (*v, *t));
        Ok(KeyVersions { latest, min_decryption: resp.min_decryption_version, latest_created })
    }
}

/// The key in Vault's base64 plaintext; both the text and the decoded bytes
/// are wiped when dropped, so a data key leaves no copy in freed memory.
fn decode_plaintext(b64: String) -> Result<SecretKey> {
    use base64::Engine;
    let b64 = zeroize::Zeroizing::new(b64);
    let bytes = zeroize::Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(b64.as_bytes())
            .map_err(|_| Error::Crypto("vault plaintext".into()))?,
    );
    SecretKey::from_slice(&bytes)
}

#[async_trait]
impl KeyProvider for VaultProvider {
    async fn ensure_tenant_key(&self, tenant: &str) -> Result<()> {
        check_tenant(tenant)?;
        if self.ensured.lock().await.contains(tenant) {
            return Ok(());
        }
        let name = key_name(tenant);
        // Creating an existing key is a no-op in transit.
        vault_call!(self, |c| vaultrs::transit::key::create(&*c, &self.mount, &name, None))?;
        self.ensured.lock().await.insert(tenant.to_owned());
        Ok(())
    }

    async fn generate_data_key(&self, tenant: &str) -> Result<(SecretKey, WrappedKey)> {
        check_tenant(tenant)?;
        let name = key_name(tenant);
        let resp = vault_call!(self, |c| vaultrs::transit::generate::data_key(
            &*c,
            &self.mount,
            &name,
            DataKeyType::Plaintext,
            None
        ))?;
        let plain = resp.plaintext.ok_or_else(|| Error::Crypto("vault returned no plaintext".into()))?;
        Ok((decode_plaintext(plain)?, WrappedKey(resp.ciphertext)))
    }

    async fn unwrap(&self, tenant: &str, wrapped: &WrappedKey) -> Result<SecretKey> {
        check_tenant(tenant)?;
        let name = key_name(tenant);
        let resp = vault_call!(self, |c| vaultrs::transit::data::decrypt(&*c, &self.mount, &name, &wrapped.0, None));
        match resp {
            Ok(r) => decode_plaintext(r.plaintext),
            // Vault answers 400 for a retired version or a ciphertext of another key.
            Err(Error::Unavailable(m)) if m.ends_with("400") => match wrapped.version() {
                Some(v) if self.read_versions(&name).await.is_ok_and(|kv| v < kv.min_decryption) => {
                    Err(Error::VersionRetired(v))
                }
                _ => Err(Error::Decrypt),
            },
            Err(e) => Err(e),
        }
    }

    async fn rotate(&self, tenant: &str) -> Result<u64> {
        check_tenant(tenant)?;
        let name = key_name(tenant);
        vault_call!(self, |c| vaultrs::transit::key::rotate(&*c, &self.mount, &name))?;
        Ok(self.read_versions(&name).await?.latest)
    }

    async fn rewrap(&self, tenant: &str, wrapped: &WrappedKey) -> Result<WrappedKey> {
        check_tenant(tenant)?;
        let name = key_name(tenant);
        let resp = vault_call!(self, |c| vaultrs::transit::data::rewrap(&*c, &self.mount, &name, &wrapped.0, None))?;
        Ok(WrappedKey(resp.ciphertext))
    }

    async fn versions(&self, tenant: &str) -> Result<KeyVersions> {
        check_tenant(tenant)?;
        self.read_versions(&key_name(tenant)).await
    }

    async fn set_min_decryption_version(&self, tenant: &str, version: u64) -> Result<()> {
        check_tenant(tenant)?;
        let name = key_name(tenant);
        let mut opts = UpdateKeyConfigurationRequest::builder();
        opts.min_decryption_version(version);
        vault_call!(self, |c| vaultrs::transit::key::update(&*c, &self.mount, &name, Some(&mut opts.clone())))
    }

    async fn trim(&self, tenant: &str, min_available: u64) -> Result<()> {
        check_tenant(tenant)?;
        let name = key_name(tenant);
        // Vault trims only a key whose minimum encryption version is set;
        // new wraps use the latest version anyway, so pin it there.
        let latest = self.read_versions(&name).await?.latest;
        let mut opts = UpdateKeyConfigurationRequest::builder();
        opts.min_encryption_version(latest);
        vault_call!(self, |c| vaultrs::transit::key::update(&*c, &self.mount, &name, Some(&mut opts.clone())))?;
        vault_call!(self, |c| vaultrs::transit::key::trim(&*c, &self.mount, &name, min_available))
    }
}

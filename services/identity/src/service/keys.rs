//! The access-token signing keys: Ed25519, sealed at rest under a platform
//! data key, rotated after a period. A retired key's public half stays
//! published until the last token it signed has expired.

use guardline_runtime::clock::Clock;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use guardline_keys::Envelope;
use guardline_keys::aead::{self, Binding};
use guardline_runtime::token::{KeySource, MAX_LIFETIME, TokenSigner, VerificationKey};
use tokio::sync::RwLock;

use crate::error::{Error, Result};
use crate::store::{Store, keys as stored, signing_key};

/// The pseudo-tenant whose data key seals platform secrets.
const PLATFORM: &str = "_platform";

struct Entry {
    kid: String,
    signer: TokenSigner,
    created_at: DateTime<Utc>,
    retired_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

/// The signing keys, loaded from the database.
pub struct Signers {
    store: Store,
    envelope: Arc<Envelope>,
    rotation: Duration,
    keys: RwLock<Vec<Entry>>,
    clock: Clock,
}

impl std::fmt::Debug for Signers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signers").field("rotation", &self.rotation).finish_non_exhaustive()
    }
}

fn binding(kid: &str) -> Binding<'_> {
    Binding { kind: "signing-key", tenant: PLATFORM, record: kid, field: "", version: 0 }
}

impl Signers {
    /// Loads the keys, creating the first one if there is none.
    pub async fn load(store: Store, envelope: Arc<Envelope>, rotation: Duration) -> Result<Arc<Self>> {
        Self::load_on(store, envelope, rotation, Clock::system()).await
    }

    /// As [`Signers::load`], with keys dated and withdrawn by `clock`.
    pub async fn load_on(store: Store, envelope: Arc<Envelope>, rotation: Duration, clock: Clock) -> Result<Arc<Self>> {
        let this = Arc::new(Self { store, envelope, rotation, keys: RwLock::new(Vec::new()), clock });
        this.rotate_if_due(this.clock.now()).await?;
        Ok(this)
    }

    /// A stored key, unsealed.
    async fn entry(&self, row: &signing_key::Model) -> Result<Entry> {
        let dk = self.envelope.data_key(PLATFORM, &row.data_key_id).await?;
        let pkcs8 = aead::open(&dk, &binding(&row.kid), &row.sealed).map_err(guardline_runtime::Error::from)?;
        Ok(Entry {
            signer: TokenSigner::from_pkcs8(&row.kid, &pkcs8)?,
            kid: row.kid.clone(),
            created_at: row.created_at,
            retired_at: row.retired_at,
            revoked_at: row.revoked_at,
        })
    }

    /// Brings the ring up to date with the store, the truth every replica
    /// shares: keys another replica created, retired or revoked. Each
    /// replica then signs with the newest active key and publishes every
    /// replica's keys.
    async fn sync(&self) -> Result<()> {
        let rows = stored::all(&self.store).await?;
        let known: std::collections::HashSet<String> = self.keys.read().await.iter().map(|k| k.kid.clone()).collect();
        let mut fresh = Vec::new();
        for row in rows.iter().filter(|r| !known.contains(&r.kid)) {
            fresh.push(self.entry(row).await?);
        }
        let mut keys = self.keys.write().await;
        for row in &rows {
            if let Some(k) = keys.iter_mut().find(|k| k.kid == row.kid) {
                k.retired_at = row.retired_at;
                k.revoked_at = row.revoked_at;
            }
        }
        for e in fresh {
            if !keys.iter().any(|k| k.kid == e.kid) {
                keys.push(e);
            }
        }
        keys.sort_by_key(|k| k.created_at);
        Ok(())
    }

    /// Creates a new key when the active one is older than the rotation
    /// period (after catching up with the other replicas' keys).
    pub async fn rotate_if_due(&self, now: DateTime<Utc>) -> Result<()> {
        self.sync().await?;
        let due = {
            let keys = self.keys.read().await;
            keys.iter().rev().find(|k| k.retired_at.is_none()).is_none_or(|k| {
                now - k.created_at >= chrono::Duration::from_std(self.rotation).unwrap_or(chrono::Duration::MAX)
            })
        };
        if due { self.rotate(now).await } else { Ok(()) }
    }

    /// Creates a new signing key and retires the previous one.
    pub async fn rotate(&self, now: DateTime<Utc>) -> Result<()> {
        let kid = format!("k-{}", uuid::Uuid::now_v7().simple());
        let pkcs8 = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new())
            .map_err(|_| Error::Internal("ed25519 key generation failed".into()))?;
        let signer = TokenSigner::from_pkcs8(&kid, pkcs8.as_ref())?;
        let (dk_id, dk) = self.envelope.active_data_key(PLATFORM).await?;
        let sealed = aead::seal(&dk, &binding(&kid), pkcs8.as_ref()).map_err(guardline_runtime::Error::from)?;
        let mut keys = self.keys.write().await;
        let row = signing_key::Model {
            kid: kid.clone(),
            data_key_id: dk_id,
            sealed,
            public_key: signer.verification_key().public_key,
            created_at: now,
            retired_at: None,
            revoked_at: None,
        };
        stored::insert(&self.store, row).await?;
        for k in keys.iter_mut().filter(|k| k.retired_at.is_none()) {
            k.retired_at = Some(now);
            stored::retire(&self.store, &k.kid, now).await?;
        }
        tracing::info!(%kid, "token signing key rotated");
        keys.push(Entry { kid, signer, created_at: now, retired_at: None, revoked_at: None });
        Ok(())
    }

    /// Withdraws key `kid` at once (a suspected compromise): it is published
    /// no more, so every verifier drops it at its next key refresh; an
    /// active key is first replaced by a new one. False for an unknown kid.
    pub async fn revoke(&self, kid: &str, now: DateTime<Utc>) -> Result<bool> {
        let active = {
            let keys = self.keys.read().await;
            match keys.iter().find(|k| k.kid == kid) {
                None => return Ok(false),
                Some(k) => k.retired_at.is_none(),
            }
        };
        if active {
            self.rotate(now).await?;
        }
        let mut keys = self.keys.write().await;
        for k in keys.iter_mut().filter(|k| k.kid == kid) {
            k.revoked_at = Some(now);
            stored::revoke(&self.store, &k.kid, now).await?;
        }
        tracing::warn!(%kid, "token signing key revoked");
        Ok(true)
    }

    /// Signs with the active key.
    pub async fn sign(&self, claims: &guardline_runtime::token::Claims) -> Result<String> {
        let keys = self.keys.read().await;
        let active = keys
            .iter()
            .rev()
            .find(|k| k.retired_at.is_none())
            .ok_or_else(|| Error::Internal("no signing key".into()))?;
        active.signer.sign(claims)
    }

    /// Keys that may have signed an unexpired token, with the instant after
    /// which they verify nothing (None while active).
    pub async fn published(&self, now: DateTime<Utc>) -> Vec<(VerificationKey, Option<DateTime<Utc>>)> {
        if let Err(error) = self.sync().await {
            // The keys known so far are still right to publish.
            tracing::warn!(%error, "signing keys not refreshed from the store");
        }
        let grace = chrono::Duration::from_std(MAX_LIFETIME).unwrap_or_default() + chrono::Duration::seconds(60);
        self.keys
            .read()
            .await
            .iter()
            .filter(|k| k.revoked_at.is_none())
            .filter_map(|k| {
                let not_after = k.retired_at.map(|r| r + grace);
                (not_after.is_none_or(|n| n > now)).then(|| (k.signer.verification_key(), not_after))
            })
            .collect()
    }
}

/// Identity verifies its own tokens straight from its key ring.
#[derive(Clone, Debug)]
pub struct OwnKeys(pub Arc<Signers>);

impl KeySource for OwnKeys {
    fn fetch(
        &self,
    ) -> std::pin::Pin<Box<dyn Future<Output = guardline_runtime::Result<Vec<VerificationKey>>> + Send + '_>> {
        Box::pin(async move { Ok(self.0.published(self.0.clock.now()).await.into_iter().map(|(k, _)| k).collect()) })
    }
}

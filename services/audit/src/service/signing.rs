//! The tree-head signing keys: checked against their sealed private halves
//! at start, trusted only where pinned, and rotated.
//!
//! The newest trusted key signs. A rotation stores a new key sealed under a
//! platform data key; without pins it signs from then on, and with pins it
//! waits until its fingerprint is pinned (`--trusted-keys`) and the service
//! restarted, so that no head is ever signed by a key verifiers do not
//! trust. Older keys stay, so heads they signed keep verifying. Every
//! replica catches up with keys another rotated in ([`Signing::sync`],
//! at most every [`SYNC_EVERY`] of appends), so all sign with the newest.

use std::sync::{Arc, RwLock};

use guardline_keys::{Envelope, PLATFORM};
use guardline_runtime::clock::Clock;

use crate::domain::pin::{Keys, Pins, fingerprint};
use crate::domain::sth::HeadSigner;
use crate::error::{AuditError, Error, Result};
use crate::store::log::Store;
use crate::store::signing_key;

const KEY_KIND: &str = "audit-head-key";

/// How often appends look for keys another replica rotated in.
pub const SYNC_EVERY: chrono::Duration = chrono::Duration::seconds(5);

/// A new head-signing key, as a rotation reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rotated {
    /// Its key id.
    pub kid: String,
    /// Its fingerprint, to pin.
    pub fingerprint: String,
    /// Whether it signs from now on (else it waits to be pinned).
    pub active: bool,
    /// The key that signed before.
    pub previous: String,
}

/// The keys of the log.
pub struct Signing {
    envelope: Arc<Envelope>,
    pins: Option<Pins>,
    state: RwLock<State>,
}

struct State {
    signer: Arc<HeadSigner>,
    trusted: Keys,
    /// Every stored key id seen, trusted or not.
    known: std::collections::HashSet<String>,
    /// When the store was last read for new keys.
    synced: chrono::DateTime<chrono::Utc>,
}

impl std::fmt::Debug for Signing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signing").field("signer", &self.signer().kid).finish_non_exhaustive()
    }
}

impl Signing {
    /// Loads every stored key, creating the first one. Each stored public
    /// key must be its sealed private key's (opened through the key
    /// provider, bound to its key id): a planted or edited key row refuses
    /// the start. The newest trusted key signs; none trusted refuses too.
    pub async fn open(store: &Store, envelope: Arc<Envelope>, clock: &Clock, pins: Option<Pins>) -> Result<Self> {
        let mut rows = store.signing_keys().await?;
        if rows.is_empty() {
            let (row, _) = new_key(&envelope, clock).await?;
            store.insert_signing_key(row.clone()).await?;
            rows.push(row);
        }
        let mut signers = Vec::with_capacity(rows.len());
        for row in &rows {
            signers.push(opened(&envelope, row).await?);
        }
        let trusts = |pk: &[u8]| pins.as_ref().is_none_or(|p| p.trusts(pk));
        let trusted: Keys =
            rows.iter().filter(|r| trusts(&r.public_key)).map(|r| (r.kid.clone(), r.public_key.clone())).collect();
        let Some(signer) = signers.into_iter().rev().find(|s| trusts(&s.public_key())) else {
            let stored: Vec<String> = rows.iter().map(|r| fingerprint(&r.public_key)).collect();
            let reason = format!("pins none of the stored head-signing keys ({})", stored.join(", "));
            return Err(Error::config("--trusted-keys", reason));
        };
        for r in &rows {
            let (kid, fp) = (&r.kid, fingerprint(&r.public_key));
            tracing::info!(%kid, fingerprint = %fp, trusted = trusts(&r.public_key), signing = *kid == signer.kid, "audit head-signing key");
        }
        let known = rows.iter().map(|r| r.kid.clone()).collect();
        let state = RwLock::new(State { signer: Arc::new(signer), trusted, known, synced: clock.now() });
        Ok(Self { envelope, pins, state })
    }

    /// The key that signs now.
    pub fn signer(&self) -> Arc<HeadSigner> {
        self.state.read().map(|s| s.signer.clone()).unwrap_or_else(|p| p.into_inner().signer.clone())
    }

    /// The trusted public keys, by key id.
    pub fn trusted(&self) -> Keys {
        self.state.read().map(|s| s.trusted.clone()).unwrap_or_else(|p| p.into_inner().trusted.clone())
    }

    /// Takes up keys another replica stored since the last look (at most
    /// every [`SYNC_EVERY`]): each checked against its sealed half (one that
    /// fails is logged and never trusted), and the newest trusted one signs.
    pub async fn sync(&self, store: &Store, clock: &Clock) -> Result<()> {
        let now = clock.now();
        let due = self.state.read().map(|s| now - s.synced >= SYNC_EVERY).unwrap_or(true);
        if !due {
            return Ok(());
        }
        let rows = store.signing_keys().await?;
        let known = self.state.read().map(|s| s.known.clone()).unwrap_or_default();
        let mut newest = None;
        for row in rows.iter().filter(|r| !known.contains(&r.kid)) {
            match opened(&self.envelope, row).await {
                Ok(signer) if self.pins.as_ref().is_none_or(|p| p.trusts(&row.public_key)) => {
                    newest = Some((row, signer))
                }
                Ok(_) => {}
                Err(_) => {
                    tracing::error!(kid = %row.kid, "a stored head-signing key does not match its sealed half; not trusted")
                }
            }
        }
        let mut state = self.state.write().map_err(|_| Error::Internal("signing state poisoned".into()))?;
        state.known.extend(rows.iter().map(|r| r.kid.clone()));
        state.synced = now;
        if let Some((row, signer)) = newest {
            tracing::info!(kid = %row.kid, "signing with the head-signing key another replica rotated in");
            state.trusted.insert(row.kid.clone(), row.public_key.clone());
            state.signer = Arc::new(signer);
        }
        Ok(())
    }

    /// Stores a new key; it signs from now on where it is trusted. The
    /// caller serializes this with appends.
    pub async fn rotate(&self, store: &Store, clock: &Clock) -> Result<Rotated> {
        let (row, signer) = new_key(&self.envelope, clock).await?;
        store.insert_signing_key(row.clone()).await?;
        let active = self.pins.as_ref().is_none_or(|p| p.trusts(&row.public_key));
        let mut state = self.state.write().map_err(|_| Error::Internal("signing state poisoned".into()))?;
        state.known.insert(row.kid.clone());
        let previous = state.signer.kid.clone();
        if active {
            state.trusted.insert(row.kid.clone(), row.public_key.clone());
            state.signer = Arc::new(signer);
        }
        Ok(Rotated { kid: row.kid, fingerprint: fingerprint(&row.public_key), active, previous })
    }
}

/// A fresh key, sealed under a platform data key bound to its id.
async fn new_key(envelope: &Envelope, clock: &Clock) -> Result<(signing_key::Model, HeadSigner)> {
    let kid = format!("a-{}", uuid::Uuid::now_v7().simple());
    let pkcs8 = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new())
        .map_err(|_| Error::Internal("ed25519 key generation failed".into()))?;
    let signer = HeadSigner::from_pkcs8(&kid, pkcs8.as_ref()).ok_or_else(|| Error::Internal("ed25519 key".into()))?;
    let (data_key_id, sealed) = envelope.seal_secret(PLATFORM, KEY_KIND, &kid, pkcs8.as_ref()).await?;
    let public_key = signer.public_key();
    Ok((signing_key::Model { kid, data_key_id, sealed, public_key, created_at: clock.now() }, signer))
}

/// The signer of a stored row, if its sealed private key opens and is the
/// stored public key's.
async fn opened(envelope: &Envelope, row: &signing_key::Model) -> Result<HeadSigner> {
    let pkcs8 = envelope.open_secret(PLATFORM, KEY_KIND, &row.kid, &row.data_key_id, &row.sealed).await;
    match pkcs8.ok().and_then(|p| HeadSigner::from_pkcs8(&row.kid, &p)) {
        Some(s) if s.public_key() == row.public_key => Ok(s),
        _ => Err(AuditError::SigningKeyMismatch { kid: row.kid.clone() }.into()),
    }
}

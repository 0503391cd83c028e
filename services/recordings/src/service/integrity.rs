//! The recording metadata MAC: HMAC-SHA256 over every column that decides
//! who may play a recording and how long it is kept (lead, agent, team,
//! hold, retention, consent span, size, plaintext hash, nonce prefix,
//! object, state, dates), under a key derived (HKDF) from the recording's
//! own record key, which only Vault or the keyring opens. Checked on every
//! read, listing, hold, purge and erasure; `VerifyRecording` names a
//! failure. Rows stored before the MAC get one from the start-up upgrade;
//! until it has finished in this process a row without one is accepted.

use std::sync::atomic::Ordering;

use aws_lc_rs::{constant_time, hkdf, hmac};

use super::Recordings;
use crate::error::{RecordingError, Result};
use crate::store::recording;

/// Rows MACed per batch by the upgrade.
const BATCH: u64 = 500;

/// The MAC of `row` under its record key `rk`.
pub(crate) fn mac_of(rk: &[u8], row: &recording::Model) -> Vec<u8> {
    let okm = hkdf::Salt::new(hkdf::HKDF_SHA256, b"guardline/recording-mac/v1").extract(rk);
    let key: hmac::Key = match okm.expand(&[b"metadata"], hmac::HMAC_SHA256) {
        Ok(k) => k.into(),
        // The output length is the hash's own: expand cannot fail.
        Err(_) => return Vec::new(),
    };
    let opt = |v: Option<i64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string()).into_bytes();
    let date = |d: Option<chrono::DateTime<chrono::Utc>>| {
        d.map_or_else(|| "-".to_owned(), |d| d.timestamp_micros().to_string()).into_bytes()
    };
    let parts: [Vec<u8>; 19] = [
        row.id.clone().into_bytes(),
        row.tenant_id.clone().into_bytes(),
        row.call_id.clone().into_bytes(),
        row.lead_id.clone().into_bytes(),
        row.agent_id.clone().into_bytes(),
        row.team_id.clone().into_bytes(),
        date(Some(row.started_at)),
        opt(row.consent_offset_ms),
        opt(row.consent_length_ms),
        row.size_bytes.to_string().into_bytes(),
        row.sha256.clone().unwrap_or_default(),
        row.nonce_prefix.clone(),
        row.object_path.clone().into_bytes(),
        row.state.clone().into_bytes(),
        date(row.stored_at),
        date(Some(row.retain_until)),
        row.retention_class.clone().into_bytes(),
        if row.legal_hold { b"hold".to_vec() } else { b"free".to_vec() },
        row.legal_hold_reason.clone().into_bytes(),
    ];
    let mut ctx = hmac::Context::with_key(&key);
    for p in parts {
        ctx.update(&(p.len() as u32).to_be_bytes());
        ctx.update(&p);
    }
    ctx.sign().as_ref().to_vec()
}

impl Recordings {
    /// `row` with its MAC computed anew (after a change the service made).
    pub(crate) async fn maced(&self, mut row: recording::Model) -> Result<recording::Model> {
        let (rk, _) = self.key(&row).await?;
        row.mac = Some(mac_of(rk.expose(), &row));
        Ok(row)
    }

    /// Checks a row's MAC; a failure is audited as tampering, with `actor`.
    pub(crate) async fn checked(&self, row: recording::Model, actor: &str) -> Result<recording::Model> {
        let Some(mac) = &row.mac else {
            if self.mac_legacy_accepted.load(Ordering::Acquire) {
                return Ok(row);
            }
            return Err(self.tampered(&row, actor, "metadata carries no MAC").await);
        };
        let (rk, _) = self.key(&row).await?;
        if constant_time::verify_slices_are_equal(&mac_of(rk.expose(), &row), mac).is_err() {
            return Err(self.tampered(&row, actor, "metadata differs from what was stored").await);
        }
        Ok(row)
    }

    /// The row if its MAC checks; None (audited) if it fails, for the
    /// batch use-cases that go on with the other rows.
    pub(crate) async fn intact(&self, row: recording::Model, actor: &str) -> Result<Option<recording::Model>> {
        match self.checked(row, actor).await {
            Ok(r) => Ok(Some(r)),
            Err(e) if e.refusal::<RecordingError>().is_some() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Gives every stored row without a MAC its first one, then stops
    /// accepting rows without. Returns how many were MACed.
    pub async fn upgrade_macs(&self) -> Result<u64> {
        let (mut done, mut after) = (0, String::new());
        loop {
            let rows = self.store.unmaced(&after, BATCH).await?;
            let Some(last) = rows.last() else { break };
            after = last.id.clone();
            for row in rows {
                let id = row.id.clone();
                match self.maced(row).await {
                    Ok(r) => {
                        self.store.set_first_mac(&id, r.mac.unwrap_or_default()).await?;
                        done += 1;
                    }
                    Err(e) => {
                        tracing::error!(recording = %id, error = %e, "a recording's key does not open; left without a MAC")
                    }
                }
            }
        }
        self.mac_legacy_accepted.store(false, Ordering::Release);
        Ok(done)
    }
}

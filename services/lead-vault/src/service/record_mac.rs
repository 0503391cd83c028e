//! The lead record MAC, its two formats, and the move of stored rows from
//! the first to the second without downtime.
//!
//! Format 1 (32 bytes) covers id, tenant, owner, team, status, version and
//! the record key's data key. Format 2 (a `0x02` byte, then 32) adds every
//! other clear column that decides something: region and time zone (the
//! legal calling window), source and tags. Both are HMAC-SHA256 under the
//! tenant's MAC key over length-prefixed parts, with their own domain
//! separation string.

use std::sync::atomic::Ordering;

use aws_lc_rs::{constant_time, hmac};

use super::Vault;
use crate::error::Result;
use crate::store::lead;

const V2: u8 = 2;
/// Rows moved per transaction by the upgrade.
const BATCH: u64 = 500;

fn hmac_of(key: &[u8], domain: &[u8], parts: &[&str]) -> hmac::Tag {
    let mut msg = domain.to_vec();
    for part in parts {
        msg.extend_from_slice(&(part.len() as u32).to_be_bytes());
        msg.extend_from_slice(part.as_bytes());
    }
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), &msg)
}

/// Format 1, as rows written before format 2 carry it.
pub(crate) fn v1(key: &[u8], row: &lead::Model) -> Vec<u8> {
    let version = row.version.to_string();
    let parts = [&*row.id, &row.tenant_id, &row.owner_id, &row.team_id, &row.status, &version, &row.key_data_key_id];
    hmac_of(key, b"guardline/lead-mac/v1", &parts).as_ref().to_vec()
}

/// Format 2: the format byte, then the tag.
pub(crate) fn v2(key: &[u8], row: &lead::Model) -> Vec<u8> {
    let version = row.version.to_string();
    let parts = [
        &*row.id,
        &row.tenant_id,
        &row.owner_id,
        &row.team_id,
        &row.status,
        &version,
        &row.key_data_key_id,
        &row.region,
        &row.time_zone,
        &row.source,
        &row.tags,
    ];
    let mut out = vec![V2];
    out.extend_from_slice(hmac_of(key, b"guardline/lead-mac/v2", &parts).as_ref());
    out
}

/// Whether `row.mac` vouches for the row: format 2 always, format 1 only
/// while `legacy` is allowed. Constant time in the tag.
pub(crate) fn verify(key: &[u8], row: &lead::Model, legacy: bool) -> bool {
    let expected = match row.mac.first() {
        Some(&V2) if row.mac.len() == 33 => v2(key, row),
        _ if legacy && row.mac.len() == 32 => v1(key, row),
        _ => return false,
    };
    constant_time::verify_slices_are_equal(&expected, &row.mac).is_ok()
}

impl Vault {
    /// Moves every format-1 row to format 2, a batch per transaction, each
    /// row only if its format-1 MAC verifies and only if it is unchanged
    /// since it was read. Then format 1 stops verifying in this process.
    /// Returns (moved, refused): refused rows keep failing their checks.
    pub async fn upgrade_macs(&self) -> Result<(u64, u64)> {
        // Once a pass has finished in this process, a format-1 row can only
        // be a planted one: it is never moved again.
        let legacy = self.mac_v1_accepted.load(Ordering::Acquire);
        let (mut moved, mut refused, mut after) = (0, 0, String::new());
        loop {
            let rows = self.store.legacy_mac_leads(&after, BATCH).await?;
            let Some(last) = rows.last() else { break };
            after = last.id.clone();
            let mut next = Vec::with_capacity(rows.len());
            for row in rows {
                let key = self.tenant_secret(&row.tenant_id, super::MAC_KEY).await?;
                if verify(&key, &row, legacy) {
                    let mac = v2(&key, &row);
                    next.push((row, mac));
                } else {
                    tracing::error!(lead = %row.id, "lead metadata changed outside the service");
                    refused += 1;
                }
            }
            moved += self.store.replace_macs(&next).await?;
        }
        self.mac_v1_accepted.store(false, Ordering::Release);
        Ok((moved, refused))
    }
}

#[cfg(test)]
mod tests;

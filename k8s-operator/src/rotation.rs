//! What to do next for one tenant's key rotation, as a pure function of
//! the policy, the tenant's recorded progress, what Vault and the services
//! report now, and the clock. Every step is idempotent and the progress is
//! kept in the policy's status, so an operator that restarts at any point
//! repeats at most the step it was in:
//!
//! 1. `RotatingTenantKey`: rotate the tenant key in Vault (skipped if Vault
//!    already has a version newer than the one recorded at the start);
//! 2. `Rewrapping`: the lead vault and recordings rewrap the data keys the
//!    old version wraps (each reports the version it wrapped under);
//! 3. `RotatingDataKey`, `AwaitingRewrap`: a new tenant data key in the
//!    lead vault, whose record keys re-wrap in the background, watched with
//!    `GetKeyStatus` (a restart between the call and the status write makes
//!    one more data key, which is harmless);
//! 4. `RaisingMinimum`: once nothing uses an old version, Vault's
//!    `min_decryption_version` goes up to the new one (if the policy says so);
//! 5. `Trimming`: versions older than `keepVersions` are trimmed in Vault.

use chrono::{DateTime, Duration, Utc};

use crate::crd::{Phase, TenantKeyState};
use crate::schedule::retry_at;

/// The policy that applies to a tenant, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Effective {
    /// The rotation period.
    pub period: Duration,
    /// Raise `min_decryption_version` once rewrapped.
    pub raise_minimum: bool,
    /// Old versions kept.
    pub keep_versions: u64,
    /// Start nothing.
    pub suspend: bool,
    /// Plan only.
    pub dry_run: bool,
}

/// What Vault and the services report for a tenant now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// Vault's latest version of the tenant key.
    pub latest_version: u64,
    /// When that version was created.
    pub latest_created: DateTime<Utc>,
    /// Vault's `min_decryption_version`.
    pub min_decryption_version: u64,
    /// The lead vault's data-key re-wrap still running.
    pub data_key_rewrap_running: bool,
}

/// The next thing to do for a tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Not due; look again at `at`.
    NotDue {
        /// When the rotation falls due.
        at: DateTime<Utc>,
    },
    /// Due, but the policy is suspended.
    Suspended,
    /// Due, and the policy is a dry run: report it.
    WouldRotate,
    /// Start: record `key_version` (the version before) and rotate.
    Start,
    /// Failed lately; retry at `at`.
    BackOff {
        /// When.
        at: DateTime<Utc>,
    },
    /// Rotate the tenant key in Vault.
    RotateTenantKey,
    /// Vault is already past the recorded version (a restart after the
    /// rotation): go on to rewrapping under `version`.
    AlreadyRotated {
        /// Vault's latest version.
        version: u64,
    },
    /// Ask the lead vault and recordings to rewrap under the latest version.
    Rewrap,
    /// Ask the lead vault for a new tenant data key.
    RotateDataKey,
    /// The data key's background re-wrap is running: look again soon.
    AwaitRewrap,
    /// Set Vault's `min_decryption_version` to `to`.
    RaiseMinimum {
        /// The new minimum.
        to: u64,
    },
    /// Delete the versions below `to` in Vault (idempotent: trimming to
    /// the same version again changes nothing).
    Trim {
        /// The new minimum available version.
        to: u64,
    },
    /// The rotation is complete.
    Done,
}

/// When a tenant's next rotation is due.
pub fn due_at(policy: &Effective, observed: &Observed) -> DateTime<Utc> {
    observed.latest_created + policy.period
}

/// The next step for a tenant with recorded progress `state` (none when
/// no rotation is in progress); `rotate_now` when the policy's
/// `rotate-now` annotation carries a value not yet acted on.
pub fn next(
    policy: &Effective,
    state: Option<&TenantKeyState>,
    observed: &Observed,
    rotate_now: bool,
    now: DateTime<Utc>,
) -> Step {
    let Some(state) = state.filter(|s| s.phase.is_some()) else {
        return idle(policy, observed, rotate_now, now);
    };
    if state.failures > 0
        && let Some(last) = state.last_failure_time.as_deref().and_then(|t| t.parse::<DateTime<Utc>>().ok())
    {
        let at = retry_at(state.failures, last);
        if now < at {
            return Step::BackOff { at };
        }
    }
    match state.phase {
        Some(Phase::RotatingTenantKey) if observed.latest_version > state.key_version => {
            Step::AlreadyRotated { version: observed.latest_version }
        }
        Some(Phase::RotatingTenantKey) => Step::RotateTenantKey,
        Some(Phase::Rewrapping) => Step::Rewrap,
        Some(Phase::RotatingDataKey) => Step::RotateDataKey,
        Some(Phase::AwaitingRewrap) if observed.data_key_rewrap_running => Step::AwaitRewrap,
        Some(Phase::AwaitingRewrap) | Some(Phase::RaisingMinimum) => after_rewrap(policy, state, observed),
        Some(Phase::Trimming) | None => trim(policy, state, observed),
    }
}

/// No rotation in progress: due (by period or on request), or not.
fn idle(policy: &Effective, observed: &Observed, rotate_now: bool, now: DateTime<Utc>) -> Step {
    let at = due_at(policy, observed);
    if !rotate_now && now < at {
        return Step::NotDue { at };
    }
    if policy.suspend {
        Step::Suspended
    } else if policy.dry_run {
        Step::WouldRotate
    } else {
        Step::Start
    }
}

/// Everything is rewrapped: raise the minimum, or go on to trimming.
fn after_rewrap(policy: &Effective, state: &TenantKeyState, observed: &Observed) -> Step {
    if policy.raise_minimum && observed.min_decryption_version < state.key_version {
        return Step::RaiseMinimum { to: state.key_version };
    }
    trim(policy, state, observed)
}

/// Trim versions older than the kept ones; never above the minimum
/// decryption version (Vault refuses that), never the current version.
fn trim(policy: &Effective, state: &TenantKeyState, observed: &Observed) -> Step {
    let keep_from = state.key_version.saturating_sub(policy.keep_versions).max(1);
    let to = keep_from.min(observed.min_decryption_version.max(1));
    if to > 1 { Step::Trim { to } } else { Step::Done }
}

#[cfg(test)]
mod tests;

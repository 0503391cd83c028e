//! One step of one tenant's rotation: observe, ask [`rotation::next`],
//! make the call, and return the progress to record. The caller records
//! it (in the policy's status) before the next step, so a restart repeats
//! at most the step in flight; every step is idempotent.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::crd::{Phase, TenantKeyState};
use crate::mesh::{KeyMesh, MeshError};
use crate::rotation::{self, Effective, Step};

/// What a step reports, as a Kubernetes event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// CamelCase: `RotationStarted`, `TenantKeyRotated`, `Rewrapped`,
    /// `DataKeyRotated`, `MinimumRaised`, `RotationSucceeded`, `RotationFailed`.
    pub reason: &'static str,
    /// For people; names the tenant and versions, never personal data.
    pub note: String,
    /// A warning rather than a normal event.
    pub warning: bool,
}

/// What one call to [`advance`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advanced {
    /// The step the planner chose.
    pub step: Step,
    /// The progress to record; `None` when no rotation is in progress.
    pub state: Option<TenantKeyState>,
    /// Whether this step finished a rotation.
    pub finished: bool,
    /// What to tell, if anything.
    pub event: Option<Event>,
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Advances `tenant`'s rotation by one step.
pub async fn advance(
    mesh: &impl KeyMesh,
    policy: &Effective,
    tenant: &str,
    state: Option<TenantKeyState>,
    rotate_now: bool,
    now: DateTime<Utc>,
) -> Advanced {
    let (observed, rewrap) = match mesh.observe(tenant, now).await {
        Ok(o) => o,
        Err(e) => return failed(tenant, state, Step::BackOff { at: now }, &e, now),
    };
    let step = rotation::next(policy, state.as_ref(), &observed, rotate_now, now);
    if matches!(step, Step::NotDue { .. } | Step::Suspended | Step::WouldRotate | Step::BackOff { .. }) {
        return Advanced { step, state, finished: false, event: None };
    }
    let mut s = state
        .filter(|s| s.phase.is_some())
        .unwrap_or_else(|| TenantKeyState::idle(tenant, observed.latest_version, observed.min_decryption_version));
    if step == Step::Start {
        s.started = Some(stamp(now));
    }
    let (phase, told) = match effect(mesh, tenant, &step, &mut s, rewrap).await {
        Ok(done) => done,
        Err(e) => return failed(tenant, Some(s), step, &e, now),
    };
    let event = |(reason, what): (&'static str, String)| Event {
        reason,
        note: format!("tenant {tenant}: {what}"),
        warning: false,
    };
    (s.failures, s.last_failure_time, s.phase) = (0, None, phase);
    s.message.clear();
    if phase.is_none() {
        let done = ("RotationSucceeded", format!("rotation to key version {} complete", s.key_version));
        return Advanced { step, state: None, finished: true, event: Some(event(done)) };
    }
    Advanced { step, state: Some(s), finished: false, event: told.map(event) }
}

/// Makes the step's call and updates the progress; returns the phase that
/// follows (none once done) and what to tell.
async fn effect(
    mesh: &impl KeyMesh,
    tenant: &str,
    step: &Step,
    s: &mut TenantKeyState,
    rewrap: crate::mesh::Rewrap,
) -> Result<(Option<Phase>, Option<(&'static str, String)>), MeshError> {
    Ok(match step {
        Step::Start => {
            let what = format!("rotation from key version {} started", s.key_version);
            (Some(Phase::RotatingTenantKey), Some(("RotationStarted", what)))
        }
        Step::RotateTenantKey => {
            s.key_version = mesh.rotate_tenant_key(tenant).await?;
            (
                Some(Phase::Rewrapping),
                Some(("TenantKeyRotated", format!("tenant key rotated to version {}", s.key_version))),
            )
        }
        Step::AlreadyRotated { version } => {
            s.key_version = *version;
            (Some(Phase::Rewrapping), None)
        }
        Step::Rewrap => {
            let (v, vault, recordings) = mesh.rewrap(tenant).await?;
            if v < s.key_version {
                let message = format!("rewrapped under version {v}, not {}", s.key_version);
                return Err(MeshError::Service {
                    service: "lead-vault",
                    code: tonic::Code::FailedPrecondition,
                    message,
                });
            }
            let what = format!("{vault} vault and {recordings} recordings data keys rewrapped under version {v}");
            (Some(Phase::RotatingDataKey), Some(("Rewrapped", what)))
        }
        Step::RotateDataKey => {
            let r = mesh.rotate_data_key(tenant).await?;
            (s.rewrap_done, s.rewrap_total) = (r.done, r.total);
            let what = format!("new tenant data key; {} record keys to re-wrap", r.total);
            (Some(Phase::AwaitingRewrap), Some(("DataKeyRotated", what)))
        }
        Step::AwaitRewrap => {
            (s.rewrap_done, s.rewrap_total) = (rewrap.done, rewrap.total);
            (Some(Phase::AwaitingRewrap), None)
        }
        Step::RaiseMinimum { to } => {
            mesh.raise_minimum(tenant, *to).await?;
            s.min_decryption_version = *to;
            (Some(Phase::Trimming), Some(("MinimumRaised", format!("versions below {to} no longer decrypt"))))
        }
        Step::Trim { to } => {
            mesh.trim(tenant, *to).await?;
            (None, None)
        }
        Step::Done | Step::NotDue { .. } | Step::Suspended | Step::WouldRotate | Step::BackOff { .. } => (None, None),
    })
}

/// A failed step: counted, stamped and reported; the planner backs off.
fn failed(tenant: &str, state: Option<TenantKeyState>, step: Step, e: &MeshError, now: DateTime<Utc>) -> Advanced {
    let Some(mut s) = state.filter(|s| s.phase.is_some()) else {
        // Nothing in progress (observing failed): nothing to record.
        let event = Event { reason: "RotationFailed", note: format!("tenant {tenant}: {e}"), warning: true };
        return Advanced { step, state: None, finished: false, event: Some(event) };
    };
    s.failures = s.failures.saturating_add(1);
    s.last_failure_time = Some(stamp(now));
    s.message = e.to_string();
    let note = format!(
        "tenant {tenant}: {:?} failed ({} in a row): {e}",
        s.phase.unwrap_or(Phase::RotatingTenantKey),
        s.failures
    );
    Advanced {
        step,
        state: Some(s),
        finished: false,
        event: Some(Event { reason: "RotationFailed", note, warning: true }),
    }
}

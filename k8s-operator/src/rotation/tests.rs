//! Every combination of schedule, progress and service answers the
//! rotation planner meets.

use super::*;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().expect("rfc3339")
}

fn policy() -> Effective {
    Effective { period: Duration::days(30), raise_minimum: true, keep_versions: 2, suspend: false, dry_run: false }
}

/// Version 3 of the key, created on 2026-11-01.
fn vault() -> Observed {
    Observed {
        latest_version: 3,
        latest_created: t("2026-11-01T00:00:00Z"),
        min_decryption_version: 1,
        data_key_rewrap_running: false,
    }
}

fn at(phase: Phase, key_version: u64) -> TenantKeyState {
    TenantKeyState { phase: Some(phase), ..TenantKeyState::idle("t-1", key_version, 1) }
}

#[test]
fn an_idle_tenant_waits_for_its_period_unless_asked_now() {
    let before = t("2026-11-30T23:59:59Z");
    assert_eq!(next(&policy(), None, &vault(), false, before), Step::NotDue { at: t("2026-12-01T00:00:00Z") });
    assert_eq!(next(&policy(), None, &vault(), true, before), Step::Start, "rotate-now");
    assert_eq!(next(&policy(), None, &vault(), false, t("2026-12-01T00:00:00Z")), Step::Start, "due to the second");
    // A finished state (no phase) is idle too.
    let done = TenantKeyState { phase: None, ..at(Phase::Trimming, 4) };
    assert_eq!(next(&policy(), Some(&done), &vault(), false, before), Step::NotDue { at: t("2026-12-01T00:00:00Z") });
}

#[test]
fn suspend_and_dry_run_start_nothing_but_say_so() {
    let due = t("2026-12-02T00:00:00Z");
    let suspended = Effective { suspend: true, ..policy() };
    assert_eq!(next(&suspended, None, &vault(), true, due), Step::Suspended);
    let dry = Effective { dry_run: true, ..policy() };
    assert_eq!(next(&dry, None, &vault(), false, due), Step::WouldRotate);
    // Suspending does not freeze a rotation halfway: its steps go on.
    assert_eq!(next(&suspended, Some(&at(Phase::Rewrapping, 4)), &vault(), false, due), Step::Rewrap);
}

#[test]
fn each_phase_leads_to_its_step() {
    let now = t("2026-12-02T00:00:00Z");
    let p = policy();
    assert_eq!(next(&p, Some(&at(Phase::RotatingTenantKey, 3)), &vault(), false, now), Step::RotateTenantKey);
    assert_eq!(next(&p, Some(&at(Phase::Rewrapping, 4)), &vault(), false, now), Step::Rewrap);
    assert_eq!(next(&p, Some(&at(Phase::RotatingDataKey, 4)), &vault(), false, now), Step::RotateDataKey);
    let running = Observed { data_key_rewrap_running: true, ..vault() };
    assert_eq!(next(&p, Some(&at(Phase::AwaitingRewrap, 4)), &running, false, now), Step::AwaitRewrap);
    let v4 = Observed { latest_version: 4, ..vault() };
    assert_eq!(next(&p, Some(&at(Phase::AwaitingRewrap, 4)), &v4, false, now), Step::RaiseMinimum { to: 4 });
}

#[test]
fn a_restart_after_vault_rotated_does_not_rotate_twice() {
    let now = t("2026-12-02T00:00:00Z");
    // Recorded at the start: version 3. Vault now has 4: the rotation happened.
    let v4 = Observed { latest_version: 4, ..vault() };
    assert_eq!(
        next(&policy(), Some(&at(Phase::RotatingTenantKey, 3)), &v4, false, now),
        Step::AlreadyRotated { version: 4 }
    );
}

#[test]
fn the_minimum_rises_only_when_asked_and_trimming_keeps_the_kept_versions() {
    let now = t("2026-12-02T00:00:00Z");
    let v5 = Observed { latest_version: 5, min_decryption_version: 1, ..vault() };
    let state = at(Phase::AwaitingRewrap, 5);
    assert_eq!(next(&policy(), Some(&state), &v5, false, now), Step::RaiseMinimum { to: 5 });
    // Raised: trim to keep versions 3 and 4 beside 5.
    let raised = Observed { min_decryption_version: 5, ..v5.clone() };
    assert_eq!(next(&policy(), Some(&at(Phase::RaisingMinimum, 5)), &raised, false, now), Step::Trim { to: 3 });
    // A restart while trimming trims again to the same version (idempotent).
    assert_eq!(next(&policy(), Some(&at(Phase::Trimming, 5)), &raised, false, now), Step::Trim { to: 3 });
    // Without raising the minimum, Vault keeps version 1 decryptable, so nothing can be trimmed.
    let keep_all = Effective { raise_minimum: false, ..policy() };
    assert_eq!(next(&keep_all, Some(&state), &v5, false, now), Step::Done);
    // Keeping more versions than exist trims nothing.
    let keep_many = Effective { keep_versions: 10, ..policy() };
    let raised = Observed { min_decryption_version: 5, ..v5 };
    assert_eq!(next(&keep_many, Some(&at(Phase::Trimming, 5)), &raised, false, now), Step::Done);
}

#[test]
fn a_failing_tenant_backs_off_from_its_last_failure() {
    let failed = TenantKeyState {
        failures: 3,
        last_failure_time: Some("2026-12-02T00:00:00Z".into()),
        ..at(Phase::Rewrapping, 4)
    };
    let p = policy();
    assert_eq!(
        next(&p, Some(&failed), &vault(), false, t("2026-12-02T00:03:59Z")),
        Step::BackOff { at: t("2026-12-02T00:04:00Z") }
    );
    assert_eq!(next(&p, Some(&failed), &vault(), false, t("2026-12-02T00:04:00Z")), Step::Rewrap);
}

//! The operator's rotation against the real mesh: OpenBao transit,
//! PostgreSQL, the lead vault and recordings over mTLS, called as the
//! `operator` identity; the Kubernetes API is not involved (the status the
//! controller would write is kept here, serialised as it would be).

use chrono::Utc;
use guardline_journeys as journeys;
use guardline_operator::crd::{Phase, TenantKeyState};
use guardline_operator::executor::{Advanced, advance};
use guardline_operator::mesh::Mesh;

mod support;
use guardline_operator::rotation::{Effective, Step};
use guardline_testmesh::TestMesh;

/// A tenant with three leads and a recording, on the whole mesh.
async fn tenant() -> (TestMesh, journeys::Org, Vec<String>, String) {
    let t = support::start().await;
    let j = &t;
    let org = journeys::onboard(j, "Rotated").await.expect("onboarding");
    let mut leads = Vec::new();
    for i in 0..3 {
        leads.push(journeys::consented_lead(j, &org, &format!("+86139123460{i:02}")).await.expect("lead"));
    }
    let rec = journeys::upload_recording(j, &org, &leads[0], None).await.expect("recording").id;
    journeys::rotation::everything_reads(j, &org, &leads, &rec).await.expect("reads before");
    (t, org, leads, rec)
}

fn policy(keep_versions: u64) -> Effective {
    Effective { period: chrono::Duration::days(30), raise_minimum: true, keep_versions, suspend: false, dry_run: false }
}

/// Steps until the rotation finishes (or `stop` says to stop); the state
/// goes through JSON after every step, as it would through the status.
async fn run(
    mesh: &Mesh,
    policy: &Effective,
    tenant: &str,
    mut state: Option<TenantKeyState>,
    mut rotate_now: bool,
    stop: impl Fn(&Advanced) -> bool,
) -> (Vec<Advanced>, Option<TenantKeyState>) {
    let mut seen = Vec::new();
    for _ in 0..400 {
        let a = advance(mesh, policy, tenant, state.take(), rotate_now, Utc::now()).await;
        rotate_now = false;
        let json = serde_json::to_string(&a.state).expect("status json");
        state = serde_json::from_str(&json).expect("status json");
        let (finished, waiting) = (a.finished, a.step == Step::AwaitRewrap);
        assert!(a.event.as_ref().is_none_or(|e| !e.warning), "a step failed: {a:?}");
        let stopped = stop(&a);
        seen.push(a);
        if finished || stopped {
            return (seen, state);
        }
        if waiting {
            // The re-wrap runs in the lead vault; its status is the event to wait for.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    panic!("the rotation did not finish: {seen:?}");
}

fn reasons(steps: &[Advanced]) -> Vec<&'static str> {
    steps.iter().filter_map(|a| a.event.as_ref().map(|e| e.reason)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_rotates_in_openbao_and_everything_reads_with_old_versions_retired() {
    let (t, org, leads, rec) = tenant().await;
    let mesh = support::operator(&t).await;
    let p = policy(1);
    // Not due yet: a new key was made today.
    let idle = advance(&mesh, &p, &org.tenant, None, false, Utc::now()).await;
    assert!(matches!(idle.step, Step::NotDue { .. }) && idle.state.is_none(), "{idle:?}");

    // Rotate now: version 2, everything rewrapped, versions below 2 unusable.
    let (steps, state) = run(&mesh, &p, &org.tenant, None, true, |_| false).await;
    assert_eq!(
        reasons(&steps),
        ["RotationStarted", "TenantKeyRotated", "Rewrapped", "DataKeyRotated", "MinimumRaised", "RotationSucceeded"]
    );
    assert!(state.is_none());
    let v = mesh.keys.versions(&org.tenant).await.expect("versions");
    assert_eq!((v.latest, v.min_decryption), (2, 2));
    journeys::rotation::everything_reads(&t, &org, &leads, &rec).await.expect("reads with version 1 retired");

    // Again: version 3, and version 1 trimmed (one old version kept).
    let (steps, _) = run(&mesh, &p, &org.tenant, None, true, |_| false).await;
    assert!(steps.iter().any(|a| a.step == Step::Trim { to: 2 }), "{steps:?}");
    let v = mesh.keys.versions(&org.tenant).await.expect("versions");
    assert_eq!((v.latest, v.min_decryption), (3, 3));
    assert!(mesh.keys.set_min_decryption_version(&org.tenant, 1).await.is_err(), "version 1 is gone from OpenBao");
    journeys::rotation::everything_reads(&t, &org, &leads, &rec).await.expect("reads after the trim");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_stopped_at_any_step_finishes_from_where_it_stopped() {
    let (t, org, leads, rec) = tenant().await;
    let p = policy(2);
    // Stopped right after Vault rotated, before the status was written: the
    // restarted operator holds the state from before the rotation.
    let first = support::operator(&t).await;
    let (steps, before) = run(&first, &p, &org.tenant, None, true, |a| a.step == Step::Start).await;
    assert_eq!(reasons(&steps), ["RotationStarted"]);
    let before = before.expect("in progress");
    assert_eq!((before.phase, before.key_version), (Some(Phase::RotatingTenantKey), 1));
    let rotated = advance(&first, &p, &org.tenant, Some(before.clone()), false, Utc::now()).await;
    assert_eq!(rotated.step, Step::RotateTenantKey);
    drop((first, rotated));

    // The restarted operator sees Vault past the recorded version: no second rotation.
    let second = support::operator(&t).await;
    let resumed = advance(&second, &p, &org.tenant, Some(before), false, Utc::now()).await;
    assert_eq!(resumed.step, Step::AlreadyRotated { version: 2 });
    // Stopped again in the middle of the data key's re-wrap.
    let (_, mid) = run(&second, &p, &org.tenant, resumed.state, false, |a| {
        a.state.as_ref().and_then(|s| s.phase) == Some(Phase::AwaitingRewrap)
    })
    .await;
    drop(second);

    let third = support::operator(&t).await;
    let (steps, done) = run(&third, &p, &org.tenant, mid, false, |_| false).await;
    assert!(done.is_none() && steps.last().is_some_and(|a| a.finished), "{steps:?}");
    let v = third.keys.versions(&org.tenant).await.expect("versions");
    assert_eq!((v.latest, v.min_decryption), (2, 2), "rotated once, retired once");
    journeys::rotation::everything_reads(&t, &org, &leads, &rec).await.expect("reads after the restarts");
}

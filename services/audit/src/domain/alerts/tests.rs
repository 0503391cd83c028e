//! Unit tests of the alert rules.

use chrono::TimeZone;

use super::*;

fn at(s: i64) -> DateTime<Utc> {
    // Wednesday 2026-11-25 02:00 UTC = 10:00 in Shanghai.
    Utc.with_ymd_and_hms(2026, 11, 25, 2, 0, 0).single().expect("time") + Duration::seconds(s)
}

fn ev(action: &str, outcome: &str, t: i64, actor: &str) -> Event {
    Event {
        id: format!("{action}-{t}-{actor}"),
        tenant_id: "t1".into(),
        time: at(t),
        actor_user: actor.into(),
        actor_service: "spiffe://guardline.local/ns/guardline/sa/lead-vault".into(),
        action: action.into(),
        outcome: outcome.into(),
        ..Default::default()
    }
}

/// Arrival times only matter for delivery gaps; elsewhere any instant does.
const NOW: DateTime<Utc> = DateTime::<Utc>::MIN_UTC;

fn small() -> Thresholds {
    Thresholds {
        bulk_records: 100,
        bulk_window_secs: 3600,
        failed_logins: 5,
        failed_login_window_secs: 600,
        modifications: 10,
        modification_window_secs: 600,
        delivery_gap_secs: 900,
    }
}

fn rules(v: &[Raised]) -> Vec<&'static str> {
    v.iter().map(|r| r.rule).collect()
}

fn export(t: i64, actor: &str, count: u64) -> Event {
    let mut e = ev("lead.export", "allowed", t, actor);
    e.details.insert("count".into(), count.to_string());
    e
}

#[test]
fn bulk_export_fires_above_the_threshold_and_not_at_it() {
    let mut d = Detector::new();
    assert!(d.observe(&export(0, "u1", 60), NOW, &small(), None).is_empty());
    assert!(d.observe(&export(10, "u1", 40), NOW, &small(), None).is_empty(), "exactly 100 records: quiet");
    let fired = d.observe(&export(20, "u1", 1), NOW, &small(), None);
    assert_eq!(rules(&fired), vec!["bulk_access"]);
    assert_eq!(fired[0].event_ids.len(), 3);
    assert_eq!(fired[0].actor_user, "u1");
}

#[test]
fn bulk_counts_reveals_per_actor_within_the_window() {
    let mut d = Detector::new();
    for i in 0..100 {
        assert!(d.observe(&ev("lead.reveal", "allowed", i, "u1"), NOW, &small(), None).is_empty());
        assert!(
            d.observe(&ev("lead.reveal", "allowed", i, "u2"), NOW, &small(), None).is_empty(),
            "another actor's count is separate"
        );
    }
    // The first reveal left the window as this one came in: still 100.
    assert!(d.observe(&ev("lead.reveal", "allowed", 3600, "u1"), NOW, &small(), None).is_empty());
    // A second one in the same second is the 101st within the hour.
    let mut extra = ev("lead.reveal", "allowed", 3600, "u1");
    extra.id = "extra".into();
    assert_eq!(rules(&d.observe(&extra, NOW, &small(), None)), vec!["bulk_access"]);
}

#[test]
fn modification_bursts() {
    let mut d = Detector::new();
    for i in 0..10 {
        assert!(
            d.observe(
                &ev(if i % 2 == 0 { "lead.update" } else { "lead.delete" }, "allowed", i, "u1"),
                NOW,
                &small(),
                None
            )
            .is_empty()
        );
    }
    assert_eq!(
        rules(&d.observe(&ev("lead.update", "allowed", 11, "u1"), NOW, &small(), None)),
        vec!["modification_burst"]
    );
    // Denied changes are not changes.
    let mut d = Detector::new();
    for i in 0..20 {
        assert!(d.observe(&ev("lead.update", "denied", i, "u1"), NOW, &small(), None).is_empty());
    }
}

#[test]
fn failed_login_bursts() {
    let mut d = Detector::new();
    for i in 0..5 {
        assert!(d.observe(&ev("identity.login", "denied", i, &format!("u{i}")), NOW, &small(), None).is_empty());
    }
    assert!(
        d.observe(&ev("identity.login", "allowed", 6, "u9"), NOW, &small(), None).is_empty(),
        "successes do not count"
    );
    assert_eq!(
        rules(&d.observe(&ev("identity.login", "denied", 7, "u7"), NOW, &small(), None)),
        vec!["failed_login_burst"]
    );
}

#[test]
fn risky_logins_reported_by_identity() {
    let mut d = Detector::new();
    let mut e = ev("identity.login.risky", "allowed", 0, "u1");
    e.details.insert("risk_level".into(), "low".into());
    e.details.insert("risk_reasons".into(), "new_device".into());
    let fired = d.observe(&e, NOW, &small(), None);
    assert_eq!(rules(&fired), vec!["risky_login"]);
    assert_eq!(fired[0].summary, "low risk login: new_device");
    assert!(
        d.observe(&ev("identity.login", "allowed", 1, "u1"), NOW, &small(), None).is_empty(),
        "an ordinary login is quiet"
    );
}

#[test]
fn off_hours_access_in_the_tenants_time_zone() {
    let cal = Calendar {
        tz: chrono_tz::Asia::Shanghai,
        hours: vec![Hours { weekdays: vec![1, 2, 3, 4, 5], start_minute: 8 * 60, end_minute: 20 * 60 }],
    };
    let mut d = Detector::new();
    // 11:59:59 UTC is 19:59:59 local: working; 12:00:00 UTC is 20:00 local: not.
    assert!(d.observe(&ev("lead.read", "allowed", 10 * 3600 - 1, "u1"), NOW, &small(), Some(&cal)).is_empty());
    assert_eq!(
        rules(&d.observe(&ev("lead.read", "allowed", 10 * 3600, "u1"), NOW, &small(), Some(&cal))),
        vec!["off_hours_access"]
    );
    assert!(
        d.observe(&ev("identity.login", "allowed", 10 * 3600, "u1"), NOW, &small(), Some(&cal)).is_empty(),
        "not data access"
    );
}

#[test]
fn delivery_gaps() {
    let mut d = Detector::new();
    let acting = |mut e: Event| {
        e.details.insert("acting_service".into(), "spiffe://guardline.local/ns/guardline/sa/call-platform".into());
        e
    };
    // A writer's own events (a user acted) arm nothing: users go home.
    d.observe(&ev("lead.read", "allowed", 0, "u1"), at(0), &small(), None);
    assert!(d.check_gaps(at(5000), |_| small()).is_empty(), "no acting service, no gap");
    let mut d = Detector::new();
    d.observe(&acting(ev("lead.read", "allowed", 0, "")), at(0), &small(), None);
    assert!(d.check_gaps(at(900), |_| small()).is_empty(), "exactly the threshold: quiet");
    let fired = d.check_gaps(at(901), |_| small());
    assert_eq!(rules(&fired), vec!["delivery_gap"]);
    assert!(fired[0].actor_service.ends_with("/sa/call-platform"));
    assert!(d.check_gaps(at(2000), |_| small()).is_empty(), "raised once");
    // Delivery resumes with an old event (a replayed backlog): arrival is what counts.
    d.observe(&acting(ev("lead.read", "allowed", 5, "")), at(2001), &small(), None);
    assert_eq!(
        rules(&d.check_gaps(at(2002 + 900), |_| small())),
        vec!["delivery_gap"],
        "re-armed after delivery resumed"
    );
}

#[test]
fn throttled_caller_lines_reported_by_the_dialer() {
    let mut d = Detector::new();
    let mut e = ev("dialer.line.throttled", "allowed", 0, "");
    e.details.insert("reason".into(), "3 complaints in 24 h (limit 3)".into());
    let fired = d.observe(&e, NOW, &small(), None);
    assert_eq!(rules(&fired), vec!["line_throttled"]);
    assert_eq!(fired[0].summary, "caller line throttled: 3 complaints in 24 h (limit 3)");
}

#[test]
fn a_missing_holiday_calendar_reported_by_the_dialer() {
    let mut d = Detector::new();
    let mut e = ev("dialer.calendar.missing", "allowed", 0, "");
    e.details.insert("pack".into(), "cn".into());
    e.details.insert("year".into(), "2027".into());
    let fired = d.observe(&e, NOW, &small(), None);
    assert_eq!(rules(&fired), vec!["calendar_missing"]);
    assert_eq!(fired[0].summary, "no official 2027 holiday calendar is loaded for pack cn: fixed-date holidays only");
}

#[test]
fn overdue_erasures_reported_by_the_operator() {
    let mut d = Detector::new();
    let mut e = ev("erasure.overdue", "allowed", 0, "");
    e.details.insert("count".into(), "2".into());
    let fired = d.observe(&e, NOW, &small(), None);
    assert_eq!(rules(&fired), vec!["erasure_overdue"]);
    assert_eq!(fired[0].summary, "2 erasure cases are past their deadline");
}

#[test]
fn a_second_factor_reset_raises_an_alert() {
    let mut d = Detector::new();
    let mut e = ev("identity.totp.reset", "allowed", 0, "admin");
    e.details.insert("reason".into(), "lost phone".into());
    let fired = d.observe(&e, NOW, &small(), None);
    assert_eq!(rules(&fired), vec!["second_factor_reset"]);
    assert!(!fired[0].summary.contains("lost phone"), "the free-text reason stays in the event");
}

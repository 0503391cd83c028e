//! Unit tests of the risk assessment.

use chrono::TimeZone;

use super::*;

fn at(h: u32, m: u32) -> DateTime<Utc> {
    // Wednesday 2026-11-25, in UTC; Asia/Shanghai is UTC+8.
    Utc.with_ymd_and_hms(2026, 11, 25, h, m, 0).single().expect("valid time")
}

fn site(when: DateTime<Utc>, ip: &str, device: &str, region: &str) -> LoginSite {
    LoginSite { at: when, network: network_of(ip), device: device.into(), region: region.into() }
}

fn office_hours() -> Vec<WorkingHours> {
    vec![WorkingHours { weekdays: vec![1, 2, 3, 4, 5], start_minute: 8 * 60, end_minute: 20 * 60 }]
}

fn shanghai() -> chrono_tz::Tz {
    chrono_tz::Asia::Shanghai
}

/// Ten days of ordinary logins from the office in Shanghai (02:00 UTC = 10:00 local).
fn history() -> Vec<LoginSite> {
    (1..=10).map(|d| site(at(2, 0) - chrono::Duration::days(d), "203.0.113.7", "laptop-1", "CN-31")).collect()
}

fn assess_now(current: LoginSite) -> Assessment {
    assess(&current, &history(), shanghai(), &office_hours())
}

#[test]
fn an_ordinary_login_has_no_risk() {
    let a = assess_now(site(at(2, 0), "203.0.113.99", "laptop-1", "CN-31"));
    assert_eq!(a, Assessment { level: RiskLevel::None, reasons: vec![] }, "same /24, device and region");
}

#[test]
fn a_new_network_is_low_risk() {
    let a = assess_now(site(at(2, 0), "198.51.100.4", "laptop-1", "CN-31"));
    assert_eq!((a.level, a.reasons), (RiskLevel::Low, vec!["new_network".to_owned()]));
}

#[test]
fn a_new_device_is_low_risk() {
    let a = assess_now(site(at(2, 0), "203.0.113.7", "phone-9", "CN-31"));
    assert_eq!((a.level, a.reasons), (RiskLevel::Low, vec!["new_device".to_owned()]));
}

#[test]
fn a_new_region_within_reach_is_medium_risk() {
    // Hangzhou is 165 km from Shanghai; the last login was a day ago.
    let a = assess_now(site(at(2, 0), "203.0.113.7", "laptop-1", "CN-33"));
    assert_eq!((a.level, a.reasons), (RiskLevel::Medium, vec!["new_region".to_owned()]));
}

#[test]
fn impossible_travel_is_high_risk() {
    // Shanghai yesterday at 02:00 UTC, New York today at 02:00 UTC: 11,800 km in 24 h is fine...
    let fine = assess_now(site(at(2, 0), "203.0.113.7", "laptop-1", "US-NY"));
    assert!(!fine.reasons.contains(&"impossible_travel".to_owned()), "{fine:?}");
    // ...but not within two hours of a Shanghai login.
    let mut h = history();
    h.push(site(at(1, 0), "203.0.113.7", "laptop-1", "CN-31"));
    let a = assess(&site(at(3, 0), "203.0.113.7", "laptop-1", "US-NY"), &h, shanghai(), &office_hours());
    assert_eq!(a.level, RiskLevel::High);
    assert_eq!(a.reasons, vec!["new_region".to_owned(), "impossible_travel".to_owned()]);
}

#[test]
fn a_neighbouring_region_is_new_but_not_impossible_travel() {
    // Shanghai at 01:00, Hangzhou (170 km) a minute later: a new region, no more.
    let mut h = history();
    h.push(site(at(1, 0), "203.0.113.7", "laptop-1", "CN-31"));
    let a = assess(&site(at(1, 1), "203.0.113.7", "laptop-1", "CN-33"), &h, shanghai(), &office_hours());
    assert_eq!((a.level, a.reasons), (RiskLevel::Medium, vec!["new_region".to_owned()]));
}

#[test]
fn off_hours_is_judged_in_the_tenants_time_zone() {
    // 13:00 UTC is 21:00 in Shanghai, after 20:00.
    let a = assess_now(site(at(13, 0), "203.0.113.7", "laptop-1", "CN-31"));
    assert_eq!((a.level, a.reasons), (RiskLevel::Low, vec!["off_hours".to_owned()]));
    // 11:59 UTC is 19:59 local: still working hours; 12:00 UTC is 20:00: not.
    assert!(within_working_hours(at(11, 59), shanghai(), &office_hours()));
    assert!(!within_working_hours(at(12, 0), shanghai(), &office_hours()));
    // 00:00 UTC is 08:00 local: the first working minute.
    assert!(within_working_hours(at(0, 0), shanghai(), &office_hours()));
}

#[test]
fn many_signals_add_up_to_high() {
    let a = assess_now(site(at(13, 0), "198.51.100.4", "phone-9", "CN-33"));
    assert_eq!(a.level, RiskLevel::High);
    assert_eq!(a.reasons, vec!["new_network", "new_device", "new_region", "off_hours"]);
}

#[test]
fn history_older_than_thirty_days_does_not_count() {
    let old: Vec<LoginSite> =
        (31..=40).map(|d| site(at(2, 0) - chrono::Duration::days(d), "198.51.100.4", "phone-9", "CN-33")).collect();
    let mut h = history();
    h.extend(old);
    let a = assess(&site(at(2, 0), "198.51.100.4", "phone-9", "CN-31"), &h, shanghai(), &office_hours());
    assert_eq!(a.reasons, vec!["new_network", "new_device"], "the old network and device are forgotten");
}

#[test]
fn the_first_login_has_nothing_to_compare_with() {
    let a = assess(&site(at(2, 0), "198.51.100.4", "phone-9", "US-NY"), &[], shanghai(), &office_hours());
    assert_eq!(a.level, RiskLevel::None);
}

#[test]
fn networks_are_slash_24_and_slash_48() {
    assert_eq!(network_of("203.0.113.7"), "203.0.113.0/24");
    assert_eq!(network_of("2001:db8:abcd:12::1"), "2001:db8:abcd::/48");
    assert_eq!(network_of("not an ip"), "");
}

#[test]
fn the_policy_maps_levels_to_actions() {
    let p = RiskPolicy::default();
    assert_eq!(action_for(&p, RiskLevel::None), RiskAction::Allow);
    assert_eq!(action_for(&p, RiskLevel::Low), RiskAction::AllowAndAlert);
    assert_eq!(action_for(&p, RiskLevel::Medium), RiskAction::RequireTotp);
    assert_eq!(action_for(&p, RiskLevel::High), RiskAction::Deny);
}

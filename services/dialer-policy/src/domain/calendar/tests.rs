//! Unit tests of the holiday calendars and the tenant's days.

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

use super::*;
use crate::domain::window::{Packs, WindowOutcome};

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
}

/// The instant of `hh:mm` Beijing time on `date`.
fn beijing(date: NaiveDate, h: u32, m: u32) -> chrono::DateTime<Utc> {
    Tz::Asia__Shanghai.from_local_datetime(&date.and_hms_opt(h, m, 0).expect("time")).single().expect("bj").to_utc()
}

/// The 2026 schedule as the State Council notice of 2025-11-04 words it,
/// transcribed here independently of `packs/cn-2026.json`.
const OFF_2026: [(&str, &str); 7] = [
    ("2026-01-01", "2026-01-03"),
    ("2026-02-15", "2026-02-23"),
    ("2026-04-04", "2026-04-06"),
    ("2026-05-01", "2026-05-05"),
    ("2026-06-19", "2026-06-21"),
    ("2026-09-25", "2026-09-27"),
    ("2026-10-01", "2026-10-07"),
];
const WORKING_2026: [&str; 6] = ["2026-01-04", "2026-02-14", "2026-02-28", "2026-05-09", "2026-09-20", "2026-10-10"];

fn open(p: &crate::domain::window::Pack, at: chrono::DateTime<Utc>) -> bool {
    matches!(p.evaluate(at, &[Tz::Asia__Shanghai], &TenantDays::default()), WindowOutcome::Open(_))
}

#[test]
fn every_day_off_and_every_working_day_of_2026_at_nine_and_one_minute_to_six() {
    let packs = Packs::load(None).expect("packs");
    let cn = packs.get("cn").expect("cn");
    let mut offs = 0;
    for (from, to) in OFF_2026 {
        for d in day(from).iter_days().take_while(|d| *d <= day(to)) {
            offs += 1;
            for (h, m) in [(9, 0), (17, 59)] {
                let at = beijing(d, h, m);
                let WindowOutcome::Closed { reason, .. } =
                    cn.evaluate(at, &[Tz::Asia__Shanghai], &TenantDays::default())
                else {
                    panic!("{d} {h}:{m} is a day off")
                };
                assert!(
                    reason.contains("is a public holiday, ")
                        && reason.ends_with("(State Council notice of 2025-11-04)"),
                    "{reason}"
                );
            }
        }
    }
    assert_eq!(offs, 33, "the notice's days off");
    for d in WORKING_2026.map(day) {
        assert!(open(cn, beijing(d, 9, 0)) && open(cn, beijing(d, 17, 59)), "{d} is a working day");
        assert!(!open(cn, beijing(d, 8, 59)) && !open(cn, beijing(d, 18, 0)), "{d} keeps working hours");
    }
}

#[test]
fn the_spring_festival_names_the_holiday_and_the_working_saturday_opens() {
    let packs = Packs::load(None).expect("packs");
    let cn = packs.get("cn").expect("cn");
    let WindowOutcome::Closed { reason, next } =
        cn.evaluate(beijing(day("2026-02-16"), 10, 0), &[Tz::Asia__Shanghai], &TenantDays::default())
    else {
        panic!("a holiday")
    };
    assert_eq!(
        reason,
        "2026-02-16 in Asia/Shanghai is a public holiday, Spring Festival (State Council notice of 2025-11-04)"
    );
    assert_eq!(next, Some(beijing(day("2026-02-24"), 9, 0)), "the Tuesday after the nine days off");
    assert!(open(cn, beijing(day("2026-02-14"), 10, 0)), "Saturday 2026-02-14 is a working day");
    assert!(!open(cn, beijing(day("2026-02-07"), 10, 0)), "an ordinary Saturday is not");
    // A deferral on the Friday before a working Saturday opens on that Saturday.
    let WindowOutcome::Closed { next, .. } =
        cn.evaluate(beijing(day("2026-02-13"), 19, 0), &[Tz::Asia__Shanghai], &TenantDays::default())
    else {
        panic!("after hours")
    };
    assert_eq!(next, Some(beijing(day("2026-02-14"), 9, 0)));
}

#[test]
fn a_year_without_its_notice_falls_back_to_fixed_dates_and_says_so() {
    let packs = Packs::load(None).expect("packs");
    let cn = packs.get("cn").expect("cn");
    let WindowOutcome::Open(why) =
        cn.evaluate(beijing(day("2028-03-01"), 10, 0), &[Tz::Asia__Shanghai], &TenantDays::default())
    else {
        panic!("a Wednesday")
    };
    assert_eq!(why, "10:00 CST is inside 09:00–18:00; fixed-date holidays only: no official 2028 calendar is loaded");
    let WindowOutcome::Closed { reason, .. } =
        cn.evaluate(beijing(day("2028-10-02"), 10, 0), &[Tz::Asia__Shanghai], &TenantDays::default())
    else {
        panic!("National Day, by the fixed-date rule")
    };
    assert_eq!(
        reason,
        "2028-10-02 in Asia/Shanghai is a public holiday; fixed-date holidays only: no official 2028 calendar is loaded"
    );
    // From 1 December, a missing next-year calendar is reported.
    assert_eq!(cn.days().missing_year(day("2026-11-30")), None);
    assert_eq!(cn.days().missing_year(day("2026-12-01")), Some(2027));
    assert_eq!(cn.days().missing_year(day("2028-05-01")), Some(2028));
    assert_eq!(packs.get("us-tcpa").expect("tcpa").days().missing_year(day("2026-12-01")), None, "keeps none");
}

#[test]
fn a_tenant_adds_days_off_and_working_days_but_never_opens_an_official_day_off() {
    let packs = Packs::load(None).expect("packs");
    let cn = packs.get("cn").expect("cn");
    let tenant = TenantDays {
        off: vec![Holiday::parse("2026-03-03").expect("day")],
        working: vec![day("2026-03-07"), day("2026-10-02")],
    };
    let eval = |d: &str| cn.evaluate(beijing(day(d), 10, 0), &[Tz::Asia__Shanghai], &tenant);
    let WindowOutcome::Closed { reason, .. } = eval("2026-03-03") else { panic!("the tenant's day off") };
    assert_eq!(reason, "2026-03-03 in Asia/Shanghai is a holiday in the tenant's calendar");
    assert!(matches!(eval("2026-03-07"), WindowOutcome::Open(_)), "the tenant's working Saturday");
    assert!(matches!(eval("2026-10-02"), WindowOutcome::Closed { .. }), "National Day stays closed");
}

#[test]
fn an_operator_adds_a_year_by_dropping_a_file_and_bad_files_name_the_field() {
    let dir = tempfile::tempdir().expect("tmp");
    let year = r#"{"pack":"cn","year":2031,"source":"a notice","cite":"notice of 2030-11-01",
        "days_off":[{"from":"2031-01-01","to":"2031-01-02","name":"New Year's Day"}],
        "working_days":[{"date":"2031-01-04","name":"New Year's Day"}]}"#;
    std::fs::write(dir.path().join("cn-2031.json"), year).expect("write");
    let packs = Packs::load(Some(dir.path())).expect("packs");
    let cn = packs.get("cn").expect("cn");
    assert!(!open(cn, beijing(day("2031-01-02"), 10, 0)), "a day off of the dropped year");
    assert!(open(cn, beijing(day("2031-01-04"), 10, 0)), "its working Saturday");
    assert_eq!(cn.days().year(2031).map(|y| y.cite.as_str()), Some("notice of 2030-11-01"));

    for (bad, problem) in [
        (year.replace("2031-01-02\"", "2032-01-02\""), "days_off[0].to: not in 2031"),
        (year.replace("2031-01-04", "2031-01-01"), "working_days[0]: 2031-01-01 is also a day off"),
        (year.replace("\"cite\":\"notice of 2030-11-01\"", "\"cite\":\" \""), "cite: the notice"),
        (year.replace("\"pack\":\"cn\"", "\"pack\":\"mars\""), "calendar of unknown pack `mars`"),
        (year.replace("\"year\":2031", "\"year\":2031,\"colour\":\"red\""), "unknown field `colour`"),
    ] {
        std::fs::write(dir.path().join("cn-2031.json"), bad).expect("write");
        let e = Packs::load(Some(dir.path())).expect_err("refused").to_string();
        assert!(e.contains(problem) && e.contains("cn-2031.json"), "{e}");
    }
}

/// The shipped Chinese schedules against an independent, well-kept source:
/// the `chinese-calendar` package (installed by `scripts/test-deps.sh`),
/// run over every day of every shipped year.
#[test]
fn the_shipped_chinese_years_agree_with_the_chinese_calendar_package() {
    let packs = Packs::load(None).expect("packs");
    let cn = packs.get("cn").expect("cn");
    for year in [2025, 2026] {
        assert!(cn.days().year(year).is_some(), "{year} is shipped");
        let script = format!(
            "import datetime, chinese_calendar as c\n\
             d = datetime.date({year}, 1, 1)\n\
             while d.year == {year}:\n    print(d.isoformat(), int(c.is_workday(d)))\n    d += datetime.timedelta(days=1)\n"
        );
        let out = std::process::Command::new("python3").args(["-c", &script]).output().expect("python3");
        assert!(out.status.success(), "chinese_calendar: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).expect("utf-8");
        let mut days = 0;
        for line in text.lines() {
            let (date, work) = line.split_once(' ').expect("date and flag");
            let d = day(date);
            assert_eq!(cn.works_on(d, &TenantDays::default()), work == "1", "{d}");
            days += 1;
        }
        let first = NaiveDate::from_ymd_opt(year, 1, 1).expect("jan 1");
        assert_eq!(days, (NaiveDate::from_ymd_opt(year + 1, 1, 1).expect("next") - first).num_days());
        assert!(first + Duration::days(days - 1) < NaiveDate::from_ymd_opt(year + 1, 1, 1).expect("next"));
    }
}

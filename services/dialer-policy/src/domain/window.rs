//! Calling windows in the callee's local time, from jurisdiction packs
//! shipped as data (`packs/*.json`, plus any directory given at start): a
//! new pack needs no code.
//!
//! A window is `[start, end)` in local wall-clock time on the listed week
//! days; which days those are follows the pack's official calendar for the
//! year and the tenant's own days ([`super::calendar`]). When the callee may
//! be in several zones (the number's and the lead's, or every zone of the
//! country), the call must be inside the window in every one of them.
//!
//! A pack may apply to US states (`"states": ["FL"]`): it is chosen by the
//! callee's state on top of the federal pack, and the strictest rule wins.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use serde::Deserialize;

use super::calendar::{CalendarFile, Day, Days};
pub use super::calendar::{Holiday, TenantDays};

/// The packs and calendars shipped with the service.
const BUILT_IN: [&str; 7] = [
    include_str!("../../packs/us-tcpa.json"),
    include_str!("../../packs/us-fl.json"),
    include_str!("../../packs/us-ok.json"),
    include_str!("../../packs/us-md.json"),
    include_str!("../../packs/cn.json"),
    include_str!("../../packs/cn-2025.json"),
    include_str!("../../packs/cn-2026.json"),
];

/// How far ahead a deferral is searched for.
const HORIZON_DAYS: i64 = 21;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PackFile {
    name: String,
    #[serde(default)]
    description: String,
    windows: Vec<WindowFile>,
    #[serde(default)]
    holidays: Vec<String>,
    #[serde(default)]
    max_calls_per_24h: Option<u32>,
    /// US states (two-letter codes) whose callees this pack applies to.
    #[serde(default)]
    states: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowFile {
    days: Vec<String>,
    start: String,
    end: String,
}

/// One window of a pack.
#[derive(Clone, Debug)]
pub struct Window {
    days: Vec<Weekday>,
    start: NaiveTime,
    /// Seconds after midnight, exclusive; 86 400 for `24:00`.
    end: u32,
}

/// A jurisdiction pack.
#[derive(Clone, Debug)]
pub struct Pack {
    /// Name, e.g. `us-tcpa`; the rule is `window.<name>`.
    pub name: String,
    /// Where the rule comes from.
    pub description: String,
    windows: Vec<Window>,
    days: Days,
    /// A jurisdiction's own per-callee cap on one subject, e.g. Florida's 3
    /// per 24 hours.
    pub max_calls_per_24h: Option<u32>,
    /// US states whose callees the pack applies to (empty: chosen by name or region).
    pub states: Vec<String>,
}

/// Why a pack file was refused.
#[derive(Debug, thiserror::Error)]
#[error("pack {pack}: {problem}")]
pub struct PackError {
    pack: String,
    problem: String,
}

impl Pack {
    /// Parses a pack file (JSON).
    pub fn parse(json: &str) -> Result<Self, PackError> {
        let f: PackFile =
            serde_json::from_str(json).map_err(|e| PackError { pack: "?".into(), problem: e.to_string() })?;
        let err = |problem: String| PackError { pack: f.name.clone(), problem };
        if f.name.is_empty() || !f.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return Err(err("name: lowercase letters, digits and dashes".into()));
        }
        if f.windows.is_empty() {
            return Err(err("windows: at least one".into()));
        }
        let mut windows = Vec::new();
        for (i, w) in f.windows.iter().enumerate() {
            let time = |s: &str, field: &str| {
                NaiveTime::parse_from_str(s, "%H:%M").map_err(|_| err(format!("windows[{i}].{field}: HH:MM")))
            };
            let start = time(&w.start, "start")?;
            let end = if w.end == "24:00" { 86_400 } else { time(&w.end, "end")?.num_seconds_from_midnight() };
            if end <= start.num_seconds_from_midnight() {
                return Err(err(format!("windows[{i}]: end must be after start")));
            }
            let days = w
                .days
                .iter()
                .map(|d| d.parse::<Weekday>().map_err(|_| err(format!("windows[{i}].days: `{d}` is not a week day"))))
                .collect::<Result<Vec<_>, _>>()?;
            windows.push(Window { days, start, end });
        }
        let holidays = f
            .holidays
            .iter()
            .map(|h| Holiday::parse(h).ok_or_else(|| err(format!("holidays: `{h}` is not MM-DD or YYYY-MM-DD"))))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(s) = f.states.iter().find(|s| s.len() != 2 || !s.bytes().all(|b| b.is_ascii_uppercase())) {
            return Err(err(format!("states: `{s}` is not a two-letter state code")));
        }
        Ok(Self {
            name: f.name,
            description: f.description,
            windows,
            days: Days::new(holidays),
            max_calls_per_24h: f.max_calls_per_24h,
            states: f.states,
        })
    }

    /// The pack's days: fixed holidays and official years.
    pub fn days(&self) -> &Days {
        &self.days
    }

    /// The week day whose windows apply on `date`: none on a day off, a
    /// Monday's on an adjusted working day (调休), else the date's own.
    fn windows_day(&self, date: NaiveDate, tenant: &TenantDays) -> Option<Weekday> {
        match self.days.classify(date, tenant) {
            Day::Off(_) => None,
            Day::Working => Some(Weekday::Mon),
            Day::Regular => Some(date.weekday()),
        }
    }

    /// Whether any window applies on `date` (a working day of the pack).
    pub fn works_on(&self, date: NaiveDate, tenant: &TenantDays) -> bool {
        self.windows_day(date, tenant).is_some_and(|d| self.windows.iter().any(|w| w.days.contains(&d)))
    }

    fn open_at(&self, local: NaiveDate, time: NaiveTime, tenant: &TenantDays) -> bool {
        self.windows_day(local, tenant).is_some_and(|d| {
            self.windows
                .iter()
                .any(|w| w.days.contains(&d) && w.start <= time && time.num_seconds_from_midnight() < w.end)
        })
    }

    fn describe_windows(&self) -> String {
        let w: Vec<String> = self
            .windows
            .iter()
            .map(|w| format!("{}–{:02}:{:02}", w.start.format("%H:%M"), w.end / 3600, w.end % 3600 / 60))
            .collect();
        w.join(", ")
    }

    /// Evaluates the pack at `at` for a callee in any of `zones` (all must
    /// be open), with the tenant's own days.
    pub fn evaluate(&self, at: DateTime<Utc>, zones: &[Tz], tenant: &TenantDays) -> WindowOutcome {
        let closed = zones.iter().find(|z| {
            let local = at.with_timezone(*z);
            !self.open_at(local.date_naive(), local.time(), tenant)
        });
        let note = |why: String, zone: Option<&Tz>| {
            let date = zone.map(|z| at.with_timezone(z).date_naive());
            match date.and_then(|d| self.days.fallback_note(d)) {
                Some(n) => format!("{why}; {n}"),
                None => why,
            }
        };
        let Some(zone) = closed else {
            let shown = zones.first().map(|z| at.with_timezone(z).format("%H:%M %Z").to_string()).unwrap_or_default();
            return WindowOutcome::Open(note(format!("{shown} is inside {}", self.describe_windows()), zones.first()));
        };
        let local = at.with_timezone(zone);
        let why = match self.days.classify(local.date_naive(), tenant) {
            Day::Off(what) => format!("{} in {} is {what}", local.format("%Y-%m-%d"), zone.name()),
            _ => format!("{} {} is outside {}", local.format("%a %H:%M"), zone.name(), self.describe_windows()),
        };
        let why = note(why, Some(zone));
        match self.next_open(at, zones, tenant) {
            Some(next) => WindowOutcome::Closed { reason: why, next: Some(next) },
            None => WindowOutcome::Closed {
                reason: format!("{why}, and no window opens within {HORIZON_DAYS} days"),
                next: None,
            },
        }
    }

    /// The first instant after `at` when every zone is open: the earliest
    /// window start (in any zone) at which all of them are.
    fn next_open(&self, at: DateTime<Utc>, zones: &[Tz], tenant: &TenantDays) -> Option<DateTime<Utc>> {
        let mut starts = Vec::new();
        for zone in zones {
            let today = at.with_timezone(zone).date_naive();
            for d in 0..=HORIZON_DAYS {
                let date = today + Duration::days(d);
                let Some(weekday) = self.windows_day(date, tenant) else { continue };
                for w in &self.windows {
                    if !w.days.contains(&weekday) {
                        continue;
                    }
                    // A start that falls in a DST gap opens at the first
                    // existing instant after it.
                    let start = zone.from_local_datetime(&date.and_time(w.start)).earliest().or_else(|| {
                        zone.from_local_datetime(&(date.and_time(w.start) + Duration::hours(1))).earliest()
                    });
                    if let Some(s) = start.map(|s| s.with_timezone(&Utc)).filter(|s| *s > at) {
                        starts.push(s);
                    }
                }
            }
        }
        starts.sort_unstable();
        starts.dedup();
        starts.into_iter().find(|s| {
            zones.iter().all(|z| {
                let local = s.with_timezone(z);
                self.open_at(local.date_naive(), local.time(), tenant)
            })
        })
    }
}

/// A pack's verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WindowOutcome {
    /// Inside the window; why, readable.
    Open(String),
    /// Outside; why, and when it opens next (none within the horizon).
    Closed {
        /// Readable reason.
        reason: String,
        /// The earliest allowed instant.
        next: Option<DateTime<Utc>>,
    },
}

/// The packs the service knows, by name.
#[derive(Clone, Debug)]
pub struct Packs(BTreeMap<String, Pack>);

impl Packs {
    /// The built-in packs plus every `*.json` in `dir` (a pack there
    /// replaces a built-in one of the same name).
    pub fn load(dir: Option<&std::path::Path>) -> anyhow::Result<Self> {
        let mut files: Vec<(String, String)> =
            BUILT_IN.iter().map(|j| ("built-in".to_owned(), (*j).to_owned())).collect();
        if let Some(dir) = dir {
            let mut paths = Vec::new();
            for entry in std::fs::read_dir(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))? {
                let path = entry?.path();
                if path.extension().is_some_and(|e| e == "json") {
                    paths.push(path);
                }
            }
            paths.sort();
            for path in paths {
                files.push((path.display().to_string(), std::fs::read_to_string(&path)?));
            }
        }
        // Packs first (a pack there replaces a built-in one of the same
        // name), then the calendars that belong to them.
        let mut map = BTreeMap::new();
        let mut calendars = Vec::new();
        for (from, json) in files {
            let value: serde_json::Value = serde_json::from_str(&json).map_err(|e| anyhow::anyhow!("{from}: {e}"))?;
            if value.get("pack").is_some() {
                let c: CalendarFile = serde_json::from_value(value).map_err(|e| anyhow::anyhow!("{from}: {e}"))?;
                calendars.push((from, c));
            } else {
                let p = Pack::parse(&json).map_err(|e| anyhow::anyhow!("{from}: {e}"))?;
                map.insert(p.name.clone(), p);
            }
        }
        for (from, c) in calendars {
            let pack = c.pack.clone();
            let year = c.build().map_err(|e| anyhow::anyhow!("{from}: calendar: {e}"))?;
            let p = map.get_mut(&pack).ok_or_else(|| anyhow::anyhow!("{from}: calendar of unknown pack `{pack}`"))?;
            p.days.add_year(year);
        }
        Ok(Self(map))
    }

    /// The packs that apply to a callee in US state `state`.
    pub fn for_state<'a>(&'a self, state: &'a str) -> impl Iterator<Item = &'a Pack> + 'a {
        self.0.values().filter(move |p| p.states.iter().any(|s| s == state))
    }

    /// A pack by name.
    pub fn get(&self, name: &str) -> Option<&Pack> {
        self.0.get(name)
    }

    /// The names, for error messages.
    pub fn names(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packs() -> Packs {
        Packs::load(None).expect("built-in packs")
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("rfc3339").with_timezone(&Utc)
    }

    #[test]
    fn tcpa_boundaries_are_eight_inclusive_and_nine_exclusive_in_local_time() {
        let p = packs();
        let tcpa = p.get("us-tcpa").expect("pack");
        let chicago = [Tz::America__Chicago];
        // 2026-11-27 is in CST (UTC-6).
        assert!(
            matches!(
                tcpa.evaluate(utc("2026-11-27T14:00:00Z"), &chicago, &TenantDays::default()),
                WindowOutcome::Open(_)
            ),
            "08:00"
        );
        assert!(matches!(
            tcpa.evaluate(utc("2026-11-27T13:59:59Z"), &chicago, &TenantDays::default()),
            WindowOutcome::Closed { .. }
        ));
        assert!(
            matches!(
                tcpa.evaluate(utc("2026-11-28T02:59:59Z"), &chicago, &TenantDays::default()),
                WindowOutcome::Open(_)
            ),
            "20:59:59"
        );
        let WindowOutcome::Closed { reason, next } =
            tcpa.evaluate(utc("2026-11-28T03:40:00Z"), &chicago, &TenantDays::default())
        else {
            panic!("21:40 is closed")
        };
        assert_eq!(reason, "Fri 21:40 America/Chicago is outside 08:00–21:00");
        assert_eq!(next, Some(utc("2026-11-28T14:00:00Z")), "08:00 the next morning");
    }

    #[test]
    fn daylight_saving_moves_the_window_in_utc() {
        let p = packs();
        let tcpa = p.get("us-tcpa").expect("pack");
        let ny = [Tz::America__New_York];
        // 12:30 UTC: 08:30 EDT in October, 07:30 EST after 2026-11-01.
        assert!(matches!(
            tcpa.evaluate(utc("2026-10-30T12:30:00Z"), &ny, &TenantDays::default()),
            WindowOutcome::Open(_)
        ));
        let WindowOutcome::Closed { next, .. } =
            tcpa.evaluate(utc("2026-11-02T12:30:00Z"), &ny, &TenantDays::default())
        else {
            panic!("07:30 EST is closed")
        };
        assert_eq!(next, Some(utc("2026-11-02T13:00:00Z")));
        // The spring-forward night: 2027-03-14 08:00 EDT is 12:00 UTC.
        let WindowOutcome::Closed { next, .. } =
            tcpa.evaluate(utc("2027-03-14T06:30:00Z"), &ny, &TenantDays::default())
        else {
            panic!("01:30 EST is closed")
        };
        assert_eq!(next, Some(utc("2027-03-14T12:00:00Z")));
    }

    #[test]
    fn an_unknown_zone_must_be_open_everywhere_in_the_country() {
        let p = packs();
        let tcpa = p.get("us-tcpa").expect("pack");
        let both = [Tz::America__New_York, Tz::America__Los_Angeles];
        // 13:30 UTC: 08:30 in New York but 05:30 in Los Angeles.
        let WindowOutcome::Closed { reason, next } =
            tcpa.evaluate(utc("2026-11-27T13:30:00Z"), &both, &TenantDays::default())
        else {
            panic!("closed on the west coast")
        };
        assert!(reason.contains("America/Los_Angeles"), "{reason}");
        assert_eq!(next, Some(utc("2026-11-27T16:00:00Z")), "08:00 in Los Angeles");
        // 01:30 UTC: 20:30 in New York, 17:30 in Los Angeles: open in both.
        assert!(matches!(
            tcpa.evaluate(utc("2026-11-28T01:30:00Z"), &both, &TenantDays::default()),
            WindowOutcome::Open(_)
        ));
    }

    #[test]
    fn florida_closes_at_eight_and_caps_at_three() {
        let p = packs();
        let fl = p.get("us-fl").expect("pack");
        assert_eq!(fl.max_calls_per_24h, Some(3));
        let ny = [Tz::America__New_York];
        assert!(
            matches!(fl.evaluate(utc("2026-11-28T00:59:00Z"), &ny, &TenantDays::default()), WindowOutcome::Open(_)),
            "19:59"
        );
        assert!(
            matches!(
                fl.evaluate(utc("2026-11-28T01:00:00Z"), &ny, &TenantDays::default()),
                WindowOutcome::Closed { .. }
            ),
            "20:00"
        );
    }

    #[test]
    fn chinese_holidays_and_weekends_are_closed_and_tenant_holidays_add_to_them() {
        let p = packs();
        let cn = p.get("cn").expect("pack");
        let sh = [Tz::Asia__Shanghai];
        // 2026-10-01 (Thursday) 10:00 Beijing time is National Day.
        let none = TenantDays::default();
        let WindowOutcome::Closed { reason, next } = cn.evaluate(utc("2026-10-01T02:00:00Z"), &sh, &none) else {
            panic!("a holiday")
        };
        assert_eq!(
            reason,
            "2026-10-01 in Asia/Shanghai is a public holiday, National Day (State Council notice of 2025-11-04)"
        );
        assert_eq!(next, Some(utc("2026-10-08T01:00:00Z")), "Thursday 09:00 after the Golden Week");
        let tenant = TenantDays { off: vec![Holiday::parse("2026-10-08").expect("date")], working: vec![] };
        let WindowOutcome::Closed { next, .. } = cn.evaluate(utc("2026-10-01T02:00:00Z"), &sh, &tenant) else {
            panic!("a holiday")
        };
        assert_eq!(next, Some(utc("2026-10-09T01:00:00Z")));
        assert!(
            matches!(cn.evaluate(utc("2026-11-27T02:00:00Z"), &sh, &TenantDays::default()), WindowOutcome::Open(_)),
            "a Friday"
        );
    }

    #[test]
    fn bad_pack_files_name_the_problem() {
        let e = Pack::parse(r#"{"name":"x","windows":[{"days":["mon"],"start":"21:00","end":"08:00"}]}"#);
        assert!(e.expect_err("inverted").to_string().contains("windows[0]: end must be after start"));
        let e = Pack::parse(r#"{"name":"x","windows":[{"days":["funday"],"start":"08:00","end":"09:00"}]}"#);
        assert!(e.expect_err("day").to_string().contains("`funday` is not a week day"));
        let e = Pack::parse(
            r#"{"name":"x","windows":[{"days":["mon"],"start":"08:00","end":"09:00"}],"holidays":["13-40"]}"#,
        );
        assert!(e.expect_err("holiday").to_string().contains("holidays"));
        let e = Pack::parse(r#"{"name":"x","windows":[],"colour":"red"}"#);
        assert!(e.is_err(), "unknown fields are refused");
        assert_eq!(Holiday::parse("02-29"), Some(Holiday::Yearly(2, 29)));
        let all_day = Pack::parse(r#"{"name":"any","windows":[{"days":["sun"],"start":"00:00","end":"24:00"}]}"#)
            .expect("24:00 ends the day");
        let sunday_last_second = utc("2026-11-29T23:59:59Z");
        assert!(matches!(
            all_day.evaluate(sunday_last_second, &[Tz::UTC], &TenantDays::default()),
            WindowOutcome::Open(_)
        ));
    }
}

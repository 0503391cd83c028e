//! Which days a jurisdiction pack's windows apply on: official holiday
//! schedules per year (China's State Council notice lists the days off and
//! the weekend days that become working days, 调休), the pack's fixed-date
//! holidays for a year whose schedule is not loaded, and the tenant's own
//! days off and working days.
//!
//! Precedence for a callee's local date: a tenant day off closes it; an
//! official day off closes it; an official or tenant working day opens it
//! with the windows of a Monday; otherwise the week day's windows apply.
//! A tenant working day never opens an official day off.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use serde::Deserialize;

/// A holiday: every year on a month and day, or on one date.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holiday {
    /// `MM-DD`.
    Yearly(u32, u32),
    /// `YYYY-MM-DD`.
    Once(NaiveDate),
}

impl Holiday {
    /// Parses `MM-DD` or `YYYY-MM-DD`.
    pub fn parse(s: &str) -> Option<Self> {
        if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            return Some(Self::Once(d));
        }
        let (m, d) = s.split_once('-')?;
        let (m, d) = (m.parse().ok()?, d.parse().ok()?);
        // Checked against a leap year so that 02-29 is accepted.
        NaiveDate::from_ymd_opt(2024, m, d).map(|_| Self::Yearly(m, d))
    }

    /// Whether the holiday falls on `date`.
    pub fn falls_on(&self, date: NaiveDate) -> bool {
        match *self {
            Self::Yearly(m, d) => date.month() == m && date.day() == d,
            Self::Once(d) => date == d,
        }
    }
}

/// The tenant's own calendar, from its dialing policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TenantDays {
    /// Days off, added to the pack's.
    pub off: Vec<Holiday>,
    /// Working days: open a weekend day, never an official day off.
    pub working: Vec<NaiveDate>,
}

/// One year's official schedule of a pack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct YearCalendar {
    /// The year.
    pub year: i32,
    /// The notice, as cited in reasons, e.g. `State Council notice of 2025-11-04`.
    pub cite: String,
    /// Days off, with the holiday's name.
    off: BTreeMap<NaiveDate, String>,
    /// Weekend days that are working days.
    working: Vec<NaiveDate>,
}

impl YearCalendar {
    /// The days off, in order (for tests and status).
    pub fn days_off(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        self.off.keys().copied()
    }

    /// The extra working days, in order.
    pub fn working_days(&self) -> &[NaiveDate] {
        &self.working
    }
}

/// A calendar file: `{"pack": "cn", "year": 2026, ...}` beside the packs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CalendarFile {
    pub(crate) pack: String,
    year: i32,
    /// The notice's full title and date, for the reader of the file.
    #[allow(dead_code, reason = "documentation carried by the file")]
    source: String,
    cite: String,
    days_off: Vec<RangeFile>,
    #[serde(default)]
    working_days: Vec<DayFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RangeFile {
    from: String,
    to: String,
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DayFile {
    date: String,
    #[allow(dead_code, reason = "documentation carried by the file")]
    name: String,
}

impl CalendarFile {
    /// Checks the file: dates of its own year, ranges in order, no day both
    /// off and working. The problem names the field.
    pub(crate) fn build(self) -> Result<YearCalendar, String> {
        let date = |s: &str, field: &str| -> Result<NaiveDate, String> {
            let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| format!("{field}: YYYY-MM-DD"))?;
            if d.year() == self.year { Ok(d) } else { Err(format!("{field}: not in {}", self.year)) }
        };
        if self.cite.trim().is_empty() {
            return Err("cite: the notice the schedule comes from".into());
        }
        let mut off = BTreeMap::new();
        for (i, r) in self.days_off.iter().enumerate() {
            let (from, to) =
                (date(&r.from, &format!("days_off[{i}].from"))?, date(&r.to, &format!("days_off[{i}].to"))?);
            if to < from {
                return Err(format!("days_off[{i}]: `to` is before `from`"));
            }
            for d in from.iter_days().take_while(|d| *d <= to) {
                off.insert(d, r.name.clone());
            }
        }
        let mut working = Vec::new();
        for (i, w) in self.working_days.iter().enumerate() {
            let d = date(&w.date, &format!("working_days[{i}].date"))?;
            if off.contains_key(&d) {
                return Err(format!("working_days[{i}]: {d} is also a day off"));
            }
            working.push(d);
        }
        working.sort_unstable();
        Ok(YearCalendar { year: self.year, cite: self.cite, off, working })
    }
}

/// What a local date is, for a pack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Day {
    /// No window applies; why, readable (without the date and zone).
    Off(String),
    /// An extra working day: the windows of a Monday apply.
    Working,
    /// The week day's windows apply.
    Regular,
}

/// A pack's days: its fixed-date holidays and its official years.
#[derive(Clone, Debug, Default)]
pub struct Days {
    fixed: Vec<Holiday>,
    years: BTreeMap<i32, YearCalendar>,
}

impl Days {
    /// A pack's fixed-date holidays, used for years without a schedule.
    pub fn new(fixed: Vec<Holiday>) -> Self {
        Self { fixed, years: BTreeMap::new() }
    }

    /// Adds (or replaces) a year's official schedule.
    pub fn add_year(&mut self, year: YearCalendar) {
        self.years.insert(year.year, year);
    }

    /// The official schedule of `year`, if loaded.
    pub fn year(&self, year: i32) -> Option<&YearCalendar> {
        self.years.get(&year)
    }

    /// Whether the pack follows official yearly schedules at all.
    pub fn keeps_calendars(&self) -> bool {
        !self.years.is_empty()
    }

    /// The year the pack lacks a schedule for, as seen on `today`: this
    /// year's, or from 1 December on next year's.
    pub fn missing_year(&self, today: NaiveDate) -> Option<i32> {
        if !self.keeps_calendars() {
            return None;
        }
        let next = (today.month() == 12).then_some(today.year() + 1);
        [Some(today.year()), next].into_iter().flatten().find(|y| !self.years.contains_key(y))
    }

    /// A note for a date whose year has no schedule loaded (empty otherwise).
    pub fn fallback_note(&self, date: NaiveDate) -> Option<String> {
        (self.keeps_calendars() && !self.years.contains_key(&date.year()))
            .then(|| format!("fixed-date holidays only: no official {} calendar is loaded", date.year()))
    }

    /// What `date` is, with the tenant's own days.
    pub fn classify(&self, date: NaiveDate, tenant: &TenantDays) -> Day {
        if tenant.off.iter().any(|h| h.falls_on(date)) {
            return Day::Off("a holiday in the tenant's calendar".into());
        }
        let tenant_working = tenant.working.contains(&date);
        match self.years.get(&date.year()) {
            Some(y) => match y.off.get(&date) {
                Some(name) => Day::Off(format!("a public holiday, {name} ({})", y.cite)),
                None if tenant_working || y.working.contains(&date) => Day::Working,
                None => Day::Regular,
            },
            None if self.fixed.iter().any(|h| h.falls_on(date)) => Day::Off("a public holiday".into()),
            None if tenant_working => Day::Working,
            None => Day::Regular,
        }
    }
}

#[cfg(test)]
mod tests;

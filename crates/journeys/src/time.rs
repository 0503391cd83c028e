//! Cases built from the real now, so that journeys against a running mesh
//! (whose decisions are made at the server's clock) pass at every hour of
//! every day: a callee zone where it is midday, or the middle of the night,
//! right now; the next Saturday morning in Beijing for a planning query.

use std::ops::Range;

use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike, Utc, Weekday};

/// Numbers around the world, one per offset band, whose zones (from their
/// prefix, as the dialer takes them) cover every hour of the day.
const AROUND_THE_WORLD: [&str; 16] = [
    "+18085550100",   // Honolulu, UTC-10
    "+19075550100",   // Anchorage, UTC-9/-8
    "+14155550100",   // San Francisco, UTC-8/-7
    "+13035550100",   // Denver, UTC-7/-6
    "+13125550100",   // Chicago, UTC-6/-5
    "+12125550100",   // New York, UTC-5/-4
    "+551133334444",  // São Paulo, UTC-3
    "+442079460958",  // London, UTC+0/+1
    "+493012345678",  // Berlin, UTC+1/+2
    "+74951234567",   // Moscow, UTC+3
    "+97142345678",   // Dubai, UTC+4
    "+911123456789",  // Delhi, UTC+5:30
    "+8613812345678", // China, UTC+8
    "+81312345678",   // Tokyo, UTC+9
    "+61298765432",   // Sydney, UTC+10/+11
    "+6493791234",    // Auckland, UTC+12/+13
];

/// The numbers with their zones, parsed once.
static ZONED: std::sync::LazyLock<Vec<(&'static str, Vec<chrono_tz::Tz>)>> = std::sync::LazyLock::new(|| {
    AROUND_THE_WORLD
        .into_iter()
        .filter_map(|n| Some((n, guardline_phone::Phone::parse(n, None).ok()?.number_time_zones())))
        .filter(|(_, zones)| !zones.is_empty())
        .collect()
});

/// A number whose every zone's local hour at `now` falls in `hours`.
pub fn number_at_local_hour(now: DateTime<Utc>, hours: Range<u32>) -> Option<&'static str> {
    ZONED.iter().find(|(_, zones)| zones.iter().all(|z| hours.contains(&now.with_timezone(z).hour()))).map(|(n, _)| *n)
}

/// A number where `now` is well inside 08:00–21:00 (11:00 to 16:59 local).
pub fn number_open_now(now: DateTime<Utc>) -> &'static str {
    number_at_local_hour(now, 11..17).unwrap_or(AROUND_THE_WORLD[0])
}

/// A number where `now` is well outside 08:00–21:00 (01:00 to 04:59 local).
pub fn number_closed_now(now: DateTime<Utc>) -> &'static str {
    number_at_local_hour(now, 1..5).unwrap_or(AROUND_THE_WORLD[0])
}

/// `number` with its last two digits replaced by `n` (0 to 99): another
/// number in the same zone, so that leads do not share one callee's caps.
pub fn nth(number: &str, n: u8) -> String {
    let keep = number.len().saturating_sub(2);
    format!("{}{:02}", &number[..keep], n % 100)
}

/// The first `weekday` after `now` at `hour`:00 in `tz`.
pub fn next_local<Tz: TimeZone>(now: DateTime<Utc>, tz: &Tz, weekday: Weekday, hour: u32) -> DateTime<Utc> {
    let mut day = now.with_timezone(tz).date_naive() + Duration::days(1);
    while day.weekday() != weekday {
        day += Duration::days(1);
    }
    let local = day.and_hms_opt(hour, 0, 0).unwrap_or_default();
    tz.from_local_datetime(&local).earliest().map_or(now, |t| t.with_timezone(&Utc))
}

/// The next Saturday 10:00 Beijing time that is no working day, whose
/// Monday is one (`works` says which days are, e.g. the dialer's `cn` pack
/// with its official calendars), and that Monday at 09:00, when a call
/// deferred on the Saturday may be placed.
pub fn cn_saturday_and_monday(
    now: DateTime<Utc>,
    works: impl Fn(chrono::NaiveDate) -> bool,
) -> (DateTime<Utc>, DateTime<Utc>) {
    let tz = chrono_tz::Asia::Shanghai;
    let mut from = now;
    loop {
        let saturday = next_local(from, &tz, Weekday::Sat, 10);
        let monday = next_local(saturday, &tz, Weekday::Mon, 9);
        let (s, m) = (saturday.with_timezone(&tz).date_naive(), monday.with_timezone(&tz).date_naive());
        if !works(s) && works(m) {
            return (saturday, monday);
        }
        from = saturday;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("instant").with_timezone(&Utc)
    }

    #[test]
    fn every_quarter_hour_of_the_year_has_an_open_and_a_closed_number() {
        let start = at("2031-01-01T00:00:00Z");
        for h in 0..(365 * 96) {
            let now = start + Duration::minutes(15 * h);
            assert!(number_at_local_hour(now, 11..17).is_some(), "open at {now}");
            assert!(number_at_local_hour(now, 1..5).is_some(), "closed at {now}");
        }
    }

    #[test]
    fn every_number_parses_and_has_its_zones() {
        assert_eq!(ZONED.len(), AROUND_THE_WORLD.len(), "every number parses and has a zone");
    }

    #[test]
    fn the_next_cn_saturday_skips_working_saturdays_and_monday_holidays() {
        // Fixed-date holidays only, for this test: the Monday of 2029-09-29 is National Day.
        let fixed = |d: chrono::NaiveDate| {
            d.weekday().num_days_from_monday() < 5
                && !matches!((d.month(), d.day()), (1, 1) | (5, 1) | (5, 2) | (10, 1..=3))
        };
        let (sat, mon) = cn_saturday_and_monday(at("2029-09-27T00:00:00Z"), fixed);
        assert_eq!((sat, mon), (at("2029-10-06T02:00:00Z"), at("2029-10-08T01:00:00Z")));
        let (sat, mon) = cn_saturday_and_monday(at("2029-09-12T00:00:00Z"), fixed);
        assert_eq!((sat, mon), (at("2029-09-15T02:00:00Z"), at("2029-09-17T01:00:00Z")));
        // A working Saturday is skipped.
        let saturday_works = |d: chrono::NaiveDate| fixed(d) || d == at("2029-09-15T00:00:00Z").date_naive();
        let (sat, _) = cn_saturday_and_monday(at("2029-09-12T00:00:00Z"), saturday_works);
        assert_eq!(sat, at("2029-09-22T02:00:00Z"));
    }
}

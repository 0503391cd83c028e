//! Cases built from the real now, so that journeys against a running mesh
//! (whose decisions are made at the server's clock) pass at every hour of
//! every day: a callee zone where it is midday, or the middle of the night,
//! right now; the next Saturday morning in Beijing for a planning query.

use std::ops::Range;

use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike, Utc, Weekday};

/// An IANA zone (`Etc/GMT±N`, no daylight saving) whose local hour at `now`
/// falls in `hours`; offsets from -12 to +14 cover every hour of the day.
pub fn zone_at_local_hour(now: DateTime<Utc>, hours: Range<u32>) -> String {
    (-12i64..=14)
        .find(|o| hours.contains(&(now + Duration::hours(*o)).hour()))
        .map(|o| match o {
            0 => "Etc/GMT".to_owned(),
            // POSIX signs: Etc/GMT-8 is eight hours ahead of UTC.
            o if o > 0 => format!("Etc/GMT-{o}"),
            o => format!("Etc/GMT+{}", -o),
        })
        .unwrap_or_else(|| "Etc/GMT".to_owned())
}

/// A zone where `now` is well inside 08:00–21:00 (11:00 to 16:59 local).
pub fn zone_open_now(now: DateTime<Utc>) -> String {
    zone_at_local_hour(now, 11..17)
}

/// A zone where `now` is well outside 08:00–21:00 (01:00 to 04:59 local).
pub fn zone_closed_now(now: DateTime<Utc>) -> String {
    zone_at_local_hour(now, 1..5)
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

/// The next Saturday 10:00 Beijing time whose Monday is a working day in
/// the `cn` pack (not 1 January, 1–2 May or 1–3 October), and that Monday
/// at 09:00, when a call deferred on the Saturday may be placed.
pub fn cn_saturday_and_monday(now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let tz = chrono_tz::Asia::Shanghai;
    let mut from = now;
    loop {
        let saturday = next_local(from, &tz, Weekday::Sat, 10);
        let monday = next_local(saturday, &tz, Weekday::Mon, 9);
        let m = monday.with_timezone(&tz);
        let holiday = matches!((m.month(), m.day()), (1, 1) | (5, 1) | (5, 2) | (10, 1..=3));
        if !holiday {
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
    fn every_hour_of_the_day_has_an_open_and_a_closed_zone() {
        let start = at("2031-06-01T00:30:00Z");
        for h in 0..24 {
            let now = start + Duration::hours(h);
            for (zone, hours) in [(zone_open_now(now), 11..17), (zone_closed_now(now), 1..5)] {
                let tz: chrono_tz::Tz = zone.parse().expect("IANA zone");
                assert!(hours.contains(&now.with_timezone(&tz).hour()), "{now} {zone}");
            }
        }
    }

    #[test]
    fn the_next_cn_saturday_skips_a_monday_holiday() {
        // Saturday 2029-09-29; its Monday is National Day, so the next week.
        let (sat, mon) = cn_saturday_and_monday(at("2029-09-27T00:00:00Z"));
        assert_eq!((sat, mon), (at("2029-10-06T02:00:00Z"), at("2029-10-08T01:00:00Z")));
        let (sat, mon) = cn_saturday_and_monday(at("2029-09-12T00:00:00Z"));
        assert_eq!((sat, mon), (at("2029-09-15T02:00:00Z"), at("2029-09-17T01:00:00Z")));
    }
}

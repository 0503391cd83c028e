//! The one source of "now" for every decision a service makes: whether a
//! token has expired, whether a call falls inside its window, which attempts
//! a cap counts, how old a registry copy is. Production uses the system
//! clock, and no flag or environment variable can shift it; in-process tests
//! hand every service of their mesh the same [`ManualClock`] and move it.
//!
//! Operational timers (retry back-off, cache lifetimes, TLS validity) keep
//! using the monotonic and system clocks: they decide nothing a caller cares
//! about.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration, Utc};

/// A source of the current instant, cheap to clone and share.
#[derive(Clone, Default)]
pub struct Clock(Source);

#[derive(Clone, Default)]
enum Source {
    #[default]
    System,
    Manual(ManualClock),
}

impl Clock {
    /// The system clock (the default).
    pub fn system() -> Self {
        Self(Source::System)
    }

    /// The current instant.
    pub fn now(&self) -> DateTime<Utc> {
        match &self.0 {
            Source::System => Utc::now(),
            Source::Manual(m) => m.now(),
        }
    }

    /// The current instant in whole seconds since the Unix epoch.
    pub fn unix_seconds(&self) -> u64 {
        u64::try_from(self.now().timestamp()).unwrap_or(0)
    }
}

/// The instant a retention run (a purge, a prune) deletes as of: the
/// server's `now` unless the caller asks for an earlier one, which deletes
/// less. A later instant would delete early, so it is accepted only for a
/// dry run, as a forecast that deletes nothing.
pub fn retention_instant(
    requested: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<DateTime<Utc>, crate::Error> {
    match requested {
        None => Ok(now),
        Some(at) if at > now && !dry_run => {
            Err(crate::Error::invalid("as_of", "after the service's clock; a later instant is for dry runs only"))
        }
        Some(at) => Ok(at),
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Source::System => f.write_str("Clock::System"),
            Source::Manual(m) => write!(f, "Clock::Manual({})", m.now()),
        }
    }
}

impl From<ManualClock> for Clock {
    fn from(m: ManualClock) -> Self {
        Self(Source::Manual(m))
    }
}

/// A clock for tests: it runs at the speed of real time from an instant the
/// test sets, so that timeouts and expiries still elapse, and can be set or
/// advanced at any moment. Clones share one setting.
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    /// Microseconds added to the system clock.
    offset_us: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock that reads `at` now and runs on from there.
    pub fn starting_at(at: DateTime<Utc>) -> Self {
        let c = Self::default();
        c.set(at);
        c
    }

    /// Makes the clock read `at` now.
    pub fn set(&self, at: DateTime<Utc>) {
        let offset = (at - Utc::now()).num_microseconds().unwrap_or(i64::MAX);
        self.offset_us.store(offset, Ordering::SeqCst);
    }

    /// Moves the clock by `by` (negative: back).
    pub fn advance(&self, by: Duration) {
        self.offset_us.fetch_add(by.num_microseconds().unwrap_or(0), Ordering::SeqCst);
    }

    /// The instant the clock reads.
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + Duration::microseconds(self.offset_us.load(Ordering::SeqCst))
    }

    /// This clock as the services take it.
    pub fn clock(&self) -> Clock {
        self.clone().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_reads_what_it_was_set_to_and_runs_on() {
        let at = DateTime::parse_from_rfc3339("2031-03-09T06:59:00Z").expect("instant").with_timezone(&Utc);
        let m = ManualClock::starting_at(at);
        let clock = m.clock();
        let read = clock.now();
        assert!(read >= at && read - at < Duration::seconds(5), "{read}");
        m.advance(Duration::hours(-30));
        let back = clock.now();
        assert!(back < at - Duration::hours(29), "{back}");
        assert_eq!(clock.unix_seconds(), u64::try_from(clock.now().timestamp()).expect("after 1970"));
    }

    #[test]
    fn the_system_clock_is_the_default() {
        let c = Clock::default();
        let d = (c.now() - Utc::now()).num_seconds().abs();
        assert!(d < 5, "{d}");
        assert_eq!(format!("{c:?}"), "Clock::System");
    }
}

//! Line health: keeps caller numbers from being blocked by carriers, which
//! flag lines with sustained high volume and a falling answer rate, many
//! very short calls, or complaints. A line is scored against its own recent
//! history and the tenant's other lines, and throttled (calls deferred)
//! before it looks like that.

/// Answered calls shorter than this count as short (hang-ups on pickup).
pub const SHORT_CALL_SECONDS: u32 = 10;
/// Below this many calls in the recent window, rates are not trusted.
pub const MIN_SAMPLE: u64 = 20;
/// A recent answer rate below this share of the baseline counts as falling.
pub const FALLING_SHARE: f64 = 0.7;

/// What the store counted for one caller line.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LineStats {
    /// Attempts in the last hour.
    pub attempts_last_hour: u64,
    /// Attempts with an outcome in the last 24 hours.
    pub recent_attempts: u64,
    /// Of those, answered.
    pub recent_answered: u64,
    /// Of the answered, shorter than [`SHORT_CALL_SECONDS`].
    pub recent_short: u64,
    /// Complaints and opt-out requests in the last 24 hours.
    pub recent_complaints: u64,
    /// The line's own attempts with an outcome over the 7 days before.
    pub baseline_attempts: u64,
    /// Of those, answered.
    pub baseline_answered: u64,
    /// The tenant's other lines' attempts with an outcome, last 24 hours.
    pub peer_attempts: u64,
    /// Of those, answered.
    pub peer_answered: u64,
}

/// Thresholds, from the tenant's policy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HealthPolicy {
    /// Calls per hour from which a falling answer rate throttles the line.
    pub throttle_calls_per_hour: u64,
    /// Complaints in 24 hours that throttle the line whatever its volume.
    pub max_complaints_24h: u64,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        Self { throttle_calls_per_hour: 60, max_complaints_24h: 3 }
    }
}

/// The assessment.
#[derive(Clone, Debug, PartialEq)]
pub struct Health {
    /// Answer rate over the recent window (0..1).
    pub answer_rate: f64,
    /// Share of answered calls that were short (0..1).
    pub short_call_rate: f64,
    /// 0 healthy .. 1 about to be blocked.
    pub risk_score: f64,
    /// Whether calls on the line are deferred.
    pub throttled: bool,
    /// Why, readable, when throttled.
    pub reason: String,
}

fn rate(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// Scores a line.
pub fn assess(s: &LineStats, p: &HealthPolicy) -> Health {
    let answer_rate = rate(s.recent_answered, s.recent_attempts).unwrap_or(1.0);
    let short_call_rate = rate(s.recent_short, s.recent_answered).unwrap_or(0.0);
    // The baseline: the line's own history, else the tenant's other lines.
    let baseline = rate(s.baseline_answered, s.baseline_attempts)
        .filter(|_| s.baseline_attempts >= MIN_SAMPLE)
        .or_else(|| rate(s.peer_answered, s.peer_attempts).filter(|_| s.peer_attempts >= MIN_SAMPLE));
    let trusted = s.recent_attempts >= MIN_SAMPLE;
    let drop = match baseline {
        Some(b) if trusted && b > 0.0 => ((b - answer_rate) / b).clamp(0.0, 1.0),
        _ => 0.0,
    };
    let volume = (s.attempts_last_hour as f64 / p.throttle_calls_per_hour.max(1) as f64).min(1.0);
    let complaints = (s.recent_complaints as f64 / p.max_complaints_24h.max(1) as f64).min(1.0);
    let short = if trusted { short_call_rate } else { 0.0 };
    let risk_score = (0.35 * volume + 0.35 * drop + 0.2 * complaints + 0.1 * short).clamp(0.0, 1.0);

    let falling = baseline.is_some_and(|b| trusted && answer_rate < FALLING_SHARE * b);
    let reason = if s.recent_complaints >= p.max_complaints_24h {
        format!("{} complaints in 24 h (limit {})", s.recent_complaints, p.max_complaints_24h)
    } else if s.attempts_last_hour >= p.throttle_calls_per_hour && falling {
        format!(
            "{} calls in the last hour (threshold {}) with the answer rate down to {:.0}% from {:.0}%",
            s.attempts_last_hour,
            p.throttle_calls_per_hour,
            answer_rate * 100.0,
            baseline.unwrap_or_default() * 100.0
        )
    } else {
        String::new()
    };
    Health { answer_rate, short_call_rate, risk_score, throttled: !reason.is_empty(), reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn busy(answered_now: u64, answered_before: u64) -> LineStats {
        LineStats {
            attempts_last_hour: 60,
            recent_attempts: 100,
            recent_answered: answered_now,
            baseline_attempts: 500,
            baseline_answered: answered_before * 5,
            ..Default::default()
        }
    }

    #[test]
    fn high_volume_with_a_falling_answer_rate_throttles() {
        let h = assess(&busy(20, 40), &HealthPolicy::default());
        assert!(h.throttled, "{h:?}");
        assert_eq!(h.reason, "60 calls in the last hour (threshold 60) with the answer rate down to 20% from 40%");
        assert!(h.risk_score > 0.5, "{h:?}");
    }

    #[test]
    fn high_volume_alone_or_a_falling_rate_alone_does_not() {
        assert!(!assess(&busy(38, 40), &HealthPolicy::default()).throttled, "steady answer rate");
        let quiet = LineStats { attempts_last_hour: 59, ..busy(20, 40) };
        assert!(!assess(&quiet, &HealthPolicy::default()).throttled, "just below the threshold");
        let few = LineStats { recent_attempts: 10, recent_answered: 1, ..busy(0, 40) };
        assert!(!assess(&few, &HealthPolicy::default()).throttled, "too few calls to trust the rate");
    }

    #[test]
    fn the_tenants_other_lines_are_the_baseline_of_a_new_line() {
        let new_line = LineStats {
            attempts_last_hour: 80,
            recent_attempts: 50,
            recent_answered: 5,
            peer_attempts: 1000,
            peer_answered: 400,
            ..Default::default()
        };
        assert!(assess(&new_line, &HealthPolicy::default()).throttled);
    }

    #[test]
    fn complaints_throttle_whatever_the_volume() {
        let s = LineStats { recent_complaints: 3, ..Default::default() };
        let h = assess(&s, &HealthPolicy::default());
        assert!(h.throttled && h.reason.starts_with("3 complaints"), "{h:?}");
        let fine = assess(&LineStats::default(), &HealthPolicy::default());
        assert!(!fine.throttled && fine.risk_score == 0.0, "{fine:?}");
    }
}

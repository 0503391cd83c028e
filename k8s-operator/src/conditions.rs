//! Conditions by the Kubernetes API conventions: one per type, `True`,
//! `False` or `Unknown`, a CamelCase reason, the generation judged, and a
//! transition time that moves only when the status does.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::crd::Condition;

/// Sets condition `type_` in `conditions`; keeps its transition time
/// when its status is unchanged.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    (reason, message): (&str, String),
    generation: Option<i64>,
    now: DateTime<Utc>,
) {
    let status = if status { "True" } else { "False" };
    let at = now.to_rfc3339_opts(SecondsFormat::Secs, true);
    let next = Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        last_transition_time: at,
        observed_generation: generation,
    };
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) if c.status == status => {
            let since = std::mem::take(&mut c.last_transition_time);
            *c = Condition { last_transition_time: since, ..next };
        }
        Some(c) => *c = next,
        None => conditions.push(next),
    }
}

/// Whether condition `type_` is `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions.iter().any(|c| c.type_ == type_ && c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transition_time_moves_only_with_the_status() {
        let t0: DateTime<Utc> = "2026-12-02T03:00:00Z".parse().expect("t");
        let later = t0 + chrono::Duration::minutes(5);
        let mut c = Vec::new();
        set(&mut c, "Ready", true, ("RotationSucceeded", "all current".into()), Some(1), t0);
        set(&mut c, "Ready", true, ("RotationSucceeded", "still current".into()), Some(2), later);
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].last_transition_time.as_str(), c[0].observed_generation), ("2026-12-02T03:00:00Z", Some(2)));
        assert_eq!(c[0].message, "still current");
        set(&mut c, "Ready", false, ("RotationFailed", "t1 failing".into()), Some(2), later);
        assert_eq!((c[0].status.as_str(), c[0].last_transition_time.as_str()), ("False", "2026-12-02T03:05:00Z"));
        assert!(!is_true(&c, "Ready"));
        set(&mut c, "Degraded", true, ("RotationFailed", "t1 failing".into()), Some(2), later);
        assert!(is_true(&c, "Degraded") && c.len() == 2);
    }
}

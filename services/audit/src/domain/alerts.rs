//! Anomaly rules over the event stream, with per-tenant thresholds. Pure:
//! the caller feeds events (and the clock, for delivery gaps) and stores what
//! is raised.
//!
//! Rules: `bulk_access` (records revealed or exported by one actor within a
//! window), `off_hours_access` (data access outside the tenant's working
//! hours), `risky_login` and `second_factor_reset` (reported by identity), `line_throttled`
//! (reported by dialer-policy when a caller line drifts toward being
//! blocked), `calendar_missing` (reported by dialer-policy when a pack's
//! official holiday calendar for this or next year is not loaded),
//! `failed_login_burst`, `modification_burst` (lead changes or
//! deletions by one actor), and `delivery_gap` (a service that was acting
//! through the mesh, the `acting_service` of its events, fell silent).

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Datelike, Duration, Timelike, Utc};
use serde::{Deserialize, Serialize};

use super::canonical::Event;

/// Per-tenant thresholds; an alert fires when a count goes above its limit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thresholds {
    /// Records revealed or exported by one actor within `bulk_window_secs`.
    pub bulk_records: u64,
    /// Window of `bulk_records`.
    pub bulk_window_secs: i64,
    /// Failed logins in the tenant within `failed_login_window_secs`.
    pub failed_logins: u64,
    /// Window of `failed_logins`.
    pub failed_login_window_secs: i64,
    /// Lead modifications or deletions by one actor within `modification_window_secs`.
    pub modifications: u64,
    /// Window of `modifications`.
    pub modification_window_secs: i64,
    /// Silence after which a service's delivery counts as interrupted.
    pub delivery_gap_secs: i64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            bulk_records: 200,
            bulk_window_secs: 3600,
            failed_logins: 20,
            failed_login_window_secs: 600,
            modifications: 100,
            modification_window_secs: 600,
            delivery_gap_secs: 900,
        }
    }
}

/// A working-hours interval in the tenant's zone (as identity defines it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hours {
    /// ISO weekdays, 1 = Monday.
    pub weekdays: Vec<u32>,
    /// Start, minutes after local midnight.
    pub start_minute: u32,
    /// End, minutes after local midnight (exclusive).
    pub end_minute: u32,
}

/// A tenant's calendar for off-hours detection.
#[derive(Clone, Debug, PartialEq)]
pub struct Calendar {
    /// Time zone.
    pub tz: chrono_tz::Tz,
    /// Working hours; empty means always working.
    pub hours: Vec<Hours>,
}

impl Calendar {
    fn working(&self, at: DateTime<Utc>) -> bool {
        if self.hours.is_empty() {
            return true;
        }
        let local = at.with_timezone(&self.tz);
        let (day, minute) = (local.weekday().number_from_monday(), local.hour() * 60 + local.minute());
        self.hours.iter().any(|h| h.weekdays.contains(&day) && h.start_minute <= minute && minute < h.end_minute)
    }
}

/// An alert to store and deliver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Raised {
    /// Tenant.
    pub tenant_id: String,
    /// Rule name.
    pub rule: &'static str,
    /// Readable summary, no PII.
    pub summary: String,
    /// The actor it is about.
    pub actor_user: String,
    /// The service it is about (delivery gaps).
    pub actor_service: String,
    /// Triggering events.
    pub event_ids: Vec<String>,
}

type Key = (String, &'static str, String);

/// Sliding windows per (tenant, rule, actor).
#[derive(Debug, Default)]
pub struct Detector {
    windows: HashMap<Key, VecDeque<(DateTime<Utc>, u64, String)>>,
    last_seen: HashMap<(String, String), DateTime<Utc>>,
    gap_alerted: HashMap<(String, String), bool>,
}

fn is_data_access(action: &str) -> bool {
    ["lead.", "recording.", "consent.", "erasure."].iter().any(|p| action.starts_with(p))
}

impl Detector {
    /// A detector with empty windows.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `weight` at `at` to a window and returns the events if the sum
    /// went above `limit` (then the window starts afresh, so one burst raises one alert).
    fn count(
        &mut self,
        key: Key,
        at: DateTime<Utc>,
        weight: u64,
        id: &str,
        window: Duration,
        limit: u64,
    ) -> Option<Vec<String>> {
        let w = self.windows.entry(key).or_default();
        w.push_back((at, weight, id.to_owned()));
        while w.front().is_some_and(|(t, ..)| *t <= at - window) {
            w.pop_front();
        }
        let total: u64 = w.iter().map(|(_, n, _)| n).sum();
        if total > limit {
            let ids = w.iter().map(|(.., id)| id.clone()).collect();
            w.clear();
            Some(ids)
        } else {
            None
        }
    }

    /// Feeds one event, appended at `received`; returns the alerts it raises.
    /// Windows run on the events' own times; delivery gaps on arrival times
    /// (a backlog replayed from an outbox is not a gap).
    pub fn observe(
        &mut self,
        e: &Event,
        received: DateTime<Utc>,
        t: &Thresholds,
        calendar: Option<&Calendar>,
    ) -> Vec<Raised> {
        let mut out = Vec::new();
        let raise = |rule: &'static str, summary: String, ids: Vec<String>| Raised {
            tenant_id: e.tenant_id.clone(),
            rule,
            summary,
            actor_user: e.actor_user.clone(),
            actor_service: e.actor_service.clone(),
            event_ids: ids,
        };
        // Gaps are judged per service acting through a writer (a dialer
        // platform calling without a user token), not per writer: a writer
        // is silent for a tenant whenever its users are.
        if let Some(service) = e.details.get("acting_service").filter(|s| !s.is_empty()) {
            let k = (e.tenant_id.clone(), service.clone());
            self.last_seen.insert(k.clone(), received);
            self.gap_alerted.insert(k, false);
        }
        if let Some((rule, summary, ids)) = self.windowed(e, t) {
            out.push(raise(rule, summary, ids));
        }
        if let Some((rule, summary)) = single(e) {
            out.push(raise(rule, summary, vec![e.id.clone()]));
        }
        if is_data_access(&e.action)
            && e.outcome == "allowed"
            && !e.actor_user.is_empty()
            && calendar.is_some_and(|c| !c.working(e.time))
        {
            out.push(raise(
                "off_hours_access",
                format!("{} outside the tenant's working hours", e.action),
                vec![e.id.clone()],
            ));
        }
        out
    }

    /// The rules that count events in a sliding window: bulk access,
    /// modification bursts, failed-login bursts.
    fn windowed(&mut self, e: &Event, t: &Thresholds) -> Option<(&'static str, String, Vec<String>)> {
        let (tenant, actor) = (e.tenant_id.clone(), e.actor_user.clone());
        let secs = Duration::seconds;
        match e.action.as_str() {
            "lead.reveal" | "lead.export" if e.outcome == "allowed" => {
                let n = e.details.get("count").and_then(|c| c.parse().ok()).unwrap_or(1);
                let window = secs(t.bulk_window_secs);
                let ids = self.count((tenant, "bulk_access", actor), e.time, n, &e.id, window, t.bulk_records)?;
                let why = format!(
                    "more than {} records revealed or exported by one user within {} s",
                    t.bulk_records, t.bulk_window_secs
                );
                Some(("bulk_access", why, ids))
            }
            "lead.update" | "lead.delete" if e.outcome == "allowed" => {
                let window = secs(t.modification_window_secs);
                let key = (tenant, "modification_burst", actor);
                let ids = self.count(key, e.time, 1, &e.id, window, t.modifications)?;
                let why = format!(
                    "more than {} lead changes by one user within {} s",
                    t.modifications, t.modification_window_secs
                );
                Some(("modification_burst", why, ids))
            }
            "identity.login" if e.outcome == "denied" => {
                let window = secs(t.failed_login_window_secs);
                let key = (tenant, "failed_login_burst", String::new());
                let ids = self.count(key, e.time, 1, &e.id, window, t.failed_logins)?;
                let why =
                    format!("more than {} failed logins within {} s", t.failed_logins, t.failed_login_window_secs);
                Some(("failed_login_burst", why, ids))
            }
            _ => None,
        }
    }

    /// Services that were delivering and have been silent longer than the
    /// gap threshold at `now` (each raised once until they resume).
    pub fn check_gaps(&mut self, now: DateTime<Utc>, thresholds: impl Fn(&str) -> Thresholds) -> Vec<Raised> {
        let mut out = Vec::new();
        for ((tenant, service), last) in &self.last_seen {
            let gap = Duration::seconds(thresholds(tenant).delivery_gap_secs);
            let alerted = self.gap_alerted.entry((tenant.clone(), service.clone())).or_insert(false);
            if !*alerted && now - *last > gap {
                *alerted = true;
                out.push(Raised {
                    tenant_id: tenant.clone(),
                    rule: "delivery_gap",
                    summary: format!("no events from {service} for more than {} s", gap.num_seconds()),
                    actor_user: String::new(),
                    actor_service: service.clone(),
                    event_ids: vec![],
                });
            }
        }
        out
    }
}

/// The rules that one event raises on its own: a risky login, a throttled
/// line, a missing holiday calendar, erasure cases past their deadline
/// (reported by the operator's retention run).
fn single(e: &Event) -> Option<(&'static str, String)> {
    let detail = |k: &str| e.details.get(k).cloned().unwrap_or_default();
    match e.action.as_str() {
        "identity.login.risky" => {
            Some(("risky_login", format!("{} risk login: {}", detail("risk_level"), detail("risk_reasons"))))
        }
        "identity.totp.reset" => {
            Some(("second_factor_reset", "a user's second factor was reset by an administrator".to_owned()))
        }
        "dialer.line.throttled" => Some(("line_throttled", format!("caller line throttled: {}", detail("reason")))),
        "dialer.calendar.missing" => Some((
            "calendar_missing",
            format!(
                "no official {} holiday calendar is loaded for pack {}: fixed-date holidays only",
                detail("year"),
                detail("pack")
            ),
        )),
        "erasure.overdue" => {
            Some(("erasure_overdue", format!("{} erasure cases are past their deadline", detail("count"))))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;

//! Unusual-login detection: a login compared with the user's successful
//! logins of the last 30 days. Pure: the caller supplies history and clock.

use std::net::IpAddr;

use chrono::{DateTime, Datelike, Timelike, Utc};

use super::regions;
use super::{RiskAction, RiskLevel, RiskPolicy, WorkingHours};

/// How far back history counts.
pub const HISTORY_DAYS: i64 = 30;
/// Faster than an airliner: the two logins cannot both be genuine.
pub const MAX_TRAVEL_KMH: f64 = 900.0;
/// Below this distance between two regions' centres, travel speed says
/// nothing: address geolocation errs by that much, and neighbouring
/// provinces (Shanghai and Hangzhou, 170 km) are a commute. A new region
/// still counts as one.
pub const MIN_TRAVEL_KM: f64 = 500.0;

/// What we know of one login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginSite {
    /// When.
    pub at: DateTime<Utc>,
    /// Source network (/24 for IPv4, /48 for IPv6), see [`network_of`].
    pub network: String,
    /// Device id reported by the client.
    pub device: String,
    /// Region code reported by the gateway.
    pub region: String,
}

/// The assessment of one login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assessment {
    /// Overall level.
    pub level: RiskLevel,
    /// Signals, e.g. `new_device`, `impossible_travel`.
    pub reasons: Vec<String>,
}

/// The source network of an address: /24 for IPv4, /48 for IPv6. Unparsable
/// input yields an empty network, which never matches history.
pub fn network_of(address: &str) -> String {
    match address.trim().parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => {
            let o = v4.octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        Ok(IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
        Err(_) => String::new(),
    }
}

/// Whether `at` falls inside the tenant's working hours in its time zone.
/// No configured hours means every hour is a working hour.
pub fn within_working_hours(at: DateTime<Utc>, tz: chrono_tz::Tz, hours: &[WorkingHours]) -> bool {
    if hours.is_empty() {
        return true;
    }
    let local = at.with_timezone(&tz);
    let weekday = local.weekday().number_from_monday();
    let minute = local.hour() * 60 + local.minute();
    hours.iter().any(|h| h.weekdays.contains(&weekday) && h.start_minute <= minute && minute < h.end_minute)
}

/// Assesses `current` against `history` (successful logins, any order).
pub fn assess(current: &LoginSite, history: &[LoginSite], tz: chrono_tz::Tz, hours: &[WorkingHours]) -> Assessment {
    let since = current.at - chrono::Duration::days(HISTORY_DAYS);
    let recent: Vec<&LoginSite> = history.iter().filter(|h| h.at >= since && h.at <= current.at).collect();
    let mut reasons = Vec::new();
    let mut score = 0;
    if !recent.is_empty() {
        if !current.network.is_empty() && !recent.iter().any(|h| h.network == current.network) {
            reasons.push("new_network".to_owned());
            score += 1;
        }
        if !current.device.is_empty() && !recent.iter().any(|h| h.device == current.device) {
            reasons.push("new_device".to_owned());
            score += 1;
        }
        if !current.region.is_empty() && !recent.iter().any(|h| h.region == current.region) {
            reasons.push("new_region".to_owned());
            score += 2;
        }
    }
    let mut impossible = false;
    if let Some(last) = recent.iter().max_by_key(|h| h.at)
        && let Some(km) = regions::distance_km(&last.region, &current.region)
    {
        let hours = (current.at - last.at).num_seconds().max(1) as f64 / 3600.0;
        if km >= MIN_TRAVEL_KM && km / hours > MAX_TRAVEL_KMH {
            reasons.push("impossible_travel".to_owned());
            impossible = true;
        }
    }
    if !within_working_hours(current.at, tz, hours) {
        reasons.push("off_hours".to_owned());
        score += 1;
    }
    let level = match (impossible, score) {
        (true, _) | (_, 3..) => RiskLevel::High,
        (_, 2) => RiskLevel::Medium,
        (_, 1) => RiskLevel::Low,
        _ => RiskLevel::None,
    };
    Assessment { level, reasons }
}

/// The tenant policy's action for a level.
pub fn action_for(policy: &RiskPolicy, level: RiskLevel) -> RiskAction {
    match level {
        RiskLevel::None => RiskAction::Allow,
        RiskLevel::Low => policy.low,
        RiskLevel::Medium => policy.medium,
        RiskLevel::High => policy.high,
    }
}

#[cfg(test)]
mod tests;

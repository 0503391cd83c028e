//! Identity's rules: tenant settings, login risk, passwords, second factors,
//! refresh tokens. No tonic, no sea-orm: unit-tested in isolation.

pub mod credentials;
pub mod regions;
pub mod risk;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Assessed risk of a login.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RiskLevel {
    /// Nothing unusual.
    None,
    /// One weak signal.
    Low,
    /// Several signals, or a new region.
    Medium,
    /// Impossible travel, or many signals.
    High,
}

/// What a tenant's policy does with a login at some risk level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RiskAction {
    /// Let it through quietly (only for no risk).
    Allow,
    /// Let it through and raise an alert.
    AllowAndAlert,
    /// Demand a TOTP code even if the role does not.
    RequireTotp,
    /// Refuse the login.
    Deny,
}

/// A tenant's login-risk policy and lockout settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskPolicy {
    /// Action for low risk.
    pub low: RiskAction,
    /// Action for medium risk.
    pub medium: RiskAction,
    /// Action for high risk.
    pub high: RiskAction,
    /// Failed attempts before the account locks.
    pub max_failed_attempts: u32,
    /// Lockout duration.
    pub lockout_seconds: u32,
}

impl Default for RiskPolicy {
    fn default() -> Self {
        Self {
            low: RiskAction::AllowAndAlert,
            medium: RiskAction::RequireTotp,
            high: RiskAction::Deny,
            max_failed_attempts: 5,
            lockout_seconds: 900,
        }
    }
}

impl RiskPolicy {
    /// Checks the bounds, naming the field.
    pub fn validate(&self) -> Result<()> {
        if !(1..=100).contains(&self.max_failed_attempts) {
            return Err(Error::invalid("login_risk_policy.max_failed_attempts", "must be between 1 and 100"));
        }
        if !(60..=86_400).contains(&self.lockout_seconds) {
            return Err(Error::invalid("login_risk_policy.lockout_seconds", "must be between 60 and 86400"));
        }
        for (field, a) in [("low", self.low), ("medium", self.medium), ("high", self.high)] {
            if a == RiskAction::Allow {
                return Err(Error::invalid(format!("login_risk_policy.{field}"), "risky logins must at least alert"));
            }
        }
        Ok(())
    }
}

/// A working-hours interval in the tenant's time zone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkingHours {
    /// ISO weekdays, 1 = Monday.
    pub weekdays: Vec<u32>,
    /// Start, minutes after local midnight.
    pub start_minute: u32,
    /// End, minutes after local midnight (exclusive).
    pub end_minute: u32,
}

/// Checks working hours, naming the offending entry.
pub fn validate_working_hours(hours: &[WorkingHours]) -> Result<()> {
    for (i, h) in hours.iter().enumerate() {
        if h.weekdays.is_empty() || h.weekdays.iter().any(|d| !(1..=7).contains(d)) {
            return Err(Error::invalid(format!("working_hours[{i}].weekdays"), "use 1 (Monday) to 7 (Sunday)"));
        }
        if h.start_minute >= h.end_minute || h.end_minute > 24 * 60 {
            return Err(Error::invalid(format!("working_hours[{i}]"), "start must be before end, within 0..1440"));
        }
    }
    Ok(())
}

/// Parses an IANA time zone, naming the field.
pub fn parse_time_zone(field: &str, tz: &str) -> Result<chrono_tz::Tz> {
    tz.parse().map_err(|_| Error::invalid(field, "not an IANA time zone such as Asia/Shanghai"))
}

/// Checks a display name or tenant name: 1-128 printable characters.
pub fn validate_name(field: &str, name: &str) -> Result<()> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 128 || n.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must be 1-128 printable characters"));
    }
    Ok(())
}

/// Checks a login name: 3-64 characters of a-z, 0-9, `.`, `_`, `-`, `@`.
pub fn validate_login(login: &str) -> Result<()> {
    let ok = (3..=64).contains(&login.len())
        && login.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-@".contains(&b));
    if ok { Ok(()) } else { Err(Error::invalid("login", "use 3-64 characters of a-z, 0-9, '.', '_', '-', '@'")) }
}

/// Checks a role name: 2-48 characters of a-z, 0-9 and `_`.
pub fn validate_role_name(name: &str) -> Result<()> {
    let ok = (2..=48).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok { Ok(()) } else { Err(Error::invalid("name", "use 2-48 characters of a-z, 0-9 and '_'")) }
}

//! A tenant's or a campaign's dialing policy: every field optional, so a
//! campaign overrides only what it sets, then the tenant's policy, then the
//! defaults.

use serde::{Deserialize, Serialize};

use chrono::NaiveDate;

use super::window::{Holiday, Packs, TenantDays};

/// Default calls per callee in 24 hours.
pub const DEFAULT_CALLEE_24H: u32 = 3;
/// Default calls per callee in 30 days.
pub const DEFAULT_CALLEE_30D: u32 = 10;
/// Default calls per hour from which a line's falling answer rate throttles it.
pub const DEFAULT_LINE_THROTTLE_PER_HOUR: u32 = 60;
/// Default oldest acceptable national registry copy, in days.
pub const DEFAULT_REGISTRY_MAX_AGE_DAYS: u32 = 31;

/// A policy as set: `None` inherits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Packs whose windows must all be open; `None`: by the callee's region.
    pub jurisdiction_packs: Option<Vec<String>>,
    /// Purposes that need active consent.
    pub consent_required_purposes: Option<Vec<String>>,
    /// Tenant holidays (`YYYY-MM-DD` or `MM-DD`).
    pub holidays: Option<Vec<String>>,
    /// Tenant working days (`YYYY-MM-DD`): open a weekend day, never an
    /// official day off.
    #[serde(default)]
    pub working_days: Option<Vec<String>>,
    /// A campaign's subject, for the per-subject caps of state laws: calls
    /// to one callee on one subject count together across campaigns.
    /// Defaults to the campaign's id; never inherited from the tenant.
    #[serde(default)]
    pub subject: Option<String>,
    /// Calls per callee in 24 hours (0: no cap).
    pub callee_max_24h: Option<u32>,
    /// Calls per callee in 30 days (0: no cap).
    pub callee_max_30d: Option<u32>,
    /// Calls per agent per hour (0: no cap).
    pub agent_max_per_hour: Option<u32>,
    /// Calls per caller line per hour (0: no cap).
    pub line_max_per_hour: Option<u32>,
    /// Calls per caller line per 24 hours (0: no cap).
    pub line_max_per_day: Option<u32>,
    /// Line-health throttle threshold, calls per hour.
    pub line_throttle_per_hour: Option<u32>,
    /// Oldest acceptable registry copy, in days.
    pub registry_max_age_days: Option<u32>,
    /// Regions whose calls need a loaded registry copy.
    pub registry_required_regions: Option<Vec<String>>,
}

/// The policy in force: every field decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Effective {
    /// Packs; `None`: the pack of the callee's region.
    pub jurisdiction_packs: Option<Vec<String>>,
    /// Purposes that need consent.
    pub consent_required_purposes: Vec<String>,
    /// The tenant's days off and working days.
    pub tenant_days: TenantDays,
    /// Holidays as written, for `GetDialPolicy`.
    pub holiday_names: Vec<String>,
    /// Working days as written, for `GetDialPolicy`.
    pub working_day_names: Vec<String>,
    /// The campaign's own subject, if it set one.
    pub subject: Option<String>,
    /// Callee cap, 24 hours.
    pub callee_max_24h: u32,
    /// Callee cap, 30 days.
    pub callee_max_30d: u32,
    /// Agent cap, per hour.
    pub agent_max_per_hour: u32,
    /// Line cap, per hour.
    pub line_max_per_hour: u32,
    /// Line cap, per day.
    pub line_max_per_day: u32,
    /// Line-health throttle threshold.
    pub line_throttle_per_hour: u32,
    /// Oldest registry copy, days.
    pub registry_max_age_days: u32,
    /// Regions that need a registry copy.
    pub registry_required_regions: Vec<String>,
}

impl Effective {
    /// The line-health thresholds this policy sets.
    pub fn health(&self) -> super::health::HealthPolicy {
        super::health::HealthPolicy {
            throttle_calls_per_hour: u64::from(self.line_throttle_per_hour),
            ..Default::default()
        }
    }
}

/// The pack for a region when the policy names none.
pub fn pack_for_region(region: &str) -> Option<&'static str> {
    match region {
        "US" => Some("us-tcpa"),
        "CN" => Some("cn"),
        _ => None,
    }
}

impl Policy {
    /// `self` where set, else `base`.
    pub fn over(&self, base: &Policy) -> Policy {
        Policy {
            jurisdiction_packs: self.jurisdiction_packs.clone().or_else(|| base.jurisdiction_packs.clone()),
            consent_required_purposes: self
                .consent_required_purposes
                .clone()
                .or_else(|| base.consent_required_purposes.clone()),
            holidays: self.holidays.clone().or_else(|| base.holidays.clone()),
            working_days: self.working_days.clone().or_else(|| base.working_days.clone()),
            subject: self.subject.clone(),
            callee_max_24h: self.callee_max_24h.or(base.callee_max_24h),
            callee_max_30d: self.callee_max_30d.or(base.callee_max_30d),
            agent_max_per_hour: self.agent_max_per_hour.or(base.agent_max_per_hour),
            line_max_per_hour: self.line_max_per_hour.or(base.line_max_per_hour),
            line_max_per_day: self.line_max_per_day.or(base.line_max_per_day),
            line_throttle_per_hour: self.line_throttle_per_hour.or(base.line_throttle_per_hour),
            registry_max_age_days: self.registry_max_age_days.or(base.registry_max_age_days),
            registry_required_regions: self
                .registry_required_regions
                .clone()
                .or_else(|| base.registry_required_regions.clone()),
        }
    }

    /// Checks every field; the error names the field.
    pub fn validate(&self, packs: &Packs) -> Result<(), (String, String)> {
        for (i, p) in self.jurisdiction_packs.iter().flatten().enumerate() {
            if packs.get(p).is_none() {
                return Err((format!("jurisdiction_packs[{i}]"), format!("one of {}", packs.names().join(", "))));
            }
        }
        for (i, p) in self.consent_required_purposes.iter().flatten().enumerate() {
            if p.is_empty() || p.len() > 32 || !p.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
                return Err((format!("consent_required_purposes[{i}]"), "a lowercase name such as marketing".into()));
            }
        }
        for (i, h) in self.holidays.iter().flatten().enumerate() {
            if Holiday::parse(h).is_none() {
                return Err((format!("holidays[{i}]"), "YYYY-MM-DD or MM-DD".into()));
            }
        }
        for (i, d) in self.working_days.iter().flatten().enumerate() {
            if NaiveDate::parse_from_str(d, "%Y-%m-%d").is_err() {
                return Err((format!("working_days[{i}]"), "YYYY-MM-DD".into()));
            }
        }
        if let Some(s) = &self.subject
            && (s.is_empty() || s.len() > 64 || s.chars().any(char::is_control))
        {
            return Err(("subject".into(), "1 to 64 printable characters".into()));
        }
        for (i, r) in self.registry_required_regions.iter().flatten().enumerate() {
            if r.len() != 2 || !r.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err((format!("registry_required_regions[{i}]"), "an ISO 3166 code such as US".into()));
            }
        }
        if self.line_throttle_per_hour == Some(0) {
            return Err(("line_throttle_per_hour".into(), "at least 1 call per hour".into()));
        }
        if self.registry_max_age_days == Some(0) {
            return Err(("registry_max_age_days".into(), "at least 1 day".into()));
        }
        Ok(())
    }

    /// The policy with every default filled in.
    pub fn effective(&self) -> Effective {
        let holiday_names = self.holidays.clone().unwrap_or_default();
        let working_day_names = self.working_days.clone().unwrap_or_default();
        Effective {
            jurisdiction_packs: self.jurisdiction_packs.clone(),
            consent_required_purposes: self
                .consent_required_purposes
                .clone()
                .unwrap_or_else(|| vec!["marketing".to_owned()]),
            tenant_days: TenantDays {
                off: holiday_names.iter().filter_map(|h| Holiday::parse(h)).collect(),
                working: working_day_names
                    .iter()
                    .filter_map(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                    .collect(),
            },
            holiday_names,
            working_day_names,
            subject: self.subject.clone(),
            callee_max_24h: self.callee_max_24h.unwrap_or(DEFAULT_CALLEE_24H),
            callee_max_30d: self.callee_max_30d.unwrap_or(DEFAULT_CALLEE_30D),
            agent_max_per_hour: self.agent_max_per_hour.unwrap_or(0),
            line_max_per_hour: self.line_max_per_hour.unwrap_or(0),
            line_max_per_day: self.line_max_per_day.unwrap_or(0),
            line_throttle_per_hour: self.line_throttle_per_hour.unwrap_or(DEFAULT_LINE_THROTTLE_PER_HOUR),
            registry_max_age_days: self.registry_max_age_days.unwrap_or(DEFAULT_REGISTRY_MAX_AGE_DAYS),
            registry_required_regions: self.registry_required_regions.clone().unwrap_or_else(|| vec!["US".to_owned()]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_campaign_overrides_only_what_it_sets() {
        let tenant = Policy { callee_max_24h: Some(2), holidays: Some(vec!["12-25".into()]), ..Default::default() };
        let campaign =
            Policy { callee_max_24h: Some(1), consent_required_purposes: Some(vec![]), ..Default::default() };
        let e = campaign.over(&tenant).effective();
        assert_eq!(e.callee_max_24h, 1);
        assert_eq!(e.holiday_names, vec!["12-25"]);
        assert!(e.consent_required_purposes.is_empty(), "an empty list is a choice, not a default");
        assert_eq!(e.callee_max_30d, DEFAULT_CALLEE_30D);
        assert_eq!(Policy::default().effective().consent_required_purposes, vec!["marketing"]);
    }

    #[test]
    fn bad_fields_are_named() {
        let packs = Packs::load(None).expect("packs");
        let field = |p: Policy| p.validate(&packs).expect_err("refused").0;
        assert_eq!(
            field(Policy { jurisdiction_packs: Some(vec!["us-tcpa".into(), "mars".into()]), ..Default::default() }),
            "jurisdiction_packs[1]"
        );
        assert_eq!(field(Policy { holidays: Some(vec!["christmas".into()]), ..Default::default() }), "holidays[0]");
        assert_eq!(
            field(Policy { registry_required_regions: Some(vec!["usa".into()]), ..Default::default() }),
            "registry_required_regions[0]"
        );
        assert_eq!(field(Policy { line_throttle_per_hour: Some(0), ..Default::default() }), "line_throttle_per_hour");
        assert!(Policy::default().validate(&packs).is_ok());
    }
}

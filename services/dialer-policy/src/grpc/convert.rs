//! Proto <-> domain conversions of the dialer's messages.

use chrono::{DateTime, Utc};
use guardline_proto::dialer::v1 as pb;

use crate::domain::decision::Verdict;
use crate::domain::policy::{Effective, Policy};
use crate::error::Error;
use crate::service::dnc::TenantList;
use crate::service::{CallQuery, Callee, Decision};

pub(super) fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 }
}

pub(super) fn from_ts(t: Option<prost_types::Timestamp>, field: &str) -> Result<Option<DateTime<Utc>>, Error> {
    t.map(|t| {
        DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32).ok_or_else(|| Error::invalid(field, "out of range"))
    })
    .transpose()
}

pub(super) fn verdict_pb(v: Verdict) -> pb::Verdict {
    match v {
        Verdict::Allow => pb::Verdict::Allow,
        Verdict::Deny => pb::Verdict::Deny,
        Verdict::Defer(_) => pb::Verdict::Defer,
    }
}

pub(super) fn decision_pb(d: Decision, correlation_id: String) -> pb::CheckCallResponse {
    let earliest = match d.verdict {
        Verdict::Defer(t) => t.map(ts),
        _ => None,
    };
    pb::CheckCallResponse {
        verdict: verdict_pb(d.verdict) as i32,
        earliest_allowed_at: earliest,
        rules: d
            .rules
            .into_iter()
            .map(|r| pb::RuleResult { rule: r.rule, outcome: verdict_pb(r.outcome) as i32, reason: r.reason })
            .collect(),
        decision_id: d.id,
        correlation_id,
        plan: d.plan,
        decided_for: Some(ts(d.at)),
    }
}

pub(super) fn query(r: pb::CheckCallRequest) -> Result<CallQuery, Error> {
    let plan_at = from_ts(r.plan_at, "plan_at")?;
    Ok(CallQuery {
        tenant: r.tenant_id,
        callee: r.callee.map(|c| match c {
            pb::check_call_request::Callee::LeadId(id) => Callee::Lead(id),
            pb::check_call_request::Callee::E164(n) => Callee::Number(n),
        }),
        caller_line: r.caller_line,
        campaign: r.campaign_id,
        purpose: r.purpose,
        agent: r.agent_id,
        plan_at,
    })
}

pub(super) fn tenant_list(list: i32, campaign: String, field: &str) -> Result<TenantList, Error> {
    match pb::DncList::try_from(list) {
        Ok(pb::DncList::Internal) => Ok(TenantList::Internal),
        Ok(pb::DncList::Campaign) => Ok(TenantList::Campaign(campaign)),
        Ok(pb::DncList::National) => {
            Err(Error::invalid(field, "the national registry is replaced as a whole with ImportDnc"))
        }
        _ => Err(Error::invalid(field, "INTERNAL or CAMPAIGN")),
    }
}

pub(super) fn strings(s: Option<pb::Strings>) -> Option<Vec<String>> {
    s.map(|s| s.values)
}

pub(super) fn policy_from(p: &pb::DialPolicy) -> Policy {
    Policy {
        jurisdiction_packs: strings(p.jurisdiction_packs.clone()),
        consent_required_purposes: strings(p.consent_required_purposes.clone()),
        holidays: strings(p.holidays.clone()),
        working_days: strings(p.working_days.clone()),
        subject: p.subject.clone(),
        callee_max_24h: p.callee_max_24h,
        callee_max_30d: p.callee_max_30d,
        agent_max_per_hour: p.agent_max_per_hour,
        line_max_per_hour: p.line_max_per_hour,
        line_max_per_day: p.line_max_per_day,
        line_throttle_per_hour: p.line_throttle_per_hour,
        registry_max_age_days: p.registry_max_age_days,
        registry_required_regions: strings(p.registry_required_regions.clone()),
    }
}

pub(super) fn policy_pb(tenant_id: String, campaign_id: String, e: Effective) -> pb::DialPolicy {
    let list = |v: Vec<String>| Some(pb::Strings { values: v });
    pb::DialPolicy {
        tenant_id,
        campaign_id,
        jurisdiction_packs: e.jurisdiction_packs.map(|v| pb::Strings { values: v }),
        consent_required_purposes: list(e.consent_required_purposes),
        holidays: list(e.holiday_names),
        working_days: list(e.working_day_names),
        subject: e.subject,
        callee_max_24h: Some(e.callee_max_24h),
        callee_max_30d: Some(e.callee_max_30d),
        agent_max_per_hour: Some(e.agent_max_per_hour),
        line_max_per_hour: Some(e.line_max_per_hour),
        line_max_per_day: Some(e.line_max_per_day),
        line_throttle_per_hour: Some(e.line_throttle_per_hour),
        registry_max_age_days: Some(e.registry_max_age_days),
        registry_required_regions: list(e.registry_required_regions),
    }
}

//! Proto <-> domain conversions of identity's messages.

use chrono::{DateTime, Utc};
use guardline_proto::identity::v1 as pb;
use tonic::Status;

use crate::domain::{RiskAction, RiskLevel, RiskPolicy, WorkingHours};
use crate::error::Error;
use crate::service::{Credentials, Identity, LoginOutcome};
use crate::store::{self, login_event, role, status, tenant, user};

pub(super) fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 }
}

pub(super) fn from_ts(field: &str, t: Option<&prost_types::Timestamp>) -> Result<Option<DateTime<Utc>>, Status> {
    t.map(|t| {
        DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)
            .ok_or_else(|| Error::invalid(field, "out of range").into())
    })
    .transpose()
}

pub(super) fn risk_action(field: &str, a: i32) -> Result<RiskAction, Status> {
    match pb::RiskAction::try_from(a) {
        Ok(pb::RiskAction::AllowAndAlert) => Ok(RiskAction::AllowAndAlert),
        Ok(pb::RiskAction::RequireTotp) => Ok(RiskAction::RequireTotp),
        Ok(pb::RiskAction::Deny) => Ok(RiskAction::Deny),
        _ => Err(Error::invalid(field, "use ALLOW_AND_ALERT, REQUIRE_TOTP or DENY").into()),
    }
}

pub(super) fn policy_from(p: &pb::LoginRiskPolicy) -> Result<RiskPolicy, Status> {
    let d = RiskPolicy::default();
    Ok(RiskPolicy {
        low: risk_action("login_risk_policy.low", p.low)?,
        medium: risk_action("login_risk_policy.medium", p.medium)?,
        high: risk_action("login_risk_policy.high", p.high)?,
        max_failed_attempts: if p.max_failed_attempts == 0 { d.max_failed_attempts } else { p.max_failed_attempts },
        lockout_seconds: if p.lockout_seconds == 0 { d.lockout_seconds } else { p.lockout_seconds },
    })
}

pub(super) fn action_pb(a: RiskAction) -> pb::RiskAction {
    match a {
        RiskAction::Allow => pb::RiskAction::Unspecified,
        RiskAction::AllowAndAlert => pb::RiskAction::AllowAndAlert,
        RiskAction::RequireTotp => pb::RiskAction::RequireTotp,
        RiskAction::Deny => pb::RiskAction::Deny,
    }
}

pub(super) fn level_pb(l: RiskLevel) -> pb::RiskLevel {
    match l {
        RiskLevel::None => pb::RiskLevel::None,
        RiskLevel::Low => pb::RiskLevel::Low,
        RiskLevel::Medium => pb::RiskLevel::Medium,
        RiskLevel::High => pb::RiskLevel::High,
    }
}

pub(super) fn hours_from(h: &[pb::WorkingHours]) -> Vec<WorkingHours> {
    h.iter()
        .map(|h| WorkingHours { weekdays: h.weekdays.clone(), start_minute: h.start_minute, end_minute: h.end_minute })
        .collect()
}

pub(super) fn tenant_pb(t: tenant::Model) -> pb::Tenant {
    let hours: Vec<WorkingHours> = serde_json::from_str(&t.working_hours).unwrap_or_default();
    let p: RiskPolicy = serde_json::from_str(&t.risk_policy).unwrap_or_default();
    pb::Tenant {
        id: t.id,
        name: t.name,
        status: if t.status == status::ACTIVE { pb::TenantStatus::Active } else { pb::TenantStatus::Suspended } as i32,
        time_zone: t.time_zone,
        working_hours: hours
            .into_iter()
            .map(|h| pb::WorkingHours { weekdays: h.weekdays, start_minute: h.start_minute, end_minute: h.end_minute })
            .collect(),
        login_risk_policy: Some(pb::LoginRiskPolicy {
            low: action_pb(p.low) as i32,
            medium: action_pb(p.medium) as i32,
            high: action_pb(p.high) as i32,
            max_failed_attempts: p.max_failed_attempts,
            lockout_seconds: p.lockout_seconds,
        }),
        created_at: Some(ts(t.created_at)),
    }
}

pub(super) async fn user_pb(identity: &Identity, u: user::Model) -> Result<pb::User, Status> {
    let team_ids = identity.teams_of(&u.tenant_id, &u.id).await?;
    let locked = u.locked_until.is_some_and(|t| t > identity.clock.now());
    let status = match (u.status.as_str(), locked) {
        (status::ACTIVE, true) => pb::UserStatus::Locked,
        (status::ACTIVE, false) => pb::UserStatus::Active,
        _ => pb::UserStatus::Disabled,
    };
    Ok(pb::User {
        roles: store::roles_of(&u),
        totp_enrolled: u.totp_sealed.is_some(),
        id: u.id,
        tenant_id: u.tenant_id,
        login: u.login,
        display_name: u.display_name,
        team_ids,
        status: status as i32,
    })
}

pub(super) fn role_pb(r: role::Model) -> pb::Role {
    pb::Role {
        permissions: serde_json::from_str(&r.permissions).unwrap_or_default(),
        name: r.name,
        tenant_id: r.tenant_id,
        built_in: r.built_in,
    }
}

pub(super) fn login_pb(o: LoginOutcome) -> pb::LoginResponse {
    let (assessment, action) = o.risk;
    pb::LoginResponse {
        access_token: o.access_token,
        access_token_expires_at: Some(ts(o.expires_at)),
        refresh_token: o.refresh_token,
        risk: Some(pb::RiskAssessment {
            level: level_pb(assessment.level) as i32,
            reasons: assessment.reasons,
            action: action_pb(action) as i32,
        }),
    }
}

pub(super) fn event_pb(e: login_event::Model) -> pb::LoginEvent {
    let level = match e.risk_level.as_str() {
        "low" => pb::RiskLevel::Low,
        "medium" => pb::RiskLevel::Medium,
        "high" => pb::RiskLevel::High,
        _ => pb::RiskLevel::None,
    };
    let action = match e.risk_action.as_str() {
        "allow_and_alert" => pb::RiskAction::AllowAndAlert,
        "require_totp" => pb::RiskAction::RequireTotp,
        "deny" => pb::RiskAction::Deny,
        _ => pb::RiskAction::Unspecified,
    };
    pb::LoginEvent {
        id: e.id,
        user_id: e.user_id.unwrap_or_default(),
        at: Some(ts(e.at)),
        success: e.success,
        failure_reason: e.failure_reason,
        risk: Some(pb::RiskAssessment {
            level: level as i32,
            reasons: serde_json::from_str(&e.risk_reasons).unwrap_or_default(),
            action: action as i32,
        }),
        context: Some(guardline_proto::common::v1::RequestContext {
            source_address: e.source_address,
            device_id: e.device_id,
            user_agent: e.user_agent,
            region: e.region,
            trace_id: String::new(),
        }),
    }
}

pub(super) fn page_size(p: Option<&guardline_proto::common::v1::PageRequest>) -> (u64, Option<String>) {
    let size = p.map_or(50, |p| if p.page_size == 0 { 50 } else { u64::from(p.page_size) });
    (size.min(1000), p.map(|p| p.page_token.clone()).filter(|t| !t.is_empty()))
}

pub(super) fn creds(tenant: &str, login: &str, password: &str) -> Option<Credentials> {
    (!login.is_empty()).then(|| Credentials {
        tenant: tenant.into(),
        login: login.into(),
        password: password.into(),
        totp_code: String::new(),
    })
}

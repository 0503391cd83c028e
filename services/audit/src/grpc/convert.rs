//! Proto <-> domain conversions of audit's messages: events, alerts, thresholds.

use chrono::{DateTime, Utc};
use guardline_proto::audit::v1 as pb;
use guardline_proto::common::v1::{Outcome, RequestContext};
use tonic::Status;

use crate::domain::alerts::Thresholds;
use crate::domain::canonical::Event;
use crate::error::Error;
use crate::service::alerting::state;
use crate::store::alert;

pub(super) fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 }
}

pub(super) fn from_ts(field: &str, t: &prost_types::Timestamp) -> Result<DateTime<Utc>, Status> {
    DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)
        .ok_or_else(|| Error::invalid(field, "out of range").into())
}

pub(super) fn alert_pb(a: alert::Model) -> pb::Alert {
    let st = match a.state.as_str() {
        state::OPEN => pb::AlertState::Open,
        state::ACKNOWLEDGED => pb::AlertState::Acknowledged,
        _ => pb::AlertState::Resolved,
    };
    pb::Alert {
        event_ids: serde_json::from_str(&a.event_ids).unwrap_or_default(),
        id: a.id,
        tenant_id: a.tenant_id,
        rule: a.rule,
        summary: a.summary,
        actor: Some(pb::Actor { user_id: a.actor_user, service_identity: a.actor_service }),
        state: st as i32,
        raised_at: Some(ts(a.raised_at)),
        updated_by: a.updated_by,
        updated_at: a.updated_at.map(ts),
    }
}

pub(super) fn thresholds_pb(t: &Thresholds) -> pb::AlertThresholds {
    let secs = |s: i64| u32::try_from(s).unwrap_or(u32::MAX);
    pb::AlertThresholds {
        bulk_records: t.bulk_records,
        bulk_window_seconds: secs(t.bulk_window_secs),
        failed_logins: t.failed_logins,
        failed_login_window_seconds: secs(t.failed_login_window_secs),
        modifications: t.modifications,
        modification_window_seconds: secs(t.modification_window_secs),
        delivery_gap_seconds: secs(t.delivery_gap_secs),
    }
}

/// Applies the non-zero fields of `p` to `t`.
pub(super) fn merge_thresholds(mut t: Thresholds, p: &pb::AlertThresholds) -> Thresholds {
    let pick = |new: u64, old: u64| if new == 0 { old } else { new };
    let pick_s = |new: u32, old: i64| if new == 0 { old } else { i64::from(new) };
    t.bulk_records = pick(p.bulk_records, t.bulk_records);
    t.bulk_window_secs = pick_s(p.bulk_window_seconds, t.bulk_window_secs);
    t.failed_logins = pick(p.failed_logins, t.failed_logins);
    t.failed_login_window_secs = pick_s(p.failed_login_window_seconds, t.failed_login_window_secs);
    t.modifications = pick(p.modifications, t.modifications);
    t.modification_window_secs = pick_s(p.modification_window_seconds, t.modification_window_secs);
    t.delivery_gap_secs = pick_s(p.delivery_gap_seconds, t.delivery_gap_secs);
    t
}

pub(super) fn outcome_str(o: i32) -> Option<&'static str> {
    match Outcome::try_from(o) {
        Ok(Outcome::Allowed) => Some("allowed"),
        Ok(Outcome::Denied) => Some("denied"),
        Ok(Outcome::Failed) => Some("failed"),
        _ => None,
    }
}

pub(super) fn from_pb(i: usize, e: pb::AuditEvent) -> Result<Event, Status> {
    let time = e.time.as_ref().ok_or_else(|| Status::from(Error::invalid(format!("events[{i}].time"), "required")))?;
    let outcome = outcome_str(e.outcome).ok_or_else(|| {
        Status::from(Error::invalid(format!("events[{i}].outcome"), "must be ALLOWED, DENIED or FAILED"))
    })?;
    let actor = e.actor.unwrap_or_default();
    let resource = e.resource.unwrap_or_default();
    let ctx = e.context.unwrap_or_default();
    Ok(Event {
        id: e.id,
        tenant_id: e.tenant_id,
        time: from_ts(&format!("events[{i}].time"), time)?,
        actor_user: actor.user_id,
        actor_service: actor.service_identity,
        action: e.action,
        resource_type: resource.r#type,
        resource_id: resource.id,
        outcome: outcome.into(),
        reason: e.reason,
        source_address: ctx.source_address,
        device_id: ctx.device_id,
        user_agent: ctx.user_agent,
        region: ctx.region,
        trace_id: ctx.trace_id,
        details: e.details,
    })
}

pub(super) fn to_pb(e: Event) -> pb::AuditEvent {
    let outcome = match e.outcome.as_str() {
        "allowed" => Outcome::Allowed,
        "denied" => Outcome::Denied,
        _ => Outcome::Failed,
    };
    pb::AuditEvent {
        id: e.id,
        tenant_id: e.tenant_id,
        time: Some(ts(e.time)),
        actor: Some(pb::Actor { user_id: e.actor_user, service_identity: e.actor_service }),
        action: e.action,
        resource: Some(pb::ResourceRef { r#type: e.resource_type, id: e.resource_id }),
        outcome: outcome as i32,
        reason: e.reason,
        context: Some(RequestContext {
            source_address: e.source_address,
            device_id: e.device_id,
            user_agent: e.user_agent,
            region: e.region,
            trace_id: e.trace_id,
        }),
        details: e.details,
    }
}

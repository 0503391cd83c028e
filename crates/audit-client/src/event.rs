//! Building audit events.

use std::collections::HashMap;

use guardline_proto::audit::v1::{Actor, AuditEvent, ResourceRef};
use guardline_proto::common::v1::Outcome as ProtoOutcome;

/// How an audited operation ended. The services name outcomes with this
/// type; the proto enum stays inside this crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Authorised and performed.
    Allowed,
    /// Refused by policy.
    Denied,
    /// Authorised but failed.
    Failed,
}

impl From<Outcome> for ProtoOutcome {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::Allowed => Self::Allowed,
            Outcome::Denied => Self::Denied,
            Outcome::Failed => Self::Failed,
        }
    }
}

/// Builds an [`AuditEvent`] with a fresh time-ordered id and the current time.
#[derive(Debug)]
pub struct EventBuilder {
    event: AuditEvent,
}

impl EventBuilder {
    /// An event of `action` in `tenant`, outcome ALLOWED until said otherwise.
    pub fn new(tenant: &str, action: &str) -> Self {
        let now = std::time::SystemTime::now();
        Self {
            event: AuditEvent {
                id: uuid::Uuid::now_v7().to_string(),
                tenant_id: tenant.to_owned(),
                time: Some(prost_types::Timestamp::from(now)),
                action: action.to_owned(),
                outcome: ProtoOutcome::Allowed as i32,
                details: HashMap::new(),
                ..Default::default()
            },
        }
    }

    /// Performed by a user, or by the mesh service `acting_service` that
    /// called the writer (either may be empty). Audit attributes every event
    /// to the writer's own certificate, so the service the writer acted for
    /// is recorded as the `acting_service` detail, not as the actor.
    pub fn actor(mut self, user_id: &str, acting_service: &str) -> Self {
        self.event.actor = Some(Actor { user_id: user_id.to_owned(), service_identity: String::new() });
        if !acting_service.is_empty() {
            self.event.details.insert("acting_service".to_owned(), acting_service.to_owned());
        }
        self
    }

    /// Acting on a resource (ids only).
    pub fn resource(mut self, kind: &str, id: &str) -> Self {
        self.event.resource = Some(ResourceRef { r#type: kind.to_owned(), id: id.to_owned() });
        self
    }

    /// The outcome and why.
    pub fn outcome(mut self, outcome: Outcome, reason: &str) -> Self {
        self.event.outcome = ProtoOutcome::from(outcome) as i32;
        self.event.reason = reason.to_owned();
        self
    }

    /// A detail: ids, counts, field names or masked values; never PII.
    pub fn detail(mut self, key: &str, value: impl ToString) -> Self {
        self.event.details.insert(key.to_owned(), value.to_string());
        self
    }

    /// The event.
    pub fn build(self) -> AuditEvent {
        self.event
    }
}

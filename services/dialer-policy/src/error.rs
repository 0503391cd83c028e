//! The dialer's errors: its own refusals as one typed enum, [`DialerError`],
//! and everything shared (a field violation, not found, storage) as the
//! runtime's [`Error`], which maps both to gRPC statuses once. A refusal
//! reaches the client with a `google.rpc.ErrorInfo` naming its variant.

use guardline_runtime::error::Refusal;
pub use guardline_runtime::{Error, Result};
use tonic::Code;

/// What the dialer refuses on its own rules.
#[derive(Debug, thiserror::Error)]
pub enum DialerError {
    /// An attempt named a planning decision.
    #[error("{decision} is a plan, which never admits a call; check the call when placing it")]
    PlanAdmitsNoCall {
        /// The decision's id.
        decision: String,
    },
    /// An attempt named a decision that denied or deferred the call.
    #[error("decision {decision} did not allow the call")]
    NotAllowed {
        /// The decision's id.
        decision: String,
    },
    /// An attempt named a decision that already placed a call.
    #[error("decision {decision} was already used")]
    AlreadyUsed {
        /// The decision's id.
        decision: String,
    },
    /// An attempt named a decision too old (or from the future) to trust.
    #[error("decision {decision} is stale; check the call again")]
    Stale {
        /// The decision's id.
        decision: String,
    },
    /// A frequency cap filled up between the decision and the attempt.
    #[error("{rule}: {count} of {limit} calls in the last {window}")]
    CapReached {
        /// The cap's rule, e.g. `cap.callee.24h`.
        rule: &'static str,
        /// Calls counted.
        count: u64,
        /// The cap.
        limit: u64,
        /// The window, in words.
        window: &'static str,
    },
    /// A window or the registry copy closed between the decision and the attempt.
    #[error("{rule}: {reason}")]
    ClosedSinceDecision {
        /// The rule that no longer allows, e.g. `window.cn`.
        rule: String,
        /// Its explanation, as a decision gives it.
        reason: String,
    },
    /// An attempt's outcome was already recorded.
    #[error("the outcome of {attempt} is already recorded")]
    OutcomeRecorded {
        /// The attempt's id.
        attempt: String,
    },
    /// Every number of the tenant's AXB pool is bound to this agent line.
    #[error(
        "the privacy-number pool is exhausted: all {size} numbers are bound to this agent line; release a binding or add numbers"
    )]
    PoolExhausted {
        /// Numbers in the pool.
        size: usize,
    },
    /// A stored registry copy ends before its announced length.
    #[error("the registry file {file} is truncated")]
    RegistryTruncated {
        /// Its path.
        file: String,
    },
}

impl Refusal for DialerError {
    fn code(&self) -> Code {
        match self {
            Self::PoolExhausted { .. } => Code::ResourceExhausted,
            Self::RegistryTruncated { .. } => Code::DataLoss,
            _ => Code::FailedPrecondition,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Self::PlanAdmitsNoCall { .. } => "PLAN_ADMITS_NO_CALL",
            Self::NotAllowed { .. } => "DECISION_NOT_ALLOWED",
            Self::AlreadyUsed { .. } => "DECISION_ALREADY_USED",
            Self::Stale { .. } => "DECISION_STALE",
            Self::CapReached { .. } => "CAP_REACHED",
            Self::ClosedSinceDecision { .. } => "CLOSED_SINCE_DECISION",
            Self::OutcomeRecorded { .. } => "OUTCOME_ALREADY_RECORDED",
            Self::PoolExhausted { .. } => "PRIVACY_POOL_EXHAUSTED",
            Self::RegistryTruncated { .. } => "REGISTRY_TRUNCATED",
        }
    }

    fn domain(&self) -> &'static str {
        "dialer-policy.guardline.io"
    }

    fn metadata(&self) -> Vec<(&'static str, String)> {
        match self {
            Self::CapReached { rule, count, limit, .. } => {
                vec![("rule", (*rule).into()), ("count", count.to_string()), ("limit", limit.to_string())]
            }
            Self::ClosedSinceDecision { rule, .. } => vec![("rule", rule.clone())],
            Self::PoolExhausted { size } => vec![("pool_size", size.to_string())],
            _ => Vec::new(),
        }
    }
}

//! Who calls an operation open to both users and a trusted service.

use guardline_authz::{Resource, Subject, decide};

use crate::error::{Error, Result};

/// Who calls an operation that both users and a trusted service may call:
/// a user, judged by their permissions, or the operator's service identity
/// acting alone, which the gRPC layer admits only on the RPCs it drives.
#[derive(Clone, Copy, Debug)]
pub enum Actor<'a> {
    /// A user, from a verified token.
    User(&'a Subject),
    /// A service identity acting alone (`operator`), from the peer certificate.
    Service(&'static str),
}

impl Actor<'_> {
    /// Whether the actor may do `action` in `tenant`.
    pub fn require(&self, action: &str, tenant: &str) -> Result<()> {
        match self {
            Actor::User(who) => {
                let d = decide(who, action, &Resource { tenant: tenant.into(), ..Default::default() });
                if d.allowed { Ok(()) } else { Err(Error::PermissionDenied(d.rule)) }
            }
            Actor::Service(_) => Ok(()),
        }
    }

    /// The audit actor's user id (empty for a service).
    pub fn user(&self) -> &str {
        match self {
            Actor::User(who) => &who.user,
            Actor::Service(_) => "",
        }
    }

    /// The audit actor's service identity (empty for a user).
    pub fn service(&self) -> &str {
        match self {
            Actor::User(_) => "",
            Actor::Service(s) => s,
        }
    }
}

/// The caller of an RPC open to both users and the operator, as the gRPC
/// layer resolved it.
#[derive(Debug)]
pub enum Caller {
    /// A user, from a verified token.
    User(Subject),
    /// A service identity acting alone, from the peer certificate.
    Service(&'static str),
}

impl Caller {
    /// The actor an operation judges.
    pub fn actor(&self) -> Actor<'_> {
        match self {
            Caller::User(who) => Actor::User(who),
            Caller::Service(s) => Actor::Service(s),
        }
    }
}

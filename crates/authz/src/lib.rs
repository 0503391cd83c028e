//! Authorization decisions, as pure code: roles are named sets of
//! permissions, a permission is an action with an optional scope
//! (`lead.read:team`), and everything not granted is denied.
//!
//! The identity service answers `Authorize` with this code, and every other
//! service runs the same code locally on a verified token's claims, so that
//! a read costs no extra RPC.
//!
//! Architecture invariant: nothing here does I/O; a decision depends only on
//! its inputs.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// How far a scoped permission reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Resources the subject owns.
    Own,
    /// Resources of a team the subject belongs to or leads.
    Team,
    /// Every resource of the subject's tenant.
    Tenant,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Self::Own => "own",
            Self::Team => "team",
            Self::Tenant => "tenant",
        }
    }
}

/// Every action Guardline knows, and whether it takes a scope.
pub const ACTIONS: &[(&str, bool)] = &[
    ("lead.read", true),
    ("lead.write", true),
    ("lead.reveal", false),
    ("lead.export", false),
    ("lead.transfer", false),
    ("recording.play", false),
    ("consent.manage", false),
    ("erasure.execute", false),
    ("dnc.manage", false),
    ("policy.manage", false),
    ("audit.read", false),
    ("alert.manage", false),
    ("user.manage", false),
    ("key.rotate", false),
];

/// Permissions that make a role sensitive: holders must use a second factor.
pub const REQUIRES_TOTP: &[&str] = &["user.manage", "key.rotate"];

/// An action, with a scope for scoped actions (`lead.read:own`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Permission {
    action: &'static str,
    scope: Option<Scope>,
}

/// Why a permission string was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The action is not one of [`ACTIONS`].
    #[error("unknown action")]
    UnknownAction,
    /// A scoped action without a scope, or an unscoped one with a scope.
    #[error("this action {0}")]
    Scope(&'static str),
    /// The scope is not own, team or tenant.
    #[error("unknown scope (use own, team or tenant)")]
    UnknownScope,
}

impl FromStr for Permission {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        let (action, scope) = match s.split_once(':') {
            Some((a, sc)) => (a, Some(sc)),
            None => (s, None),
        };
        let &(action, scoped) = ACTIONS.iter().find(|(a, _)| *a == action).ok_or(ParseError::UnknownAction)?;
        let scope = match (scoped, scope) {
            (true, None) => return Err(ParseError::Scope("needs a scope: own, team or tenant")),
            (false, Some(_)) => return Err(ParseError::Scope("takes no scope")),
            (false, None) => None,
            (true, Some("own")) => Some(Scope::Own),
            (true, Some("team")) => Some(Scope::Team),
            (true, Some("tenant")) => Some(Scope::Tenant),
            (true, Some(_)) => return Err(ParseError::UnknownScope),
        };
        Ok(Self { action, scope })
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.scope {
            Some(s) => write!(f, "{}:{}", self.action, s.as_str()),
            None => f.write_str(self.action),
        }
    }
}

impl Permission {
    /// The action.
    pub fn action(&self) -> &'static str {
        self.action
    }

    /// The scope, for scoped actions.
    pub fn scope(&self) -> Option<Scope> {
        self.scope
    }
}

/// Parses permission strings, naming the first bad one by index.
pub fn parse_permissions<S: AsRef<str>>(items: &[S]) -> Result<Vec<Permission>, (usize, ParseError)> {
    items.iter().enumerate().map(|(i, s)| s.as_ref().parse().map_err(|e| (i, e))).collect()
}

/// The built-in roles every tenant has, with their permissions.
pub const BUILTIN_ROLES: &[(&str, &[&str])] = &[
    ("agent", &["lead.read:own", "lead.write:own", "recording.play", "consent.manage"]),
    (
        "team_lead",
        &["lead.read:team", "lead.write:team", "lead.reveal", "lead.transfer", "recording.play", "consent.manage"],
    ),
    (
        "admin",
        &[
            "lead.read:tenant",
            "lead.write:tenant",
            "lead.reveal",
            "lead.export",
            "lead.transfer",
            "recording.play",
            "consent.manage",
            "erasure.execute",
            "dnc.manage",
            "policy.manage",
            "audit.read",
            "alert.manage",
            "user.manage",
            "key.rotate",
        ],
    ),
    ("auditor", &["audit.read", "alert.manage"]),
    (
        "compliance_officer",
        &[
            "lead.read:tenant",
            "recording.play",
            "consent.manage",
            "erasure.execute",
            "dnc.manage",
            "policy.manage",
            "audit.read",
        ],
    ),
];

/// The permissions of a built-in role.
pub fn builtin_role(name: &str) -> Option<Vec<Permission>> {
    BUILTIN_ROLES.iter().find(|(n, _)| *n == name).map(|(_, perms)| {
        perms.iter().map(|p| p.parse().unwrap_or_else(|_| unreachable!("built-in permissions parse"))).collect()
    })
}

/// Who is asking: a user of a tenant with the permissions of their roles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    /// Tenant id.
    pub tenant: String,
    /// User id.
    pub user: String,
    /// Teams the user belongs to or leads.
    pub teams: BTreeSet<String>,
    /// The union of the permissions of the user's roles.
    pub permissions: BTreeSet<Permission>,
}

impl Subject {
    /// A subject from verified token claims; permission strings that do not
    /// parse grant nothing.
    pub fn from_claims(tenant: &str, user: &str, teams: &[String], perms: &[String]) -> Self {
        Self {
            tenant: tenant.to_owned(),
            user: user.to_owned(),
            teams: teams.iter().cloned().collect(),
            permissions: perms.iter().filter_map(|p| p.parse().ok()).collect(),
        }
    }

    /// Whether the subject holds `action` in `tenant` at any scope: the
    /// check made before anything else is read, so a caller who may never
    /// act learns nothing of the request's rules.
    pub fn may_ever(&self, action: &str, tenant: &str) -> bool {
        self.tenant == tenant && self.permissions.iter().any(|p| p.action() == action)
    }
}

/// What is acted upon.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resource {
    /// Tenant that owns the resource.
    pub tenant: String,
    /// The owning user, for owned resources (a lead's agent).
    pub owner: Option<String>,
    /// The team the resource belongs to.
    pub team: Option<String>,
}

/// An answer, with the rule that decided it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether the action is allowed.
    pub allowed: bool,
    /// The deciding rule, readable, without PII.
    pub rule: String,
}

impl Decision {
    fn allow(p: &Permission, why: &str) -> Self {
        Self { allowed: true, rule: format!("{p} grants it{why}") }
    }

    fn deny(rule: impl Into<String>) -> Self {
        Self { allowed: false, rule: rule.into() }
    }
}

/// Decides whether `subject` may perform `action` on `resource`.
/// A subject never reaches another tenant's resource, whatever its roles.
pub fn decide(subject: &Subject, action: &str, resource: &Resource) -> Decision {
    if subject.tenant.is_empty() || subject.tenant != resource.tenant {
        return Decision::deny("cross-tenant access is never allowed");
    }
    let mut best: Option<Decision> = None;
    for p in subject.permissions.iter().filter(|p| p.action == action) {
        let d = match p.scope {
            None | Some(Scope::Tenant) => Some(Decision::allow(p, "")),
            Some(Scope::Team) => match &resource.team {
                Some(t) if subject.teams.contains(t) => Some(Decision::allow(p, " (the caller's team)")),
                _ => None,
            },
            Some(Scope::Own) => match &resource.owner {
                Some(o) if *o == subject.user => Some(Decision::allow(p, " (the caller owns it)")),
                _ => None,
            },
        };
        if d.is_some() {
            best = d;
            break;
        }
    }
    best.unwrap_or_else(|| {
        if subject.permissions.iter().any(|p| p.action == action) {
            Decision::deny(format!("{action} is granted only for resources outside this one's scope"))
        } else {
            Decision::deny(format!("no role grants {action} (deny by default)"))
        }
    })
}

/// How far `subject` may read with a scoped action: the widest granted scope.
/// Services use it to filter listings (own leads, the team's, or all).
pub fn widest_scope(subject: &Subject, action: &str) -> Option<Scope> {
    subject.permissions.iter().filter(|p| p.action == action).map(|p| p.scope.unwrap_or(Scope::Tenant)).max()
}

/// Whether holding these permissions requires a second factor.
pub fn requires_totp<'a>(permissions: impl IntoIterator<Item = &'a Permission>) -> bool {
    permissions.into_iter().any(|p| REQUIRES_TOTP.contains(&p.action))
}

#[cfg(test)]
mod tests;

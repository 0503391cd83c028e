//! Identity's operations: the domain rules applied to stored state, with
//! every change and its audit event committed in one transaction.

mod admin;
pub mod keys;
pub mod passwords;
mod session;
mod tokens;
mod totp;

use guardline_runtime::clock::Clock;
use std::sync::Arc;
use std::time::Duration;

use guardline_audit_client::EventBuilder;
use guardline_authz::{Resource, Subject, decide};
use guardline_keys::Envelope;
use guardline_runtime::token::{Claims, TokenVerifier};

pub use admin::{NewUser, TenantSettings, UserChanges};
pub use session::{ClientContext, Credentials, LoginOutcome};

use crate::error::{Error, Result};
use crate::store::Store;
use keys::Signers;

/// Tunables of the service.
#[derive(Clone, Debug)]
pub struct Config {
    /// Access-token lifetime (at most 15 minutes).
    pub access_ttl: Duration,
    /// Refresh-token lifetime.
    pub refresh_ttl: Duration,
    /// Failed logins from one source address before it is blocked.
    pub source_max_failures: u32,
    /// Window and block duration for source-address failures.
    pub source_window: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            access_ttl: Duration::from_secs(10 * 60),
            refresh_ttl: Duration::from_secs(12 * 3600),
            source_max_failures: 20,
            source_window: Duration::from_secs(15 * 60),
        }
    }
}

/// Who is calling, as established by mTLS and the bearer token.
#[derive(Clone, Debug)]
pub enum Caller {
    /// A platform-admin service identity: manages tenants.
    Platform(String),
    /// Another service of the mesh, without a user.
    Service(String),
    /// A user, with verified claims.
    User(Claims),
}

impl Caller {
    fn actor(&self) -> (&str, &str) {
        match self {
            Self::Platform(s) | Self::Service(s) => ("", s.as_str()),
            Self::User(c) => (c.sub.as_str(), ""),
        }
    }

    /// The subject of a user caller.
    pub fn subject(&self) -> Option<Subject> {
        match self {
            Self::User(c) => Some(Subject::from_claims(&c.tenant, &c.sub, &c.teams, &c.perms)),
            _ => None,
        }
    }
}

/// Identity verifies its own tokens from its key ring, which is local: it
/// looks again often, so a revoked key stops at once here too.
fn own_verifier(signers: &Arc<keys::Signers>, clock: Clock) -> Arc<TokenVerifier> {
    Arc::new(
        TokenVerifier::new(keys::OwnKeys(signers.clone()))
            .with_min_refresh(Duration::from_millis(200))
            .with_refresh_interval(Duration::from_millis(200))
            .with_clock(clock),
    )
}

/// The identity service's state.
#[derive(Debug)]
pub struct Identity {
    pub(crate) store: Store,
    pub(crate) envelope: Arc<Envelope>,
    pub(crate) signers: Arc<Signers>,
    pub(crate) verifier: Arc<TokenVerifier>,
    pub(crate) config: Config,
    /// The server's time: token lifetimes, lockouts, login history.
    pub(crate) clock: Clock,
    /// Service identities (SPIFFE ids) that may read any tenant's settings
    /// without a user token: the audit service, for working hours.
    pub tenant_readers: Vec<String>,
    /// Service identities (SPIFFE ids) that may list every tenant: the operator.
    pub tenant_listers: Vec<String>,
    /// Argon2id on a bounded blocking pool.
    pub(crate) passwords: passwords::Passwords,
}

impl Identity {
    /// Assembles the service.
    pub fn new(store: Store, envelope: Arc<Envelope>, signers: Arc<Signers>, config: Config) -> Self {
        let verifier = own_verifier(&signers, Clock::system());
        Self {
            store,
            envelope,
            signers,
            verifier,
            config,
            clock: Clock::system(),
            tenant_readers: Vec::new(),
            tenant_listers: Vec::new(),
            passwords: Default::default(),
        }
    }

    /// The verifier of its own tokens, which the server's rate limits share.
    pub fn verifier(&self) -> Arc<TokenVerifier> {
        self.verifier.clone()
    }

    /// The same service on `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.verifier = own_verifier(&self.signers, clock.clone());
        self.clock = clock;
        self
    }

    /// Verifies one of our own access tokens.
    pub async fn verify(&self, token: &str) -> Result<Claims> {
        self.verifier.verify(token).await
    }

    /// The platform may do anything; a user needs `action` in `tenant`.
    pub(crate) fn require(&self, caller: &Caller, tenant: &str, action: &str) -> Result<()> {
        match caller {
            Caller::Platform(_) => Ok(()),
            Caller::Service(s) => Err(Error::PermissionDenied(format!("{s} acts for no user; {action} needs one"))),
            Caller::User(_) => {
                let subject = caller.subject().ok_or_else(|| Error::Internal("user without subject".into()))?;
                let d = decide(&subject, action, &Resource { tenant: tenant.to_owned(), ..Default::default() });
                if d.allowed { Ok(()) } else { Err(Error::PermissionDenied(d.rule)) }
            }
        }
    }

    /// An audit event of `action` by `caller` in `tenant`.
    pub(crate) fn event(caller: &Caller, tenant: &str, action: &str) -> EventBuilder {
        let (user, service) = caller.actor();
        EventBuilder::new(tenant, action).actor(user, service)
    }
}

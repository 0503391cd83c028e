//! Login, refresh, logout and second factors.

use chrono::{DateTime, Utc};
use guardline_audit_client::Outcome;
use guardline_keys::aead::Binding;
use guardline_runtime::token::Claims;

use super::admin::json;
use super::{Caller, Identity};
use crate::domain::credentials::{check_totp, needs_rehash};
use crate::domain::risk::{self, Assessment, LoginSite, network_of};
use crate::domain::{RiskAction, RiskLevel, RiskPolicy, WorkingHours, parse_time_zone};
use crate::error::{Error, IdentityError, Result};
use crate::store::{self, Tx, login_event, sessions, source_failure, status, tenant, tenants, user, users};

/// Where a login comes from, as reported by the gateway.
#[derive(Clone, Debug, Default)]
pub struct ClientContext {
    /// Source IP address.
    pub source_address: String,
    /// Device id.
    pub device_id: String,
    /// User agent.
    pub user_agent: String,
    /// Region code.
    pub region: String,
}

/// A login attempt's credentials.
#[derive(Clone)]
pub struct Credentials {
    /// Tenant id.
    pub tenant: String,
    /// Login name.
    pub login: String,
    /// Password.
    pub password: String,
    /// TOTP code, if any.
    pub totp_code: String,
}

/// A successful login or refresh.
#[derive(Clone, Debug)]
pub struct LoginOutcome {
    /// Signed access token.
    pub access_token: String,
    /// Its expiry.
    pub expires_at: DateTime<Utc>,
    /// Opaque refresh token (shown once, stored hashed).
    pub refresh_token: String,
    /// Risk assessment and the action taken.
    pub risk: (Assessment, RiskAction),
}

fn level_str(l: RiskLevel) -> &'static str {
    match l {
        RiskLevel::None => "none",
        RiskLevel::Low => "low",
        RiskLevel::Medium => "medium",
        RiskLevel::High => "high",
    }
}

fn action_str(a: RiskAction) -> &'static str {
    match a {
        RiskAction::Allow => "allow",
        RiskAction::AllowAndAlert => "allow_and_alert",
        RiskAction::RequireTotp => "require_totp",
        RiskAction::Deny => "deny",
    }
}

/// Where and when a login attempt happened.
#[derive(Clone, Copy)]
struct Site<'a> {
    tenant: &'a str,
    user: Option<&'a str>,
    ctx: &'a ClientContext,
    now: DateTime<Utc>,
}

/// What a failed attempt records: the reason and whether it counts towards lockout.
struct Failure {
    reason: &'static str,
    counts: bool,
    error: Error,
    /// The attempt had reserved one of the user's allowed failures.
    reserved: bool,
}

fn fail(reason: &'static str, counts: bool, error: Error) -> Failure {
    Failure { reason, counts, error, reserved: false }
}

pub(super) fn locked() -> Error {
    IdentityError::AccountLocked.into()
}

pub(super) fn invalid_credentials() -> Error {
    IdentityError::InvalidCredentials.into()
}

pub(super) fn totp_binding<'a>(tenant: &'a str, user: &'a str, kind: &'a str) -> Binding<'a> {
    Binding { kind, tenant, record: user, field: "totp", version: 0 }
}

impl Identity {
    async fn record_login(
        &self,
        tx: &Tx,
        at: Site<'_>,
        outcome: Result<(), &str>,
        risk: Option<&(Assessment, RiskAction)>,
    ) -> Result<()> {
        let Site { tenant, user, ctx, now } = at;
        let (level, reasons, action) = match risk {
            Some((a, act)) => (level_str(a.level), a.reasons.clone(), action_str(*act)),
            None => ("none", vec![], "none"),
        };
        let id = uuid::Uuid::now_v7().to_string();
        let row = login_event::Model {
            id: id.clone(),
            tenant_id: tenant.into(),
            user_id: user.map(str::to_owned),
            at: now,
            success: outcome.is_ok(),
            failure_reason: outcome.err().unwrap_or_default().into(),
            risk_level: level.into(),
            risk_reasons: json(&reasons)?,
            risk_action: action.into(),
            source_address: ctx.source_address.clone(),
            network: network_of(&ctx.source_address),
            device_id: ctx.device_id.clone(),
            region: ctx.region.clone(),
            user_agent: ctx.user_agent.chars().take(256).collect(),
        };
        sessions::insert_login(tx, row).await?;
        let caller = Caller::User(Claims { sub: user.unwrap_or_default().into(), ..blank_claims(tenant) });
        let mut event = Self::event(&caller, tenant, "identity.login")
            .resource("user", user.unwrap_or("unknown"))
            .detail("login_event", &id)
            .detail("network", network_of(&ctx.source_address))
            .detail("region", &ctx.region)
            .detail("risk_level", level)
            .detail("risk_reasons", reasons.join(","))
            .detail("risk_action", action);
        event = match outcome {
            Ok(()) => event.outcome(Outcome::Allowed, ""),
            Err(reason) => event.outcome(Outcome::Denied, reason),
        };
        tx.enqueue(event).await?;
        if outcome.is_ok() && risk.is_some_and(|(a, _)| a.level > RiskLevel::None) {
            let alert = Self::event(&caller, tenant, "identity.login.risky")
                .resource("user", user.unwrap_or("unknown"))
                .detail("risk_level", level)
                .detail("risk_reasons", reasons.join(","));
            tx.enqueue(alert).await?;
        }
        Ok(())
    }

    async fn source_blocked(&self, tenant: &str, addr: &str, now: DateTime<Utc>) -> Result<bool> {
        let row = sessions::source_failure(&self.store, tenant, addr).await?;
        Ok(row.and_then(|r| r.locked_until).is_some_and(|until| until > now))
    }

    async fn count_source_failure(&self, tx: &Tx, tenant: &str, addr: &str, now: DateTime<Utc>) -> Result<()> {
        if addr.is_empty() {
            return Ok(());
        }
        let window = chrono::Duration::from_std(self.config.source_window).unwrap_or_default();
        let row = sessions::source_failure(tx, tenant, addr).await?;
        let (failures, start) = match &row {
            Some(r) if now - r.window_start < window => (r.failures + 1, r.window_start),
            _ => (1, now),
        };
        let locked = (failures as u32 >= self.config.source_max_failures).then_some(now + window);
        let model = source_failure::Model {
            tenant_id: tenant.into(),
            source_address: addr.into(),
            failures,
            window_start: start,
            locked_until: locked,
        };
        sessions::put_source_failure(tx, model, row.is_some()).await
    }

    /// Authenticates a user and issues tokens, or refuses with a reason.
    pub async fn login(&self, creds: Credentials, ctx: ClientContext) -> Result<LoginOutcome> {
        let now = self.clock.now();
        let tenant = self.active_tenant(&creds).await?;
        let user = users::by_login(&self.store, &tenant.id, &creds.login).await?;
        // Before the transaction: a rotation writes through another connection.
        self.signers.rotate_if_due(now).await?;
        let mut attempt = self.attempt(&tenant, user.as_ref(), &creds, &ctx, now).await;
        // A TOTP code logs in once: parallel logins with one code race on a
        // conditional update, and only one wins.
        if let Ok((u, risk, Some(step))) = &attempt
            && !self.claim_totp_step(&u.id, *step).await?
        {
            let f = Failure { reserved: true, ..fail("totp_replayed", true, invalid_credentials()) };
            attempt = Err((f, Some(risk.clone())));
        }
        let tx = self.store.begin().await?;
        let result = match attempt {
            Ok((user, risk, _)) => {
                let site = Site { tenant: &tenant.id, user: Some(&user.id), ctx: &ctx, now };
                self.logged_in(&tx, site, &user, &creds.password, risk).await
            }
            Err((failure, risk)) => {
                let uid = user.as_ref().map(|u| u.id.as_str());
                let site = Site { tenant: &tenant.id, user: uid, ctx: &ctx, now };
                Err(self.failed(&tx, &tenant, site, failure, risk).await?)
            }
        };
        self.store.commit(tx, []).await?;
        result
    }

    /// The active tenant the credentials name; an unknown or inactive one
    /// costs a password hash too and answers as a wrong password would.
    async fn active_tenant(&self, creds: &Credentials) -> Result<tenant::Model> {
        match tenants::tenant(&self.store, &creds.tenant).await?.filter(|t| t.status == status::ACTIVE) {
            Some(t) => Ok(t),
            None => {
                self.passwords.verify_dummy(&creds.password).await?;
                Err(invalid_credentials())
            }
        }
    }

    /// Books a failed attempt: the user's reserved failure counted or given
    /// back, the source address's failure counted, the attempt recorded.
    /// Returns the error to answer with.
    async fn failed(
        &self,
        tx: &Tx,
        tenant: &tenant::Model,
        site: Site<'_>,
        failure: Failure,
        risk: Option<(Assessment, RiskAction)>,
    ) -> Result<Error> {
        if let Some(uid) = site.user {
            if failure.counts && failure.reserved {
                self.count_user_failure(tx, tenant, uid, site.now).await?;
            } else if failure.reserved {
                // Not a guess (disabled, refused by risk...): the reserved
                // failure is given back.
                users::release_attempt(tx, uid).await?;
            }
        }
        if failure.counts {
            self.count_source_failure(tx, &tenant.id, &site.ctx.source_address, site.now).await?;
        }
        self.record_login(tx, site, Err(failure.reason), risk.as_ref()).await?;
        Ok(failure.error)
    }

    /// Authenticates a user by password alone, for enrolling a first second
    /// factor: the same checks and the same lockout as a login (a failure
    /// is booked as a failed login), and no session.
    pub(super) async fn password_only(&self, creds: &Credentials, ctx: &ClientContext) -> Result<user::Model> {
        let now = self.clock.now();
        let tenant = self.active_tenant(creds).await?;
        let user = users::by_login(&self.store, &tenant.id, &creds.login).await?;
        match self.password_checked(&tenant, user.as_ref(), &creds.password, ctx, now).await {
            Ok(u) => {
                users::release_attempt(&self.store, &u.id).await?;
                Ok(u)
            }
            Err(failure) => {
                let tx = self.store.begin().await?;
                let site = Site { tenant: &tenant.id, user: user.as_ref().map(|u| u.id.as_str()), ctx, now };
                let error = self.failed(&tx, &tenant, site, failure, None).await?;
                self.store.commit(tx, []).await?;
                Err(error)
            }
        }
    }

    /// A login that passed: tokens issued, failures reset, the login recorded.
    async fn logged_in(
        &self,
        tx: &Tx,
        site: Site<'_>,
        user: &user::Model,
        password: &str,
        risk: (Assessment, RiskAction),
    ) -> Result<LoginOutcome> {
        let outcome = self.issue(tx, user, None, site.now, risk.clone()).await?;
        let mut next = user.clone();
        next.failed_attempts = 0;
        next.locked_until = None;
        let mut cols = vec![user::Column::FailedAttempts, user::Column::LockedUntil];
        // A hash made with other parameters is replaced while the password
        // is at hand.
        if needs_rehash(&user.password_hash) {
            next.password_hash = self.passwords.hash(password).await?;
            cols.push(user::Column::PasswordHash);
        }
        users::save(tx, next, &cols).await?;
        self.record_login(tx, site, Ok(()), Some(&risk)).await?;
        Ok(outcome)
    }

    pub(super) async fn count_user_failure(
        &self,
        tx: &Tx,
        tenant: &tenant::Model,
        uid: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let policy: RiskPolicy = serde_json::from_str(&tenant.risk_policy).unwrap_or_default();
        // The failure was counted when the attempt reserved it; read the
        // count as it is now, under this transaction.
        let Some(mut current) = users::user(tx, uid).await? else { return Ok(()) };
        if Ord::max(current.failed_attempts, 0) as u32 >= policy.max_failed_attempts {
            current.locked_until = Some(now + chrono::Duration::seconds(i64::from(policy.lockout_seconds)));
            current.failed_attempts = 0;
            let caller = Caller::User(Claims { sub: uid.to_owned(), ..blank_claims(&tenant.id) });
            let event = Self::event(&caller, &tenant.id, "identity.lockout")
                .resource("user", uid)
                .outcome(Outcome::Denied, "too many failed attempts")
                .detail("lockout_seconds", policy.lockout_seconds);
            tx.enqueue(event).await?;
            users::save(tx, current, &[user::Column::LockedUntil, user::Column::FailedAttempts]).await?;
        }
        Ok(())
    }

    /// Records that TOTP time step `step` was used, unless it (or a later
    /// one) already was: true for the one login that may use it.
    pub(super) async fn claim_totp_step(&self, user_id: &str, step: u64) -> Result<bool> {
        users::claim_totp_step(&self.store, user_id, step).await
    }

    /// The checks of a login, in order; no writes.
    async fn attempt(
        &self,
        tenant: &tenant::Model,
        user: Option<&user::Model>,
        creds: &Credentials,
        ctx: &ClientContext,
        now: DateTime<Utc>,
    ) -> Result<(user::Model, (Assessment, RiskAction), Option<u64>), (Failure, Option<(Assessment, RiskAction)>)> {
        let user = self.password_checked(tenant, user, &creds.password, ctx, now).await.map_err(|f| (f, None))?;
        self.verified(tenant, &user, creds, ctx, now).await.map_err(|(f, r)| (Failure { reserved: true, ..f }, r))
    }

    /// The checks every password takes, in order: the source address, the
    /// account's lock, one reserved failure, the password, the account's
    /// status. No writes but the reservation.
    async fn password_checked(
        &self,
        tenant: &tenant::Model,
        user: Option<&user::Model>,
        password: &str,
        ctx: &ClientContext,
        now: DateTime<Utc>,
    ) -> Result<user::Model, Failure> {
        let db = |e: Error| fail("internal", false, e);
        if self.source_blocked(&tenant.id, &ctx.source_address, now).await.map_err(db)? {
            return Err(fail("source_locked", false, IdentityError::SourceLocked.into()));
        }
        let Some(user) = user else {
            self.passwords.verify_dummy(password).await.map_err(db)?;
            return Err(fail("unknown_login", true, invalid_credentials()));
        };
        if user.locked_until.is_some_and(|t| t > now) {
            return Err(fail("locked", false, locked()));
        }
        let policy: RiskPolicy = serde_json::from_str(&tenant.risk_policy).unwrap_or_default();
        // One of the allowed failures is taken before the password is checked
        // (an atomic conditional increment), so that parallel guesses never
        // check more passwords than the limit.
        if !users::reserve_attempt(&self.store, &user.id, policy.max_failed_attempts, now).await.map_err(db)? {
            return Err(fail("locked", false, locked()));
        }
        let reserved = |f: Failure| Failure { reserved: true, ..f };
        if !self.passwords.verify(password, &user.password_hash).await.map_err(|e| reserved(db(e)))? {
            return Err(reserved(fail("bad_password", true, invalid_credentials())));
        }
        if user.status != status::ACTIVE {
            return Err(reserved(fail("disabled", false, invalid_credentials())));
        }
        Ok(user.clone())
    }

    /// The risk of a login, judged against the last 30 days of successful
    /// logins, and the action the tenant's policy takes on it.
    async fn risk_of(
        &self,
        tenant: &tenant::Model,
        user: &user::Model,
        ctx: &ClientContext,
        now: DateTime<Utc>,
    ) -> Result<(Assessment, RiskAction)> {
        // Risk, judged against the last 30 days of successful logins.
        let since = now - chrono::Duration::days(risk::HISTORY_DAYS);
        let history = store::login_history(&self.store, &tenant.id, &user.id, since).await?;
        let tz = parse_time_zone("time_zone", &tenant.time_zone).unwrap_or(chrono_tz::UTC);
        let hours: Vec<WorkingHours> = serde_json::from_str(&tenant.working_hours).unwrap_or_default();
        let policy: RiskPolicy = serde_json::from_str(&tenant.risk_policy).unwrap_or_default();
        let site = LoginSite {
            at: now,
            network: network_of(&ctx.source_address),
            device: ctx.device_id.clone(),
            region: ctx.region.clone(),
        };
        let assessment = risk::assess(&site, &history, tz, &hours);
        let action = risk::action_for(&policy, assessment.level);
        Ok((assessment, action))
    }

    /// The checks of a login after the password passed; no writes.
    async fn verified(
        &self,
        tenant: &tenant::Model,
        user: &user::Model,
        creds: &Credentials,
        ctx: &ClientContext,
        now: DateTime<Utc>,
    ) -> Result<(user::Model, (Assessment, RiskAction), Option<u64>), (Failure, Option<(Assessment, RiskAction)>)> {
        let db = |e: Error| (fail("internal", false, e), None);
        let risk = self.risk_of(tenant, user, ctx, now).await.map_err(db)?;
        let action = risk.1;
        if action == RiskAction::Deny {
            let e = Error::from(IdentityError::RiskDenied);
            return Err((fail("risk_denied", false, e), Some(risk)));
        }
        // Second factor: required by the role, by enrolment, or by the risk policy.
        let perms = store::permissions_of(&self.store, &tenant.id, &store::roles_of(user)).await.map_err(db)?;
        let parsed: Vec<guardline_authz::Permission> = perms.iter().filter_map(|p| p.parse().ok()).collect();
        let by_role = guardline_authz::requires_totp(&parsed);
        let enrolled = user.totp_sealed.is_some();
        if !(by_role || enrolled || action == RiskAction::RequireTotp) {
            return Ok((user.clone(), risk, None));
        }
        if !enrolled {
            let e =
                if by_role { IdentityError::EnrollSecondFactor } else { IdentityError::RiskNeedsSecondFactor }.into();
            return Err((fail("totp_not_enrolled", false, e), Some(risk)));
        }
        if creds.totp_code.trim().is_empty() {
            let e = Error::from(IdentityError::SecondFactorRequired);
            return Err((fail("totp_required", false, e), Some(risk)));
        }
        let secret = self.open_totp(user, "totp").await.map_err(db)?;
        let last = user.totp_last_step.map(|s| s as u64);
        match check_totp(&secret, &creds.totp_code, now.timestamp() as u64, last) {
            Some(step) => Ok((user.clone(), risk, Some(step))),
            None => Err((fail("bad_totp", true, invalid_credentials()), Some(risk))),
        }
    }

    /// Login events of a tenant (`audit.read` or `user.manage`), newest first.
    pub async fn login_events(
        &self,
        caller: &Caller,
        tenant: &str,
        user: Option<&str>,
        range: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
        before: Option<&str>,
        limit: u64,
    ) -> Result<Vec<login_event::Model>> {
        if self.require(caller, tenant, "audit.read").is_err() {
            self.require(caller, tenant, "user.manage")?;
        }
        sessions::logins(&self.store, tenant, user, range, before, limit).await
    }
}

/// Claims that only name a tenant (for audit actors outside a token).
pub(super) fn blank_claims(tenant: &str) -> Claims {
    Claims {
        iss: String::new(),
        sub: String::new(),
        tenant: tenant.into(),
        roles: vec![],
        teams: vec![],
        perms: vec![],
        iat: 0,
        exp: 0,
        jti: String::new(),
    }
}

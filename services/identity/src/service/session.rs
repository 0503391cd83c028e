//! Login, refresh, logout and second factors.

use chrono::{DateTime, Utc};
use guardline_audit_client::Outcome;
use guardline_keys::aead::{self, Binding};
use guardline_runtime::token::Claims;

use super::admin::json;
use super::{Caller, Identity};
use crate::domain::credentials::{
    check_totp, needs_rehash, new_refresh_token, new_totp_secret, refresh_token_hash, totp_uri,
};
use crate::domain::risk::{self, Assessment, LoginSite, network_of};
use crate::domain::{RiskAction, RiskLevel, RiskPolicy, WorkingHours, parse_time_zone};
use crate::error::{Error, Result};
use crate::store::{
    self, Tx, login_event, refresh_token, sessions, source_failure, status, tenant, tenants, user, users,
};

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

fn locked() -> Error {
    Error::ResourceExhausted("account locked after repeated failures; try again later".into())
}

fn invalid_credentials() -> Error {
    Error::Unauthenticated("invalid credentials".into())
}

fn totp_binding<'a>(tenant: &'a str, user: &'a str, kind: &'a str) -> Binding<'a> {
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
        let Some(tenant) = tenants::tenant(&self.store, &creds.tenant).await?.filter(|t| t.status == status::ACTIVE)
        else {
            self.passwords.verify_dummy(&creds.password).await?;
            return Err(invalid_credentials());
        };
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
                let outcome = self.issue(&tx, &user, None, now, risk.clone()).await?;
                let mut next = user.clone();
                next.failed_attempts = 0;
                next.locked_until = None;
                let mut cols = vec![user::Column::FailedAttempts, user::Column::LockedUntil];
                // A hash made with other parameters is replaced while the
                // password is at hand.
                if needs_rehash(&user.password_hash) {
                    next.password_hash = self.passwords.hash(&creds.password).await?;
                    cols.push(user::Column::PasswordHash);
                }
                users::save(&tx, next, &cols).await?;
                let site = Site { tenant: &tenant.id, user: Some(&user.id), ctx: &ctx, now };
                self.record_login(&tx, site, Ok(()), Some(&risk)).await?;
                Ok(outcome)
            }
            Err((failure, risk)) => {
                if let Some(u) = &user {
                    if failure.counts && failure.reserved {
                        self.count_user_failure(&tx, &tenant, u, now).await?;
                    } else if failure.reserved {
                        // Not a guess (disabled, refused by risk...): the
                        // reserved failure is given back.
                        users::release_attempt(&tx, &u.id).await?;
                    }
                }
                if failure.counts {
                    self.count_source_failure(&tx, &tenant.id, &ctx.source_address, now).await?;
                }
                let uid = user.as_ref().map(|u| u.id.as_str());
                let site = Site { tenant: &tenant.id, user: uid, ctx: &ctx, now };
                self.record_login(&tx, site, Err(failure.reason), risk.as_ref()).await?;
                Err(failure.error)
            }
        };
        self.store.commit(tx, []).await?;
        result
    }

    async fn count_user_failure(
        &self,
        tx: &Tx,
        tenant: &tenant::Model,
        u: &user::Model,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let policy: RiskPolicy = serde_json::from_str(&tenant.risk_policy).unwrap_or_default();
        // The failure was counted when the attempt reserved it; read the
        // count as it is now, under this transaction.
        let Some(mut current) = users::user(tx, &u.id).await? else { return Ok(()) };
        if Ord::max(current.failed_attempts, 0) as u32 >= policy.max_failed_attempts {
            current.locked_until = Some(now + chrono::Duration::seconds(i64::from(policy.lockout_seconds)));
            current.failed_attempts = 0;
            let caller = Caller::User(Claims { sub: u.id.clone(), ..blank_claims(&tenant.id) });
            let event = Self::event(&caller, &tenant.id, "identity.lockout")
                .resource("user", &u.id)
                .outcome(Outcome::Denied, "too many failed attempts")
                .detail("lockout_seconds", policy.lockout_seconds);
            tx.enqueue(event).await?;
            users::save(tx, current, &[user::Column::LockedUntil, user::Column::FailedAttempts]).await?;
        }
        Ok(())
    }

    /// Records that TOTP time step `step` was used, unless it (or a later
    /// one) already was: true for the one login that may use it.
    async fn claim_totp_step(&self, user_id: &str, step: u64) -> Result<bool> {
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
        let db = |e: Error| (fail("internal", false, e), None);
        if self.source_blocked(&tenant.id, &ctx.source_address, now).await.map_err(db)? {
            let e = Error::ResourceExhausted("too many failed logins from this address; try again later".into());
            return Err((fail("source_locked", false, e), None));
        }
        let Some(user) = user else {
            self.passwords.verify_dummy(&creds.password).await.map_err(db)?;
            return Err((fail("unknown_login", true, invalid_credentials()), None));
        };
        if user.locked_until.is_some_and(|t| t > now) {
            return Err((fail("locked", false, locked()), None));
        }
        let policy: RiskPolicy = serde_json::from_str(&tenant.risk_policy).unwrap_or_default();
        // One of the allowed failures is taken before the password is checked
        // (an atomic conditional increment), so that parallel guesses never
        // check more passwords than the limit.
        if !users::reserve_attempt(&self.store, &user.id, policy.max_failed_attempts, now).await.map_err(db)? {
            return Err((fail("locked", false, locked()), None));
        }
        self.verified(tenant, user, creds, ctx, now).await.map_err(|(f, r)| (Failure { reserved: true, ..f }, r))
    }

    /// The checks of a login after an attempt was reserved; no writes.
    async fn verified(
        &self,
        tenant: &tenant::Model,
        user: &user::Model,
        creds: &Credentials,
        ctx: &ClientContext,
        now: DateTime<Utc>,
    ) -> Result<(user::Model, (Assessment, RiskAction), Option<u64>), (Failure, Option<(Assessment, RiskAction)>)> {
        let db = |e: Error| (fail("internal", false, e), None);
        if !self.passwords.verify(&creds.password, &user.password_hash).await.map_err(db)? {
            return Err((fail("bad_password", true, invalid_credentials()), None));
        }
        if user.status != status::ACTIVE {
            return Err((fail("disabled", false, invalid_credentials()), None));
        }
        // Risk, judged against the last 30 days of successful logins.
        let since = now - chrono::Duration::days(risk::HISTORY_DAYS);
        let history = store::login_history(&self.store, &tenant.id, &user.id, since).await.map_err(db)?;
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
        let risk = (assessment, action);
        if action == RiskAction::Deny {
            let e = Error::PermissionDenied("login refused by the tenant's risk policy".into());
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
            let e = if by_role {
                Error::FailedPrecondition("this role requires a second factor: enroll one with EnrollTotp".into())
            } else {
                Error::PermissionDenied("the risk policy requires a second factor and none is enrolled".into())
            };
            return Err((fail("totp_not_enrolled", false, e), Some(risk)));
        }
        if creds.totp_code.trim().is_empty() {
            let e = Error::Unauthenticated("a second factor (TOTP code) is required".into());
            return Err((fail("totp_required", false, e), Some(risk)));
        }
        let secret = self.open_totp(user, "totp").await.map_err(db)?;
        let last = user.totp_last_step.map(|s| s as u64);
        match check_totp(&secret, &creds.totp_code, now.timestamp() as u64, last) {
            Some(step) => Ok((user.clone(), risk, Some(step))),
            None => Err((fail("bad_totp", true, invalid_credentials()), Some(risk))),
        }
    }

    /// Signs an access token and stores a new refresh token (in `family`, or a new one).
    async fn issue(
        &self,
        tx: &Tx,
        user: &user::Model,
        family: Option<String>,
        now: DateTime<Utc>,
        risk: (Assessment, RiskAction),
    ) -> Result<LoginOutcome> {
        let roles = store::roles_of(user);
        let perms = store::permissions_of(tx, &user.tenant_id, &roles).await?;
        let teams = store::teams_of(tx, &user.tenant_id, &user.id).await?;
        let claims =
            Claims::issued_at(now.timestamp() as u64, &user.tenant_id, &user.id, roles, teams, self.config.access_ttl)
                .with_permissions(perms);
        let access_token = self.signers.sign(&claims).await?;
        let (refresh, hash) = new_refresh_token()?;
        let row = refresh_token::Model {
            hash,
            family_id: family.unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
            tenant_id: user.tenant_id.clone(),
            user_id: user.id.clone(),
            created_at: now,
            expires_at: now + chrono::Duration::from_std(self.config.refresh_ttl).unwrap_or_default(),
            used_at: None,
            revoked: false,
        };
        sessions::insert_refresh(tx, row).await?;
        let expires_at = DateTime::from_timestamp(claims.exp as i64, 0).unwrap_or(now);
        Ok(LoginOutcome { access_token, expires_at, refresh_token: refresh, risk })
    }

    /// Spends a refresh token for new tokens. Spending one twice revokes its
    /// whole family: a stolen token and the genuine one cannot both live.
    pub async fn refresh(&self, token: &str) -> Result<LoginOutcome> {
        let now = self.clock.now();
        self.signers.rotate_if_due(now).await?;
        let hash = refresh_token_hash(token);
        let row = sessions::refresh(&self.store, &hash)
            .await?
            .ok_or_else(|| Error::Unauthenticated("invalid refresh token".into()))?;
        let tx = self.store.begin().await?;
        // Conditional update: of two concurrent spends, exactly one wins.
        if !sessions::spend_refresh(&tx, &hash, now).await? {
            sessions::revoke_family(&tx, &row.family_id).await?;
            let caller = Caller::User(Claims { sub: row.user_id.clone(), ..blank_claims(&row.tenant_id) });
            let event = Self::event(&caller, &row.tenant_id, "identity.refresh.reuse")
                .resource("user", &row.user_id)
                .outcome(Outcome::Denied, "refresh token reused; session family revoked");
            self.store.commit(tx, [event]).await?;
            return Err(Error::Unauthenticated("refresh token reuse detected; the session was revoked".into()));
        }
        if row.expires_at <= now {
            // Dropping the transaction rolls it back.
            drop(tx);
            return Err(Error::Unauthenticated("refresh token expired".into()));
        }
        let user = self.user(&row.tenant_id, &row.user_id).await.ok().filter(|u| u.status == status::ACTIVE);
        let Some(user) = user else {
            sessions::revoke_family(&tx, &row.family_id).await?;
            self.store.commit(tx, []).await?;
            return Err(Error::Unauthenticated("invalid refresh token".into()));
        };
        let none = (Assessment { level: RiskLevel::None, reasons: vec![] }, RiskAction::Allow);
        let outcome = self.issue(&tx, &user, Some(row.family_id.clone()), now, none).await?;
        self.store.commit(tx, []).await?;
        Ok(outcome)
    }

    /// Revokes the family of a refresh token; unknown tokens are ignored.
    pub async fn logout(&self, token: &str) -> Result<()> {
        if let Some(row) = sessions::refresh(&self.store, &refresh_token_hash(token)).await? {
            let tx = self.store.begin().await?;
            sessions::revoke_family(&tx, &row.family_id).await?;
            let caller = Caller::User(Claims { sub: row.user_id.clone(), ..blank_claims(&row.tenant_id) });
            let event = Self::event(&caller, &row.tenant_id, "identity.logout").resource("user", &row.user_id);
            self.store.commit(tx, [event]).await?;
        }
        Ok(())
    }

    /// The user a TOTP call is about: the token's user, or the credentials'.
    pub async fn totp_subject(&self, caller: Option<&Claims>, creds: Option<&Credentials>) -> Result<user::Model> {
        if let Some(c) = caller {
            return self.user(&c.tenant, &c.sub).await;
        }
        let creds = creds.ok_or_else(|| Error::Unauthenticated("a bearer token or credentials are required".into()))?;
        match users::by_login(&self.store, &creds.tenant, &creds.login).await? {
            Some(u) if u.status == status::ACTIVE => {
                if self.passwords.verify(&creds.password, &u.password_hash).await? {
                    Ok(u)
                } else {
                    Err(invalid_credentials())
                }
            }
            _ => {
                self.passwords.verify_dummy(&creds.password).await?;
                Err(invalid_credentials())
            }
        }
    }

    async fn open_totp(&self, user: &user::Model, kind: &str) -> Result<Vec<u8>> {
        let sealed = if kind == "totp" { &user.totp_sealed } else { &user.totp_pending_sealed };
        let (Some(sealed), Some(dk_id)) = (sealed, &user.totp_data_key_id) else {
            return Err(Error::FailedPrecondition("no second factor enrolment in progress".into()));
        };
        let dk = self.envelope.data_key(&user.tenant_id, dk_id).await?;
        Ok(aead::open(&dk, &totp_binding(&user.tenant_id, &user.id, kind), sealed)
            .map_err(guardline_runtime::Error::from)?
            .to_vec())
    }

    /// Starts enrolment: a new secret, sealed, pending confirmation. Returns the `otpauth://` URI.
    pub async fn enroll_totp(&self, user: &user::Model) -> Result<String> {
        let secret = new_totp_secret()?;
        let (dk_id, dk) = self.envelope.active_data_key(&user.tenant_id).await?;
        let sealed = aead::seal(&dk, &totp_binding(&user.tenant_id, &user.id, "totp-pending"), &secret)
            .map_err(guardline_runtime::Error::from)?;
        let mut next = user.clone();
        next.totp_pending_sealed = Some(sealed);
        // Re-seal an existing secret under the same data key, so one id serves both.
        if user.totp_sealed.is_some() && user.totp_data_key_id.as_deref() != Some(dk_id.as_str()) {
            let current = self.open_totp(user, "totp").await?;
            let resealed = aead::seal(&dk, &totp_binding(&user.tenant_id, &user.id, "totp"), &current)
                .map_err(guardline_runtime::Error::from)?;
            next.totp_sealed = Some(resealed);
        }
        next.totp_data_key_id = Some(dk_id);
        let cols = [user::Column::TotpPendingSealed, user::Column::TotpSealed, user::Column::TotpDataKeyId];
        users::save(&self.store, next, &cols).await?;
        totp_uri(&secret, &format!("{}@{}", user.login, user.tenant_id))
    }

    /// Confirms enrolment with a first valid code; the pending secret becomes the factor.
    pub async fn confirm_totp(&self, user: &user::Model, code: &str) -> Result<()> {
        let secret = self.open_totp(user, "totp-pending").await?;
        let now = self.clock.now();
        let step = check_totp(&secret, code, now.timestamp() as u64, None)
            .ok_or_else(|| Error::invalid("code", "does not match the authenticator"))?;
        let dk_id = user.totp_data_key_id.clone().ok_or_else(|| Error::Internal("totp data key".into()))?;
        let dk = self.envelope.data_key(&user.tenant_id, &dk_id).await?;
        let sealed = aead::seal(&dk, &totp_binding(&user.tenant_id, &user.id, "totp"), &secret)
            .map_err(guardline_runtime::Error::from)?;
        let mut next = user.clone();
        next.totp_sealed = Some(sealed);
        next.totp_pending_sealed = None;
        next.totp_last_step = Some(step as i64);
        let tx = self.store.begin().await?;
        let cols = [user::Column::TotpSealed, user::Column::TotpPendingSealed, user::Column::TotpLastStep];
        users::save(&tx, next, &cols).await?;
        let caller = Caller::User(Claims { sub: user.id.clone(), ..blank_claims(&user.tenant_id) });
        let event = Self::event(&caller, &user.tenant_id, "identity.totp.enroll").resource("user", &user.id);
        self.store.commit(tx, [event]).await
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
fn blank_claims(tenant: &str) -> Claims {
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

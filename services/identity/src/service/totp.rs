//! The second factor: enrolment, confirmation, and the sealed secret.

use guardline_audit_client::Outcome;
use guardline_keys::aead;
use guardline_runtime::token::Claims;

use super::session::{blank_claims, invalid_credentials, locked, totp_binding};
use super::{Caller, ClientContext, Credentials, Identity};
use crate::domain::RiskPolicy;
use crate::domain::credentials::{check_totp, new_totp_secret, totp_uri};
use crate::error::{Error, IdentityError, Result};
use crate::store::{sessions, tenants, user, users};

impl Identity {
    /// The user a TOTP call is about: the token's user, or the one the
    /// credentials name. Credentials serve only while the user has no
    /// second factor: a password must never replace one.
    pub async fn totp_subject(
        &self,
        caller: Option<&Claims>,
        creds: Option<&Credentials>,
        ctx: &ClientContext,
    ) -> Result<user::Model> {
        if let Some(c) = caller {
            return self.user(&c.tenant, &c.sub).await;
        }
        let creds = creds.ok_or_else(|| Error::from(IdentityError::CredentialsRequired))?;
        let user = self.password_only(creds, ctx).await?;
        if user.totp_sealed.is_some() {
            return Err(IdentityError::SecondFactorEnrolled.into());
        }
        Ok(user)
    }

    pub(super) async fn open_totp(&self, user: &user::Model, kind: &str) -> Result<Vec<u8>> {
        let sealed = if kind == "totp" { &user.totp_sealed } else { &user.totp_pending_sealed };
        let (Some(sealed), Some(dk_id)) = (sealed, &user.totp_data_key_id) else {
            return Err(IdentityError::NoEnrollment.into());
        };
        let dk = self.envelope.data_key(&user.tenant_id, dk_id).await?;
        Ok(aead::open(&dk, &totp_binding(&user.tenant_id, &user.id, kind), sealed)
            .map_err(guardline_runtime::Error::from)?
            .to_vec())
    }

    /// Starts enrolment: a new secret, sealed, pending confirmation. Returns
    /// the `otpauth://` URI. Replacing an enrolled factor needs a current
    /// code of it.
    pub async fn enroll_totp(&self, user: &user::Model, current_code: &str) -> Result<String> {
        if user.totp_sealed.is_some() {
            if current_code.trim().is_empty() {
                return Err(IdentityError::CurrentCodeRequired.into());
            }
            self.current_code_checked(user, current_code).await?;
        }
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

    /// Checks a current code of the user's enrolled authenticator (to
    /// replace it): a wrong code counts towards the account's lockout, and
    /// a right one is spent.
    pub(super) async fn current_code_checked(&self, user: &user::Model, code: &str) -> Result<()> {
        let now = self.clock.now();
        let tenant = tenants::tenant(&self.store, &user.tenant_id).await?.ok_or(Error::NotFound)?;
        let policy: RiskPolicy = serde_json::from_str(&tenant.risk_policy).unwrap_or_default();
        if !users::reserve_attempt(&self.store, &user.id, policy.max_failed_attempts, now).await? {
            return Err(locked());
        }
        let secret = self.open_totp(user, "totp").await?;
        let last = user.totp_last_step.map(|s| s as u64);
        if let Some(step) = check_totp(&secret, code, now.timestamp() as u64, last)
            && self.claim_totp_step(&user.id, step).await?
        {
            return users::release_attempt(&self.store, &user.id).await;
        }
        let tx = self.store.begin().await?;
        self.count_user_failure(&tx, &tenant, &user.id, now).await?;
        let caller = Caller::User(Claims { sub: user.id.clone(), ..blank_claims(&user.tenant_id) });
        let event = Self::event(&caller, &user.tenant_id, "identity.totp.enroll")
            .resource("user", &user.id)
            .outcome(Outcome::Denied, "wrong current code");
        self.store.commit(tx, [event]).await?;
        Err(invalid_credentials())
    }

    /// Removes a user's second factor for a lost authenticator
    /// (`user.manage`): the user enrolls again with credentials, every
    /// session of theirs is revoked, and the audit event raises an alert.
    pub async fn reset_totp(&self, caller: &Caller, tenant: &str, user_id: &str, reason: &str) -> Result<()> {
        self.require(caller, tenant, "user.manage")?;
        if reason.trim().is_empty() || reason.chars().count() > 500 {
            return Err(Error::invalid("reason", "required, at most 500 characters"));
        }
        let mut next = self.user(tenant, user_id).await?;
        next.totp_sealed = None;
        next.totp_pending_sealed = None;
        let tx = self.store.begin().await?;
        users::save(&tx, next, &[user::Column::TotpSealed, user::Column::TotpPendingSealed]).await?;
        sessions::revoke_user(&tx, user_id).await?;
        let event =
            Self::event(caller, tenant, "identity.totp.reset").resource("user", user_id).detail("reason", reason);
        self.store.commit(tx, [event]).await
    }
}

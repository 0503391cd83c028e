//! The second factor: enrolment, confirmation, and the sealed secret.

use guardline_keys::aead;
use guardline_runtime::token::Claims;

use super::session::{blank_claims, invalid_credentials, totp_binding};
use super::{Caller, Credentials, Identity};
use crate::domain::credentials::{check_totp, new_totp_secret, totp_uri};
use crate::error::{Error, IdentityError, Result};
use crate::store::{status, user, users};

impl Identity {
    /// The user a TOTP call is about: the token's user, or the credentials'.
    pub async fn totp_subject(&self, caller: Option<&Claims>, creds: Option<&Credentials>) -> Result<user::Model> {
        if let Some(c) = caller {
            return self.user(&c.tenant, &c.sub).await;
        }
        let creds = creds.ok_or_else(|| Error::from(IdentityError::CredentialsRequired))?;
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
}

//! Tokens: an access token and a refresh token issued together, refresh
//! tokens spent once (reuse revokes the family), logout.

use chrono::{DateTime, Utc};
use guardline_audit_client::Outcome;
use guardline_runtime::token::Claims;

use super::session::blank_claims;
use super::{Caller, Identity, LoginOutcome};
use crate::domain::credentials::{new_refresh_token, refresh_token_hash};
use crate::domain::risk::Assessment;
use crate::domain::{RiskAction, RiskLevel};
use crate::error::{Error, IdentityError, Result};
use crate::store::{self, Tx, refresh_token, sessions, status, user};

impl Identity {
    /// Signs an access token and stores a new refresh token (in `family`, or a new one).
    pub(super) async fn issue(
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
            .ok_or_else(|| Error::from(IdentityError::InvalidRefreshToken))?;
        let tx = self.store.begin().await?;
        // Conditional update: of two concurrent spends, exactly one wins.
        if !sessions::spend_refresh(&tx, &hash, now).await? {
            sessions::revoke_family(&tx, &row.family_id).await?;
            let caller = Caller::User(Claims { sub: row.user_id.clone(), ..blank_claims(&row.tenant_id) });
            let event = Self::event(&caller, &row.tenant_id, "identity.refresh.reuse")
                .resource("user", &row.user_id)
                .outcome(Outcome::Denied, "refresh token reused; session family revoked");
            self.store.commit(tx, [event]).await?;
            return Err(IdentityError::RefreshTokenReused.into());
        }
        if row.expires_at <= now {
            // Dropping the transaction rolls it back.
            drop(tx);
            return Err(IdentityError::RefreshTokenExpired.into());
        }
        let user = self.user(&row.tenant_id, &row.user_id).await.ok().filter(|u| u.status == status::ACTIVE);
        let Some(user) = user else {
            sessions::revoke_family(&tx, &row.family_id).await?;
            self.store.commit(tx, []).await?;
            return Err(Error::from(IdentityError::InvalidRefreshToken));
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
}

//! Tenants, users, roles and teams.

use guardline_authz::{BUILTIN_ROLES, parse_permissions};

use super::{Caller, Identity};
use crate::domain::credentials::validate_password;
use crate::domain::{
    RiskPolicy, WorkingHours, parse_time_zone, validate_login, validate_name, validate_role_name,
    validate_working_hours,
};
use crate::error::{Error, Result};
use crate::store::{self, role, status, team, team_member, tenant, tenants, user, users};

/// Settings of a tenant.
#[derive(Clone, Debug, Default)]
pub struct TenantSettings {
    /// IANA time zone.
    pub time_zone: Option<String>,
    /// Working hours (replace the old set when Some).
    pub working_hours: Option<Vec<WorkingHours>>,
    /// Login-risk policy.
    pub risk_policy: Option<RiskPolicy>,
}

/// A user to create.
#[derive(Clone)]
pub struct NewUser {
    /// Login name.
    pub login: String,
    /// Display name.
    pub display_name: String,
    /// Initial password.
    pub password: String,
    /// Role names.
    pub roles: Vec<String>,
    /// Team ids.
    pub team_ids: Vec<String>,
}

/// Changes to a user.
#[derive(Clone, Default)]
pub struct UserChanges {
    /// New display name.
    pub display_name: Option<String>,
    /// Enable (true) or disable (false).
    pub active: Option<bool>,
    /// New password.
    pub password: Option<String>,
}

const PAGE_MAX: u64 = 1000;

impl Identity {
    /// Revokes a token signing key at once (platform admins); audited in
    /// the platform's log.
    pub async fn revoke_signing_key(&self, caller: &Caller, kid: &str, reason: &str) -> Result<()> {
        if !matches!(caller, Caller::Platform(_)) {
            return Err(Error::PermissionDenied("only a platform-admin identity revokes signing keys".into()));
        }
        if kid.trim().is_empty() {
            return Err(Error::invalid("kid", "required"));
        }
        if reason.trim().is_empty() {
            return Err(Error::invalid("reason", "required"));
        }
        let now = self.clock.now();
        if !self.signers.revoke(kid, now).await? {
            return Err(Error::NotFound);
        }
        let event = Self::event(caller, "_platform", "identity.signing_key.revoke")
            .resource("signing_key", kid)
            .detail("reason", reason);
        self.store.audit(event).await
    }

    /// Every tenant, a page at a time (platform admins and the operator);
    /// audited in the platform's log.
    pub async fn list_tenants(&self, caller: &Caller, after: Option<&str>, limit: u64) -> Result<Vec<tenant::Model>> {
        match caller {
            Caller::Platform(_) => {}
            Caller::Service(s) if self.tenant_listers.contains(s) => {}
            _ => return Err(Error::PermissionDenied("only the operator and platform admins list tenants".into())),
        }
        let rows = tenants::page(&self.store, after, limit.clamp(1, PAGE_MAX)).await?;
        let event = Self::event(caller, "_platform", "identity.tenant.list").detail("count", rows.len());
        self.store.audit(event).await?;
        Ok(rows)
    }

    /// Refuses anyone but a platform-admin identity.
    pub(crate) fn require_platform(&self, caller: &Caller) -> Result<()> {
        if matches!(caller, Caller::Platform(_)) {
            Ok(())
        } else {
            Err(Error::PermissionDenied("only a platform-admin identity creates tenants".into()))
        }
    }

    /// Creates a tenant with the built-in roles.
    pub async fn create_tenant(&self, caller: &Caller, name: &str, settings: TenantSettings) -> Result<tenant::Model> {
        self.require_platform(caller)?;
        validate_name("name", name)?;
        let tz = settings.time_zone.unwrap_or_else(|| "UTC".into());
        parse_time_zone("time_zone", &tz)?;
        let hours = settings.working_hours.unwrap_or_default();
        validate_working_hours(&hours)?;
        let policy = settings.risk_policy.unwrap_or_default();
        policy.validate()?;
        let id = format!("t-{}", uuid::Uuid::now_v7().simple());
        let model = tenant::Model {
            id: id.clone(),
            name: name.trim().to_owned(),
            status: status::ACTIVE.into(),
            time_zone: tz,
            working_hours: json(&hours)?,
            risk_policy: json(&policy)?,
            created_at: self.clock.now(),
        };
        let mut roles = Vec::with_capacity(BUILTIN_ROLES.len());
        for (role_name, perms) in BUILTIN_ROLES {
            roles.push(role::Model {
                tenant_id: id.clone(),
                name: (*role_name).to_owned(),
                permissions: json(perms)?,
                built_in: true,
            });
        }
        let tx = self.store.begin().await?;
        tenants::insert_tenant(&tx, &model, roles).await?;
        self.store.commit(tx, [Self::event(caller, &id, "tenant.create").resource("tenant", &id)]).await?;
        Ok(model)
    }

    /// A tenant, for the platform or its own users.
    pub async fn get_tenant(&self, caller: &Caller, id: &str) -> Result<tenant::Model> {
        match caller {
            Caller::User(c) if c.tenant != id => return Err(Error::NotFound),
            Caller::Service(s) if !self.tenant_readers.contains(s) => {
                return Err(Error::PermissionDenied("tenant data needs a user token of the tenant".into()));
            }
            _ => {}
        }
        tenants::tenant(&self.store, id).await?.ok_or(Error::NotFound)
    }

    /// Changes a tenant's settings (`user.manage`).
    pub async fn update_tenant(&self, caller: &Caller, id: &str, settings: TenantSettings) -> Result<tenant::Model> {
        self.require(caller, id, "user.manage")?;
        let mut next = self.get_tenant(caller, id).await?;
        let mut changed = Vec::new();
        if let Some(tz) = settings.time_zone {
            parse_time_zone("time_zone", &tz)?;
            next.time_zone = tz;
            changed.push(("time_zone", tenant::Column::TimeZone));
        }
        if let Some(hours) = settings.working_hours {
            validate_working_hours(&hours)?;
            next.working_hours = json(&hours)?;
            changed.push(("working_hours", tenant::Column::WorkingHours));
        }
        if let Some(policy) = settings.risk_policy {
            policy.validate()?;
            next.risk_policy = json(&policy)?;
            changed.push(("login_risk_policy", tenant::Column::RiskPolicy));
        }
        let tx = self.store.begin().await?;
        let cols: Vec<tenant::Column> = changed.iter().map(|c| c.1).collect();
        let updated = tenants::save_tenant(&tx, next, &cols).await?;
        let fields: Vec<&str> = changed.iter().map(|c| c.0).collect();
        let event = Self::event(caller, id, "tenant.update").resource("tenant", id).detail("fields", fields.join(","));
        self.store.commit(tx, [event]).await?;
        Ok(updated)
    }

    async fn check_roles(&self, tenant: &str, roles: &[String]) -> Result<()> {
        let known: Vec<String> = tenants::roles(&self.store, tenant).await?.into_iter().map(|r| r.name).collect();
        if let Some(i) = roles.iter().position(|r| !known.contains(r)) {
            return Err(Error::invalid(format!("roles[{i}]"), "no such role in the tenant"));
        }
        Ok(())
    }

    async fn check_team_ids(&self, tenant: &str, field: &str, teams: &[String]) -> Result<()> {
        for (i, t) in teams.iter().enumerate() {
            let found = tenants::team(&self.store, t).await?.is_some_and(|x| x.tenant_id == tenant);
            if !found {
                return Err(Error::invalid(format!("{field}[{i}]"), "no such team in the tenant"));
            }
        }
        Ok(())
    }

    /// Creates a user (`user.manage`, or the platform for a tenant's first admin).
    pub async fn create_user(&self, caller: &Caller, tenant: &str, new: NewUser) -> Result<user::Model> {
        self.require(caller, tenant, "user.manage")?;
        self.get_tenant(caller, tenant).await?;
        validate_login(&new.login)?;
        validate_name("display_name", &new.display_name)?;
        validate_password("password", &new.password)?;
        self.check_roles(tenant, &new.roles).await?;
        self.check_team_ids(tenant, "team_ids", &new.team_ids).await?;
        if users::by_login(&self.store, tenant, &new.login).await?.is_some() {
            return Err(Error::invalid("login", "already taken in this tenant"));
        }
        let id = format!("u-{}", uuid::Uuid::now_v7().simple());
        let model = user::Model {
            id: id.clone(),
            tenant_id: tenant.to_owned(),
            login: new.login,
            display_name: new.display_name.trim().to_owned(),
            status: status::ACTIVE.into(),
            password_hash: self.passwords.hash(&new.password).await?,
            roles: json(&new.roles)?,
            totp_sealed: None,
            totp_pending_sealed: None,
            totp_data_key_id: None,
            totp_last_step: None,
            failed_attempts: 0,
            locked_until: None,
            created_at: self.clock.now(),
        };
        let memberships: Vec<team_member::Model> = new
            .team_ids
            .iter()
            .map(|t| team_member::Model {
                team_id: t.clone(),
                user_id: id.clone(),
                tenant_id: tenant.to_owned(),
                is_lead: false,
            })
            .collect();
        let tx = self.store.begin().await?;
        users::insert(&tx, &model).await?;
        tenants::insert_members(&tx, &memberships).await?;
        let event =
            Self::event(caller, tenant, "user.create").resource("user", &id).detail("roles", new.roles.join(","));
        self.store.commit(tx, [event]).await?;
        Ok(model)
    }

    /// A user of the tenant.
    pub async fn user(&self, tenant: &str, id: &str) -> Result<user::Model> {
        users::user(&self.store, id).await?.filter(|u| u.tenant_id == tenant).ok_or(Error::NotFound)
    }

    /// Changes a user (`user.manage`). Disabling revokes every session.
    pub async fn update_user(
        &self,
        caller: &Caller,
        tenant: &str,
        id: &str,
        changes: UserChanges,
    ) -> Result<user::Model> {
        self.require(caller, tenant, "user.manage")?;
        let mut next = self.user(tenant, id).await?;
        let mut fields = Vec::new();
        if let Some(name) = changes.display_name {
            validate_name("display_name", &name)?;
            next.display_name = name.trim().to_owned();
            fields.push(("display_name", vec![user::Column::DisplayName]));
        }
        if let Some(password) = changes.password {
            validate_password("password", &password)?;
            next.password_hash = self.passwords.hash(&password).await?;
            fields.push(("password", vec![user::Column::PasswordHash]));
        }
        let disable = changes.active == Some(false);
        if let Some(on) = changes.active {
            next.status = if on { status::ACTIVE } else { status::DISABLED }.into();
            if on {
                next.failed_attempts = 0;
                next.locked_until = None;
            }
            let reset = [user::Column::FailedAttempts, user::Column::LockedUntil];
            fields.push(("status", [&[user::Column::Status][..], if on { &reset[..] } else { &[] }].concat()));
        }
        let tx = self.store.begin().await?;
        let cols: Vec<user::Column> = fields.iter().flat_map(|f| f.1.clone()).collect();
        let updated = users::save(&tx, next, &cols).await?;
        if disable {
            store::sessions::revoke_user(&tx, id).await?;
        }
        let event = Self::event(caller, tenant, if disable { "user.disable" } else { "user.update" })
            .resource("user", id)
            .detail("fields", fields.iter().map(|f| f.0).collect::<Vec<_>>().join(","));
        self.store.commit(tx, [event]).await?;
        Ok(updated)
    }

    /// Users of a tenant, by id, optionally of one team.
    pub async fn list_users(
        &self,
        caller: &Caller,
        tenant: &str,
        team_id: Option<&str>,
        after: Option<&str>,
        limit: u64,
    ) -> Result<Vec<user::Model>> {
        self.require(caller, tenant, "user.manage")?;
        let ids = match team_id {
            Some(team) => Some(tenants::member_ids(&self.store, tenant, team).await?),
            None => None,
        };
        users::page(&self.store, tenant, ids, after, limit.clamp(1, PAGE_MAX)).await
    }

    /// Replaces a user's roles (`user.manage`).
    pub async fn assign_roles(
        &self,
        caller: &Caller,
        tenant: &str,
        id: &str,
        roles: Vec<String>,
    ) -> Result<user::Model> {
        self.require(caller, tenant, "user.manage")?;
        self.check_roles(tenant, &roles).await?;
        let mut next = self.user(tenant, id).await?;
        next.roles = json(&roles)?;
        let tx = self.store.begin().await?;
        let updated = users::save(&tx, next, &[user::Column::Roles]).await?;
        let event = Self::event(caller, tenant, "user.roles").resource("user", id).detail("roles", roles.join(","));
        self.store.commit(tx, [event]).await?;
        Ok(updated)
    }

    /// Defines a tenant role (`user.manage`).
    pub async fn create_role(
        &self,
        caller: &Caller,
        tenant: &str,
        name: &str,
        perms: &[String],
    ) -> Result<role::Model> {
        self.require(caller, tenant, "user.manage")?;
        self.get_tenant(caller, tenant).await?;
        validate_role_name(name)?;
        let parsed =
            parse_permissions(perms).map_err(|(i, e)| Error::invalid(format!("permissions[{i}]"), e.to_string()))?;
        if parsed.is_empty() {
            return Err(Error::invalid("permissions", "a role needs at least one permission"));
        }
        if tenants::role(&self.store, tenant, name).await?.is_some() {
            return Err(Error::invalid("name", "a role of that name exists"));
        }
        let canonical: Vec<String> = parsed.iter().map(ToString::to_string).collect();
        let model = role::Model {
            tenant_id: tenant.into(),
            name: name.into(),
            permissions: json(&canonical)?,
            built_in: false,
        };
        let tx = self.store.begin().await?;
        tenants::insert_role(&tx, &model).await?;
        let event = Self::event(caller, tenant, "role.create")
            .resource("role", name)
            .detail("permissions", canonical.join(","));
        self.store.commit(tx, [event]).await?;
        Ok(model)
    }

    /// Roles of a tenant (any user of the tenant).
    pub async fn list_roles(&self, caller: &Caller, tenant: &str) -> Result<Vec<role::Model>> {
        self.get_tenant(caller, tenant).await?;
        tenants::roles(&self.store, tenant).await
    }

    /// Creates a team (`user.manage`).
    pub async fn create_team(&self, caller: &Caller, tenant: &str, name: &str) -> Result<team::Model> {
        self.require(caller, tenant, "user.manage")?;
        self.get_tenant(caller, tenant).await?;
        validate_name("name", name)?;
        let model = team::Model {
            id: format!("team-{}", uuid::Uuid::now_v7().simple()),
            tenant_id: tenant.into(),
            name: name.trim().into(),
        };
        let tx = self.store.begin().await?;
        tenants::insert_team(&tx, &model).await?;
        self.store.commit(tx, [Self::event(caller, tenant, "team.create").resource("team", &model.id)]).await?;
        Ok(model)
    }

    /// Replaces a team's members and leads (`user.manage`).
    pub async fn set_team_members(
        &self,
        caller: &Caller,
        tenant: &str,
        team_id: &str,
        members: &[String],
        leads: &[String],
    ) -> Result<(team::Model, Vec<team_member::Model>)> {
        self.require(caller, tenant, "user.manage")?;
        let team =
            tenants::team(&self.store, team_id).await?.filter(|t| t.tenant_id == tenant).ok_or(Error::NotFound)?;
        for (field, ids) in [("member_ids", members), ("lead_ids", leads)] {
            for (i, u) in ids.iter().enumerate() {
                if self.user(tenant, u).await.is_err() {
                    return Err(Error::invalid(format!("{field}[{i}]"), "no such user in the tenant"));
                }
            }
        }
        let mut rows = Vec::new();
        for (u, lead) in members.iter().map(|m| (m, false)).chain(leads.iter().map(|l| (l, true))) {
            if rows.iter().any(|r: &team_member::Model| r.user_id == *u) {
                continue;
            }
            let row = team_member::Model {
                team_id: team_id.into(),
                user_id: u.clone(),
                tenant_id: tenant.into(),
                is_lead: lead,
            };
            rows.push(row);
        }
        let event = Self::event(caller, tenant, "team.members")
            .resource("team", team_id)
            .detail("members", members.len())
            .detail("leads", leads.len());
        let tx = self.store.begin().await?;
        tenants::set_members(&tx, team_id, &rows).await?;
        self.store.commit(tx, [event]).await?;
        Ok((team, rows))
    }

    /// Members and leads of a team.
    pub async fn team_members(&self, team_id: &str) -> Result<Vec<team_member::Model>> {
        tenants::members(&self.store, team_id).await
    }

    /// The union of the permissions of `roles` in `tenant`, sorted.
    pub async fn permissions_of(&self, tenant: &str, roles: &[String]) -> Result<Vec<String>> {
        store::permissions_of(&self.store, tenant, roles).await
    }

    /// Teams a user belongs to or leads.
    pub async fn teams_of(&self, tenant: &str, user: &str) -> Result<Vec<String>> {
        store::teams_of(&self.store, tenant, user).await
    }
}

pub(crate) fn json<T: serde::Serialize + ?Sized>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Internal(format!("json: {e}")))
}

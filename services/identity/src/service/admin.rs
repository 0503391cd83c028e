//! Tenants, users, roles and teams.

use guardline_authz::{BUILTIN_ROLES, parse_permissions};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::{Caller, Identity};
use crate::domain::credentials::validate_password;
use crate::domain::{
    RiskPolicy, WorkingHours, parse_time_zone, validate_login, validate_name, validate_role_name,
    validate_working_hours,
};
use crate::error::{Error, Result};
use crate::store::{self, role, status, team, team_member, tenant, user};

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
    /// Creates a tenant with the built-in roles.
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
        let txn = guardline_runtime::storage::write_txn(&self.db).await?;
        Self::audit(&txn, event).await?;
        txn.commit().await?;
        self.delivered();
        Ok(())
    }

    pub async fn create_tenant(&self, caller: &Caller, name: &str, settings: TenantSettings) -> Result<tenant::Model> {
        if !matches!(caller, Caller::Platform(_)) {
            return Err(Error::PermissionDenied("only a platform-admin identity creates tenants".into()));
        }
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
        let txn = guardline_runtime::storage::write_txn(&self.db).await?;
        tenant::Entity::insert(tenant::ActiveModel::from(model.clone())).exec(&txn).await?;
        for (role_name, perms) in BUILTIN_ROLES {
            role::Entity::insert(role::ActiveModel {
                tenant_id: Set(id.clone()),
                name: Set((*role_name).to_owned()),
                permissions: Set(json(perms)?),
                built_in: Set(true),
            })
            .exec(&txn)
            .await?;
        }
        Self::audit(&txn, Self::event(caller, &id, "tenant.create").resource("tenant", &id)).await?;
        txn.commit().await?;
        self.delivered();
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
        tenant::Entity::find_by_id(id.to_owned()).one(&self.db).await?.ok_or(Error::NotFound)
    }

    /// Changes a tenant's settings (`user.manage`).
    pub async fn update_tenant(&self, caller: &Caller, id: &str, settings: TenantSettings) -> Result<tenant::Model> {
        self.require(caller, id, "user.manage")?;
        let current = self.get_tenant(caller, id).await?;
        let mut active: tenant::ActiveModel = current.into();
        let mut changed = Vec::new();
        if let Some(tz) = settings.time_zone {
            parse_time_zone("time_zone", &tz)?;
            active.time_zone = Set(tz);
            changed.push("time_zone");
        }
        if let Some(hours) = settings.working_hours {
            validate_working_hours(&hours)?;
            active.working_hours = Set(json(&hours)?);
            changed.push("working_hours");
        }
        if let Some(policy) = settings.risk_policy {
            policy.validate()?;
            active.risk_policy = Set(json(&policy)?);
            changed.push("login_risk_policy");
        }
        let txn = guardline_runtime::storage::write_txn(&self.db).await?;
        let updated = active.update(&txn).await?;
        Self::audit(
            &txn,
            Self::event(caller, id, "tenant.update").resource("tenant", id).detail("fields", changed.join(",")),
        )
        .await?;
        txn.commit().await?;
        self.delivered();
        Ok(updated)
    }

    async fn check_roles(&self, tenant: &str, roles: &[String]) -> Result<()> {
        let known: Vec<String> = role::Entity::find()
            .filter(role::Column::TenantId.eq(tenant))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|r| r.name)
            .collect();
        if let Some(i) = roles.iter().position(|r| !known.contains(r)) {
            return Err(Error::invalid(format!("roles[{i}]"), "no such role in the tenant"));
        }
        Ok(())
    }

    async fn check_team_ids(&self, tenant: &str, field: &str, teams: &[String]) -> Result<()> {
        for (i, t) in teams.iter().enumerate() {
            let found = team::Entity::find_by_id(t.clone()).one(&self.db).await?.is_some_and(|x| x.tenant_id == tenant);
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
        let exists = user::Entity::find()
            .filter(user::Column::TenantId.eq(tenant))
            .filter(user::Column::Login.eq(&new.login))
            .one(&self.db)
            .await?;
        if exists.is_some() {
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
        let txn = guardline_runtime::storage::write_txn(&self.db).await?;
        user::Entity::insert(user::ActiveModel::from(model.clone())).exec(&txn).await?;
        for t in &new.team_ids {
            team_member::Entity::insert(team_member::ActiveModel {
                team_id: Set(t.clone()),
                user_id: Set(id.clone()),
                tenant_id: Set(tenant.to_owned()),
                is_lead: Set(false),
            })
            .exec(&txn)
            .await?;
        }
        let event =
            Self::event(caller, tenant, "user.create").resource("user", &id).detail("roles", new.roles.join(","));
        Self::audit(&txn, event).await?;
        txn.commit().await?;
        self.delivered();
        Ok(model)
    }

    /// A user of the tenant.
    pub async fn user(&self, tenant: &str, id: &str) -> Result<user::Model> {
        user::Entity::find_by_id(id.to_owned())
            .one(&self.db)
            .await?
            .filter(|u| u.tenant_id == tenant)
            .ok_or(Error::NotFound)
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
        let current = self.user(tenant, id).await?;
        let mut active: user::ActiveModel = current.into();
        let mut fields = Vec::new();
        if let Some(name) = changes.display_name {
            validate_name("display_name", &name)?;
            active.display_name = Set(name.trim().to_owned());
            fields.push("display_name");
        }
        if let Some(password) = changes.password {
            validate_password("password", &password)?;
            active.password_hash = Set(self.passwords.hash(&password).await?);
            fields.push("password");
        }
        let disable = changes.active == Some(false);
        if let Some(on) = changes.active {
            active.status = Set(if on { status::ACTIVE } else { status::DISABLED }.into());
            if on {
                active.failed_attempts = Set(0);
                active.locked_until = Set(None);
            }
            fields.push("status");
        }
        let txn = guardline_runtime::storage::write_txn(&self.db).await?;
        let updated = active.update(&txn).await?;
        if disable {
            self.revoke_user_sessions(&txn, id).await?;
        }
        let event = Self::event(caller, tenant, if disable { "user.disable" } else { "user.update" })
            .resource("user", id)
            .detail("fields", fields.join(","));
        Self::audit(&txn, event).await?;
        txn.commit().await?;
        self.delivered();
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
        let mut q = user::Entity::find().filter(user::Column::TenantId.eq(tenant)).order_by_asc(user::Column::Id);
        if let Some(after) = after {
            q = q.filter(user::Column::Id.gt(after));
        }
        if let Some(team) = team_id {
            let ids: Vec<String> = team_member::Entity::find()
                .filter(team_member::Column::TeamId.eq(team))
                .filter(team_member::Column::TenantId.eq(tenant))
                .all(&self.db)
                .await?
                .into_iter()
                .map(|m| m.user_id)
                .collect();
            q = q.filter(user::Column::Id.is_in(ids));
        }
        Ok(q.limit(limit.clamp(1, PAGE_MAX)).all(&self.db).await?)
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
        let mut active: user::ActiveModel = self.user(tenant, id).await?.into();
        active.roles = Set(json(&roles)?);
        let txn = guardline_runtime::storage::write_txn(&self.db).await?;
        let updated = active.update(&txn).await?;
        let event = Self::event(caller, tenant, "user.roles").resource("user", id).detail("roles", roles.join(","));
        Self::audit(&txn, event).await?;
        txn.commit().await?;
        self.delivered();
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
        let exists = role::Entity::find_by_id((tenant.to_owned(), name.to_owned())).one(&self.db).await?;
        if exists.is_some() {
            return Err(Error::invalid("name", "a role of that name exists"));
        }
        let canonical: Vec<String> = parsed.iter().map(ToString::to_string).collect();
        let model = role::Model {
            tenant_id: tenant.into(),
            name: name.into(),
            permissions: json(&canonical)?,
            built_in: false,
        };
        let txn = guardline_runtime::storage::write_txn(&self.db).await?;
        role::Entity::insert(role::ActiveModel::from(model.clone())).exec(&txn).await?;
        let event = Self::event(caller, tenant, "role.create")
            .resource("role", name)
            .detail("permissions", canonical.join(","));
        Self::audit(&txn, event).await?;
        txn.commit().await?;
        self.delivered();
        Ok(model)
    }

    /// Roles of a tenant (any user of the tenant).
    pub async fn list_roles(&self, caller: &Caller, tenant: &str) -> Result<Vec<role::Model>> {
        self.get_tenant(caller, tenant).await?;
        Ok(role::Entity::find()
            .filter(role::Column::TenantId.eq(tenant))
            .order_by_asc(role::Column::Name)
            .all(&self.db)
            .await?)
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
        let txn = guardline_runtime::storage::write_txn(&self.db).await?;
        team::Entity::insert(team::ActiveModel::from(model.clone())).exec(&txn).await?;
        Self::audit(&txn, Self::event(caller, tenant, "team.create").resource("team", &model.id)).await?;
        txn.commit().await?;
        self.delivered();
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
        let team = team::Entity::find_by_id(team_id.to_owned())
            .one(&self.db)
            .await?
            .filter(|t| t.tenant_id == tenant)
            .ok_or(Error::NotFound)?;
        for (field, ids) in [("member_ids", members), ("lead_ids", leads)] {
            for (i, u) in ids.iter().enumerate() {
                if self.user(tenant, u).await.is_err() {
                    return Err(Error::invalid(format!("{field}[{i}]"), "no such user in the tenant"));
                }
            }
        }
        let txn = guardline_runtime::storage::write_txn(&self.db).await?;
        team_member::Entity::delete_many().filter(team_member::Column::TeamId.eq(team_id)).exec(&txn).await?;
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
            team_member::Entity::insert(team_member::ActiveModel::from(row.clone())).exec(&txn).await?;
            rows.push(row);
        }
        let event = Self::event(caller, tenant, "team.members")
            .resource("team", team_id)
            .detail("members", members.len())
            .detail("leads", leads.len());
        Self::audit(&txn, event).await?;
        txn.commit().await?;
        self.delivered();
        Ok((team, rows))
    }

    /// Members and leads of a team.
    pub async fn team_members(&self, team_id: &str) -> Result<Vec<team_member::Model>> {
        Ok(team_member::Entity::find().filter(team_member::Column::TeamId.eq(team_id)).all(&self.db).await?)
    }

    /// Teams a user belongs to or leads.
    pub async fn teams_of(&self, tenant: &str, user: &str) -> Result<Vec<String>> {
        store::teams_of(&self.db, tenant, user).await
    }
}

pub(crate) fn json<T: serde::Serialize + ?Sized>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Internal(format!("json: {e}")))
}

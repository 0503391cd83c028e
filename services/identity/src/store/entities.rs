//! Identity's tables as sea-orm entities.

macro_rules! no_relations {
    () => {
        /// No relations.
        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}
        impl ActiveModelBehavior for ActiveModel {}
    };
}

/// Tenants.
pub mod tenant {
    use sea_orm::entity::prelude::*;
    /// A tenant.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "identity_tenants")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub name: String,
        pub status: String,
        pub time_zone: String,
        pub working_hours: String,
        pub risk_policy: String,
        pub created_at: ChronoDateTimeUtc,
    }
    no_relations!();
}

/// Users.
pub mod user {
    use sea_orm::entity::prelude::*;
    /// A user. `password_hash` is an Argon2id PHC string; TOTP secrets are sealed.
    #[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "identity_users")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub login: String,
        pub display_name: String,
        pub status: String,
        pub password_hash: String,
        pub roles: String,
        pub totp_sealed: Option<Vec<u8>>,
        pub totp_pending_sealed: Option<Vec<u8>>,
        pub totp_data_key_id: Option<String>,
        pub totp_last_step: Option<i64>,
        pub failed_attempts: i32,
        pub locked_until: Option<ChronoDateTimeUtc>,
        pub created_at: ChronoDateTimeUtc,
    }
    impl std::fmt::Debug for Model {
        // Secrets and hashes stay out of any log.
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("User").field("id", &self.id).field("tenant_id", &self.tenant_id).finish_non_exhaustive()
        }
    }
    no_relations!();
}

/// Teams.
pub mod team {
    use sea_orm::entity::prelude::*;
    /// A team.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "identity_teams")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub name: String,
    }
    no_relations!();
}

/// Team membership and leadership.
pub mod team_member {
    use sea_orm::entity::prelude::*;
    /// A user in a team, as member or lead.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "identity_team_members")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub team_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: String,
        pub tenant_id: String,
        pub is_lead: bool,
    }
    no_relations!();
}

/// Roles.
pub mod role {
    use sea_orm::entity::prelude::*;
    /// A named set of permissions of a tenant.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "identity_roles")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        pub permissions: String,
        pub built_in: bool,
    }
    no_relations!();
}

/// Refresh tokens, stored only as hashes.
pub mod refresh_token {
    use sea_orm::entity::prelude::*;
    /// One refresh token of a family.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "identity_refresh_tokens")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub hash: String,
        pub family_id: String,
        pub tenant_id: String,
        pub user_id: String,
        pub created_at: ChronoDateTimeUtc,
        pub expires_at: ChronoDateTimeUtc,
        pub used_at: Option<ChronoDateTimeUtc>,
        pub revoked: bool,
    }
    no_relations!();
}

/// Login attempts.
pub mod login_event {
    use sea_orm::entity::prelude::*;
    /// One login attempt with its risk assessment.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "identity_login_events")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub user_id: Option<String>,
        pub at: ChronoDateTimeUtc,
        pub success: bool,
        pub failure_reason: String,
        pub risk_level: String,
        pub risk_reasons: String,
        pub risk_action: String,
        pub source_address: String,
        pub network: String,
        pub device_id: String,
        pub region: String,
        pub user_agent: String,
    }
    no_relations!();
}

/// Failed logins per source address.
pub mod source_failure {
    use sea_orm::entity::prelude::*;
    /// Failures from one source address in a tenant.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "identity_source_failures")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub source_address: String,
        pub failures: i32,
        pub window_start: ChronoDateTimeUtc,
        pub locked_until: Option<ChronoDateTimeUtc>,
    }
    no_relations!();
}

/// Token signing keys; private keys sealed under a platform data key.
pub mod signing_key {
    use sea_orm::entity::prelude::*;
    /// An Ed25519 signing key.
    #[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "identity_signing_keys")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub kid: String,
        pub data_key_id: String,
        pub sealed: Vec<u8>,
        pub public_key: Vec<u8>,
        pub created_at: ChronoDateTimeUtc,
        pub retired_at: Option<ChronoDateTimeUtc>,
        /// Revoked in an emergency: published no more, verifies nothing.
        pub revoked_at: Option<ChronoDateTimeUtc>,
    }
    impl std::fmt::Debug for Model {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("SigningKey").field("kid", &self.kid).finish_non_exhaustive()
        }
    }
    no_relations!();
}

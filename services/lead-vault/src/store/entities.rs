//! The lead vault's tables as sea-orm entities: sealed lead fields, the
//! blind phone index, tenant secrets, counters, the consent ledger, key
//! rotations, erasure cases, the internal do-not-call list, settings.

pub mod lead {
    use sea_orm::entity::prelude::*;
    /// A lead. Only ids, scope and status are in clear.
    #[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "vault_leads")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub owner_id: String,
        pub team_id: String,
        pub status: String,
        pub version: i64,
        pub source: String,
        pub region: String,
        pub time_zone: String,
        pub tags: String,
        pub key_data_key_id: String,
        pub key_sealed: Option<Vec<u8>>,
        pub phones_sealed: Vec<u8>,
        pub name_sealed: Vec<u8>,
        pub address_sealed: Vec<u8>,
        pub needs_sealed: Vec<u8>,
        pub notes_sealed: Vec<u8>,
        pub mac: Vec<u8>,
        pub created_at: ChronoDateTimeUtc,
    }
    impl std::fmt::Debug for Model {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Lead").field("id", &self.id).field("version", &self.version).finish_non_exhaustive()
        }
    }
    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
    impl ActiveModelBehavior for ActiveModel {}
}

/// Blind indexes of leads' phone numbers.
pub mod phone_index {
    use sea_orm::entity::prelude::*;
    /// One phone of one lead.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "vault_phone_index")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub blind_index: Vec<u8>,
        pub lead_id: String,
        pub position: i32,
    }
    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
    impl ActiveModelBehavior for ActiveModel {}
}

/// Per-tenant secrets of the vault (the blind-index key), sealed.
pub mod tenant_secret {
    use sea_orm::entity::prelude::*;
    /// A sealed secret.
    #[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "vault_tenant_secrets")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub kind: String,
        pub data_key_id: String,
        pub sealed: Vec<u8>,
    }
    impl std::fmt::Debug for Model {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("TenantSecret").field("tenant_id", &self.tenant_id).finish_non_exhaustive()
        }
    }
    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
    impl ActiveModelBehavior for ActiveModel {}
}

/// Reveals per user per day, for the quota.
pub mod reveal_count {
    use sea_orm::entity::prelude::*;
    /// A counter.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "vault_reveal_counts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub day: String,
        pub count: i32,
    }
    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
    impl ActiveModelBehavior for ActiveModel {}
}

/// The consent ledger: kept for years, and after erasure without PII.
pub mod consent {
    use sea_orm::entity::prelude::*;
    /// One consent and its evidence.
    #[derive(Clone, Debug, Default, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "vault_consents")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub lead_id: String,
        pub blind_index: Vec<u8>,
        pub purpose: String,
        pub channel: String,
        pub form_sha256: Vec<u8>,
        pub disclosure_version: String,
        pub page_url: String,
        pub recording_id: String,
        pub recording_offset_ms: i64,
        pub recording_length_ms: i64,
        pub granted_at: ChronoDateTimeUtc,
        pub expires_at: Option<ChronoDateTimeUtc>,
        pub withdrawn_at: Option<ChronoDateTimeUtc>,
    }
    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
    impl ActiveModelBehavior for ActiveModel {}
}

/// Leads exported per tenant per day, for the export quota.
pub mod export_count {
    use sea_orm::entity::prelude::*;
    /// A counter.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "vault_export_counts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub day: String,
        pub count: i64,
    }
    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
    impl ActiveModelBehavior for ActiveModel {}
}

/// Data-key rotations: record keys re-wrapped in batches, resumable.
pub mod rotation {
    use sea_orm::entity::prelude::*;
    /// One rotation of a tenant's data key.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "vault_key_rotations")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        pub new_data_key_id: String,
        pub total: i64,
        pub rewrapped: i64,
        pub state: String,
    }
    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
    impl ActiveModelBehavior for ActiveModel {}
}

pub mod erasure_case {
    use sea_orm::entity::prelude::*;
    /// A data subject's erasure case.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "vault_erasure_cases")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub lead_id: String,
        pub state: String,
        pub requested_at: ChronoDateTimeUtc,
        pub due_at: ChronoDateTimeUtc,
        pub executed_at: Option<ChronoDateTimeUtc>,
        pub blocked_reason: String,
        pub requested_by: String,
    }
    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
    impl ActiveModelBehavior for ActiveModel {}
}

/// The tenant's internal do-not-call list: blind indexes only.
pub mod internal_dnc {
    use sea_orm::entity::prelude::*;
    /// One number that must not be called again.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "vault_internal_dnc")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub blind_index: Vec<u8>,
        pub reason: String,
        pub added_at: ChronoDateTimeUtc,
    }
    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
    impl ActiveModelBehavior for ActiveModel {}
}

/// Per-tenant settings of the vault; a tenant without a row has the defaults.
pub mod tenant_settings {
    use sea_orm::entity::prelude::*;
    /// One tenant's settings.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "vault_tenant_settings")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        pub erasure_deadline_days: i32,
        pub consent_retention_days: i32,
        pub updated_at: ChronoDateTimeUtc,
    }
    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
    impl ActiveModelBehavior for ActiveModel {}
}

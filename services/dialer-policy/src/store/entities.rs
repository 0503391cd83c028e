//! Dialer-policy's tables as sea-orm entities.

macro_rules! entity {
    ($(#[$doc:meta])* $module:ident, $table:literal, { $($body:tt)* }) => {
        $(#[$doc])*
        pub mod $module {
            use sea_orm::entity::prelude::*;
            /// One row.
            #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
            #[sea_orm(table_name = $table)]
            pub struct Model { $($body)* }
            /// No relations.
            #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
            pub enum Relation {}
            impl ActiveModelBehavior for ActiveModel {}
        }
    };
}

entity!(
    /// Policies: the tenant's (campaign `""`) and each campaign's, as JSON.
    policy, "dialer_policies", {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub campaign_id: String,
        pub policy: String,
        pub updated_at: ChronoDateTimeUtc,
    }
);

entity!(
    /// Tenant do-not-call entries: `internal` (campaign `""`) or `campaign`.
    dnc, "dialer_dnc", {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub list: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub campaign_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub blind_index: Vec<u8>,
        pub reason: String,
        pub added_at: ChronoDateTimeUtc,
    }
);

entity!(
    /// Decisions, so that an attempt is recorded only against an ALLOW.
    decision, "dialer_decisions", {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub lead_id: String,
        pub callee: Vec<u8>,
        pub caller_line: String,
        pub agent_id: String,
        pub campaign_id: String,
        pub verdict: String,
        pub callee_cap_24h: i32,
        pub decided_at: ChronoDateTimeUtc,
        pub used: bool,
        /// The callee's region, to recheck the registry copy's age at the attempt.
        pub region: String,
        /// The callee's IANA zones, comma-separated, to recheck the window at the attempt.
        pub zones: String,
        /// The packs whose windows applied, comma-separated.
        pub packs: String,
        /// The campaign's subject, for per-subject caps.
        pub subject: String,
        /// The packs' per-subject 24-hour cap (0: none).
        pub subject_cap_24h: i32,
    }
);

entity!(
    /// Call attempts and their outcomes.
    attempt, "dialer_attempts", {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub callee: Vec<u8>,
        pub caller_line: String,
        pub agent_id: String,
        pub campaign_id: String,
        pub placed_at: ChronoDateTimeUtc,
        pub result: String,
        pub duration_seconds: i32,
        /// The campaign's subject.
        pub subject: String,
    }
);

entity!(
    /// Whether a line is throttled, so that an alert is raised once per episode.
    line_state, "dialer_line_states", {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub caller_line: String,
        pub throttled: bool,
        pub changed_at: ChronoDateTimeUtc,
    }
);

entity!(
    /// The tenant's pool of virtual numbers X.
    privacy_number, "dialer_privacy_numbers", {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub number: String,
        pub added_at: ChronoDateTimeUtc,
    }
);

entity!(
    /// AXB bindings: X between agent line A and lead B (B's number is never stored here).
    binding, "dialer_bindings", {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub privacy_number: String,
        pub agent_line: String,
        pub agent_id: String,
        pub lead_id: String,
        pub created_at: ChronoDateTimeUtc,
        pub expires_at: ChronoDateTimeUtc,
        pub released_at: Option<ChronoDateTimeUtc>,
    }
);

entity!(
    /// The national registry copy in force per region; its numbers are in `file`.
    registry_copy, "dialer_registry_copies", {
        #[sea_orm(primary_key, auto_increment = false)]
        pub region: String,
        pub copy_date: ChronoDate,
        pub numbers: i64,
        pub file: String,
        pub loaded_at: ChronoDateTimeUtc,
    }
);

entity!(
    /// A registry copy's file, in pieces: every replica loads the copy in
    /// force from here when it lacks the file (its own disk is not shared).
    registry_chunk, "dialer_registry_chunks", {
        #[sea_orm(primary_key, auto_increment = false)]
        pub file: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub seq: i32,
        pub bytes: Vec<u8>,
    }
);

entity!(
    /// Reassigned Numbers Database results, by the number's blind index.
    reassigned, "dialer_reassigned", {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub blind_index: Vec<u8>,
        #[sea_orm(primary_key, auto_increment = false)]
        pub asked: Date,
        pub answer: String,
        pub obtained: Date,
    }
);

entity!(
    /// Missing holiday calendars already reported, once per tenant, pack and year.
    calendar_alert, "dialer_calendar_alerts", {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub pack: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub year: i32,
        pub raised_at: ChronoDateTimeUtc,
    }
);

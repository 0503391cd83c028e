//! The custom resources, group `guardline.io`, version `v1alpha1`, as Rust
//! types; `guardline-operator crdgen` prints their CRDs, which the Helm
//! chart ships (`helm/guardline/files/crds/`, checked by a test).
//!
//! Both kinds are namespaced, in the namespace Guardline is installed in.
//! An object without `spec.tenant` sets the default for every tenant;
//! one with `spec.tenant` overrides it for that tenant.
//!
//! From `v1alpha1` to a later version: fields may still be renamed or
//! removed and defaults may change; a later version will be served beside
//! this one, with the operator converting objects (a conversion webhook
//! once two versions are stored), and `v1alpha1` deprecated for a release
//! before it stops being served.

// kube-derive takes one `printcolumn(name, type_, json_path)` per column, which
// clippy reads as a repeated attribute.
#![allow(clippy::duplicated_attributes)]

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The annotation that triggers an immediate rotation: set it to any new
/// value (a timestamp, say); the operator rotates once per value.
pub const ROTATE_NOW: &str = "guardline.io/rotate-now";

/// The annotation that triggers an immediate retention run, as above.
pub const RUN_NOW: &str = "guardline.io/run-now";

/// A period of whole hours or days, at least an hour: `720h`, `90d`.
pub const PERIOD_PATTERN: &str = "^[1-9][0-9]{0,5}(h|d)$";

/// How a tenant's keys are rotated: the tenant key in Vault, the data keys
/// it wraps, the tenant data key, and the old versions retired.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "guardline.io",
    version = "v1alpha1",
    kind = "TenantKeyPolicy",
    namespaced,
    status = "TenantKeyPolicyStatus",
    shortname = "tkp",
    category = "guardline",
    doc = "Rotation of Guardline tenant keys: a default for every tenant, or an override for one",
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Tenant", type_ = "string", json_path = ".spec.tenant"),
    printcolumn(name = "Period", type_ = "string", json_path = ".spec.rotationPeriod"),
    printcolumn(name = "Rotating", type_ = "integer", json_path = ".status.totals.rotating"),
    printcolumn(name = "Failing", type_ = "integer", json_path = ".status.totals.failing"),
    printcolumn(name = "Last", type_ = "date", json_path = ".status.lastRotationTime"),
    printcolumn(name = "Next", type_ = "date", json_path = ".status.nextRotationTime"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantKeyPolicySpec {
    /// The tenant this policy overrides; absent for the default of every tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub tenant: Option<String>,
    /// How often the tenant key rotates: whole hours or days, at least an hour (`720h`, `90d`).
    #[schemars(regex(pattern = PERIOD_PATTERN))]
    pub rotation_period: String,
    /// At most this many tenants start a rotation each minute (the rewrap load on the services).
    #[serde(default = "default_rate")]
    #[schemars(range(min = 1, max = 10000))]
    pub rewrap_tenants_per_minute: u32,
    /// Once everything is rewrapped, raise Vault's `min_decryption_version`,
    /// so that an old key version decrypts nothing.
    #[serde(default = "yes")]
    pub raise_min_decryption_version: bool,
    /// Old key versions kept in Vault (still able to decrypt, if the
    /// minimum is not raised); older ones are trimmed.
    #[serde(default = "default_keep")]
    #[schemars(range(min = 1, max = 100))]
    pub keep_versions: u32,
    /// Nothing starts while set; a rotation in progress finishes its step.
    #[serde(default)]
    pub suspend: bool,
    /// Plan only: status shows what would rotate, nothing changes.
    #[serde(default)]
    pub dry_run: bool,
}

impl TenantKeyPolicySpec {
    /// A default policy rotating every `period`, the other fields as an
    /// object that names only `rotationPeriod` gets them.
    pub fn every(period: &str) -> Self {
        Self {
            tenant: None,
            rotation_period: period.into(),
            rewrap_tenants_per_minute: default_rate(),
            raise_min_decryption_version: yes(),
            keep_versions: default_keep(),
            suspend: false,
            dry_run: false,
        }
    }
}

fn default_rate() -> u32 {
    60
}

fn yes() -> bool {
    true
}

fn default_keep() -> u32 {
    2
}

/// A condition, by Kubernetes API conventions.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Ready`, `Rotating`, `Degraded`, `Suspended`, `Purging`, `Blocked`,
    /// `ErasuresOverdue`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// A CamelCase reason, e.g. `RotationSucceeded`.
    pub reason: String,
    /// For people; names fields and tenants, never personal data.
    pub message: String,
    /// When the status last changed (RFC 3339).
    pub last_transition_time: String,
    /// The generation of the spec this condition judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Where one tenant's rotation is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    /// The tenant key is being rotated in Vault.
    RotatingTenantKey,
    /// The lead vault and recordings rewrap the data keys the tenant key wraps.
    Rewrapping,
    /// A new tenant data key is being made in the lead vault.
    RotatingDataKey,
    /// The lead vault re-wraps every record key under it, in the background.
    AwaitingRewrap,
    /// Vault's minimum decryption version is being raised.
    RaisingMinimum,
    /// Old key versions beyond `keepVersions` are being trimmed.
    Trimming,
}

/// One tenant in progress or failing.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantKeyState {
    /// Tenant id.
    pub tenant: String,
    /// The step in progress; absent once done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// The tenant key version being rolled out (Vault's latest once rotated).
    pub key_version: u64,
    /// Vault's minimum decryption version.
    pub min_decryption_version: u64,
    /// Record keys re-wrapped under the new data key, of `rewrapTotal`.
    #[serde(default)]
    pub rewrap_done: u64,
    /// See `rewrapDone`.
    #[serde(default)]
    pub rewrap_total: u64,
    /// When the rotation started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    /// Failures in a row; retried with exponential backoff from `lastFailureTime`.
    #[serde(default)]
    pub failures: u32,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_time: Option<String>,
    /// What failed last, without personal data.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

impl TenantKeyState {
    /// `tenant` before its rotation starts, at Vault's current versions.
    pub fn idle(tenant: &str, key_version: u64, min_decryption_version: u64) -> Self {
        Self {
            tenant: tenant.into(),
            phase: None,
            key_version,
            min_decryption_version,
            rewrap_done: 0,
            rewrap_total: 0,
            started: None,
            failures: 0,
            last_failure_time: None,
            message: String::new(),
        }
    }
}

/// Tenants per state; stays small at any number of tenants.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    /// Tenants this policy governs.
    pub tenants: u64,
    /// Up to date with the period.
    pub current: u64,
    /// Due, not started yet.
    pub due: u64,
    /// In progress.
    pub rotating: u64,
    /// Failing (backing off).
    pub failing: u64,
}

/// What the operator observed and did.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantKeyPolicyStatus {
    /// The spec generation this status reflects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Rotating`, `Degraded`, `Suspended`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Tenants per state.
    #[serde(default)]
    pub totals: Totals,
    /// Tenants in progress or failing, at most 50.
    #[serde(default)]
    pub tenants: Vec<TenantKeyState>,
    /// Tenants in progress or failing beyond those listed.
    #[serde(default)]
    pub tenants_omitted: u64,
    /// The most recent rotation that finished (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rotation_time: Option<String>,
    /// The earliest rotation due (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_rotation_time: Option<String>,
    /// The last `guardline.io/rotate-now` value acted on for every tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rotate_now: Option<String>,
    /// While a `rotate-now` is being worked through (the rate limit spreads
    /// it over passes): the last tenant it started, in identity's order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotate_now_cursor: Option<String>,
    /// In a dry run: the tenants that would rotate now, at most 50.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub planned: Vec<String>,
}

/// How long a tenant's data is kept, and when the operator purges it.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "guardline.io",
    version = "v1alpha1",
    kind = "RetentionPolicy",
    namespaced,
    status = "RetentionPolicyStatus",
    shortname = "rp",
    category = "guardline",
    doc = "Retention of Guardline recordings, consent evidence and audit entries: a default or one tenant's",
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Tenant", type_ = "string", json_path = ".spec.tenant"),
    printcolumn(name = "Schedule", type_ = "string", json_path = ".spec.schedule"),
    printcolumn(name = "Purged", type_ = "integer", json_path = ".status.lastRun.purged"),
    printcolumn(name = "Overdue", type_ = "integer", json_path = ".status.overdueErasures"),
    printcolumn(name = "Last", type_ = "date", json_path = ".status.lastRunTime"),
    printcolumn(name = "Next", type_ = "date", json_path = ".status.nextRunTime"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetentionPolicySpec {
    /// The tenant this policy overrides; absent for the default of every tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub tenant: Option<String>,
    /// Days a recording is kept after the call (legal holds and consent
    /// evidence are always kept longer).
    #[schemars(range(min = 1, max = 36500))]
    pub recordings_days: u32,
    /// Days consent evidence is kept after the consent ends (the lead
    /// vault refuses less than three years).
    #[schemars(range(min = 1, max = 36500))]
    pub consent_evidence_days: u32,
    /// Days audit entries are kept (audit refuses less than 180).
    #[schemars(range(min = 1, max = 36500))]
    pub audit_days: u32,
    /// When to run, as a cron expression in UTC (`0 3 * * *`: 03:00 daily).
    #[schemars(length(min = 9, max = 100))]
    pub schedule: String,
    /// At most this many deletions per run; the rest wait for the next.
    #[serde(default = "default_cap")]
    #[schemars(range(min = 1, max = 1000000))]
    pub max_deletions_per_run: u32,
    /// No run starts while set.
    #[serde(default)]
    pub suspend: bool,
    /// Report what a run would purge; delete nothing.
    #[serde(default)]
    pub dry_run: bool,
}

fn default_cap() -> u32 {
    10_000
}

/// What one retention run did (in a dry run: would do), over the tenants
/// the policy governs.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    /// Recordings deleted.
    pub purged: u64,
    /// Due recordings kept under a legal hold.
    pub held: u64,
    /// Due recordings kept because a consent still needs them as evidence.
    pub kept_for_consent: u64,
    /// Consent evidence records deleted.
    pub consent_pruned: u64,
    /// Audit entries pruned.
    pub audit_pruned: u64,
    /// Whether `maxDeletionsPerRun` stopped the run before everything due
    /// was deleted; the rest goes in the next run.
    pub capped: bool,
    /// Tenants the run reached.
    pub tenants: u64,
    /// Whether it was a dry run: nothing was deleted or written.
    #[serde(default)]
    pub dry_run: bool,
}

/// A tenant whose retention run failed or was blocked.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantRetentionState {
    /// Tenant id.
    pub tenant: String,
    /// What failed, without personal data.
    pub message: String,
    /// Overdue erasure cases of this tenant.
    #[serde(default)]
    pub overdue_erasures: u64,
}

/// What the operator observed and did.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetentionPolicyStatus {
    /// The spec generation this status reflects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Purging`, `Blocked`, `ErasuresOverdue`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_time: Option<String>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run_time: Option<String>,
    /// The last run's totals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<RunReport>,
    /// Erasure cases past their due date, over every governed tenant.
    #[serde(default)]
    pub overdue_erasures: u64,
    /// The last `guardline.io/run-now` value acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_now: Option<String>,
    /// Failed runs in a row; retried with exponential backoff from
    /// `lastFailureTime` (1 minute doubling to 32 hours).
    #[serde(default)]
    pub failures: u32,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_time: Option<String>,
    /// Tenants failing, blocked or with overdue erasures, at most 50.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tenants: Vec<TenantRetentionState>,
    /// Such tenants beyond those listed.
    #[serde(default)]
    pub tenants_omitted: u64,
}

//! Flags of the audit service; every flag is also a `GUARDLINE_*` variable.

use guardline_service::CommonArgs;

/// `guardline-audit`: Audit: tamper-evident log of every data operation and anomaly alerts.
#[derive(clap::Parser, Clone, Debug)]
#[command(
    name = "guardline-audit",
    version,
    about = "Audit: tamper-evident log of every data operation and anomaly alerts"
)]
pub struct Args {
    /// Flags every service has.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Where the key sealing the tree-head signing key lives.
    #[command(flatten)]
    pub keys: guardline_keys::args::KeysArgs,
    /// Networks (CIDR, comma-separated) that alert webhooks may reach
    /// although private, e.g. an internal receiver; none by default.
    #[arg(long, env = "GUARDLINE_WEBHOOK_ALLOW", value_delimiter = ',')]
    pub webhook_allow: Vec<ipnet::IpNet>,
    /// Allow plain-http webhooks (https only by default).
    #[arg(long, env = "GUARDLINE_WEBHOOK_ALLOW_HTTP")]
    pub webhook_allow_http: bool,
    /// Fingerprints (`SHA256:` and hex, comma-separated) of the head-signing
    /// keys this service's own verification trusts; a head signed by any
    /// other key is reported as such. Empty: every key whose stored public
    /// half matches its sealed private key.
    #[arg(long, env = "GUARDLINE_TRUSTED_KEYS", value_delimiter = ',')]
    pub trusted_keys: Vec<String>,
    /// Where to write the fingerprints of the head-signing keys checked at
    /// start, for clients on this machine to pin (`guardline up`, tests);
    /// production pins them from the start-up log or `--trusted-keys`.
    #[arg(long, env = "GUARDLINE_PIN_FILE")]
    pub pin_file: Option<std::path::PathBuf>,
    /// Where each tenant's newest tree head is published as a C2SP
    /// checkpoint, written once: `s3://bucket/prefix` (configured by the
    /// `AWS_*` environment) or a directory. None: not published.
    #[arg(long, env = "GUARDLINE_CHECKPOINT_URL")]
    pub checkpoint_url: Option<String>,
    /// How often checkpoints of the tenants appended to are published.
    #[arg(long, env = "GUARDLINE_CHECKPOINT_INTERVAL", default_value = "10s", value_parser = guardline_runtime::args::parse_duration)]
    pub checkpoint_interval: std::time::Duration,
}

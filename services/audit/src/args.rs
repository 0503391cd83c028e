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
}

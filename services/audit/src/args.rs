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
}

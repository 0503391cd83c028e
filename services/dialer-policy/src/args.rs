//! Flags of the dialer-policy service; every flag is also a `GUARDLINE_*` variable.

use guardline_service::CommonArgs;

/// `guardline-dialer-policy`: Dialer policy: one explained pre-dial decision and AXB privacy numbers.
#[derive(clap::Parser, Clone, Debug)]
#[command(
    name = "guardline-dialer-policy",
    version,
    about = "Dialer policy: one explained pre-dial decision and AXB privacy numbers"
)]
pub struct Args {
    /// Flags every service has.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Extra jurisdiction packs (`*.json`); one named like a built-in pack replaces it.
    #[arg(long, env = "GUARDLINE_PACKS_DIR")]
    pub packs_dir: Option<std::path::PathBuf>,
    /// Where the national registry copies' number files live.
    #[arg(long, env = "GUARDLINE_REGISTRY_DIR", default_value = "./registry")]
    pub registry_dir: std::path::PathBuf,
    /// Service accounts that may replace a national registry copy.
    #[arg(long, env = "GUARDLINE_REGISTRY_ADMINS", value_delimiter = ',', default_value = "operator")]
    pub registry_admins: Vec<String>,
    /// Service accounts that may call without a user token (the dialer
    /// application, the telephony bridge); every other caller needs one.
    /// The registry admins may too, for registry imports.
    #[arg(
        long,
        env = "GUARDLINE_SERVICE_CLIENTS",
        value_delimiter = ',',
        default_value = "dialer-app,telephony-bridge"
    )]
    pub service_clients: Vec<String>,
}

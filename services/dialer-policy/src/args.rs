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
}

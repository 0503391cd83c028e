//! Flags of the recordings service; every flag is also a `GUARDLINE_*` variable.

use guardline_service::CommonArgs;

/// `guardline-recordings`: Recordings: encrypted streaming storage of call recordings, retention, legal hold.
#[derive(clap::Parser, Clone, Debug)]
#[command(
    name = "guardline-recordings",
    version,
    about = "Recordings: encrypted streaming storage of call recordings, retention, legal hold"
)]
pub struct Args {
    /// Flags every service has.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Where tenant keys live.
    #[command(flatten)]
    pub keys: guardline_keys::args::KeysArgs,
}

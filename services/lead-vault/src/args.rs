//! Flags of the lead-vault service; every flag is also a `GUARDLINE_*` variable.

use guardline_service::CommonArgs;

/// `guardline-lead-vault`: Lead vault: encrypted customer records, masking, reveal, export, consent, erasure.
#[derive(clap::Parser, Clone, Debug)]
#[command(
    name = "guardline-lead-vault",
    version,
    about = "Lead vault: encrypted customer records, masking, reveal, export, consent, erasure"
)]
pub struct Args {
    /// Flags every service has.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Where tenant keys live.
    #[command(flatten)]
    pub keys: guardline_keys::args::KeysArgs,
    /// Fields one user may reveal per day.
    #[arg(long, env = "GUARDLINE_REVEAL_QUOTA", default_value_t = 50)]
    pub reveal_quota: u32,
    /// Leads one tenant may export per day.
    #[arg(long, env = "GUARDLINE_EXPORT_QUOTA", default_value_t = 10_000)]
    pub export_quota: u64,
    /// Phone numbers one tenant may have looked up per second
    /// (`LookupNumber`, `LookupNumbers`: each maps numbers to blind indexes),
    /// in bursts of twice that; 0 switches the limit off.
    #[arg(long, env = "GUARDLINE_LOOKUP_RATE", default_value_t = 10_000)]
    pub lookup_rate: u32,
}

//! Flags of the identity service; every flag is also a `GUARDLINE_*` variable.

use std::time::Duration;

use guardline_runtime::args::parse_duration;
use guardline_service::CommonArgs;

/// `guardline-identity`: tenants, users, roles, signed tokens, authorization decisions.
#[derive(clap::Parser, Clone, Debug)]
#[command(
    name = "guardline-identity",
    version,
    about = "Identity: tenants, users, roles, signed tokens, authorization decisions"
)]
pub struct Args {
    /// Flags every service has.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Where keys sealing TOTP secrets and signing keys live.
    #[command(flatten)]
    pub keys: guardline_keys::args::KeysArgs,
    /// Service accounts (from mTLS SPIFFE ids) allowed to manage tenants.
    #[arg(long, env = "GUARDLINE_PLATFORM_ADMINS", value_delimiter = ',', default_value = "platform-admin")]
    pub platform_admins: Vec<String>,
    /// Service accounts of the gateways trusted to report the end user's
    /// source address in `Login`'s context; from anyone else the address
    /// is the connection's own peer address, whatever the request says.
    #[arg(long, env = "GUARDLINE_TRUSTED_GATEWAYS", value_delimiter = ',', default_value = "gateway")]
    pub trusted_gateways: Vec<String>,
    /// Access-token lifetime (at most 15m).
    #[arg(long, env = "GUARDLINE_ACCESS_TOKEN_TTL", default_value = "10m", value_parser = parse_duration)]
    pub access_token_ttl: Duration,
    /// Refresh-token lifetime.
    #[arg(long, env = "GUARDLINE_REFRESH_TOKEN_TTL", default_value = "12h", value_parser = parse_duration)]
    pub refresh_token_ttl: Duration,
    /// How long a token signing key signs before the next one takes over.
    #[arg(long, env = "GUARDLINE_SIGNING_KEY_ROTATION", default_value = "24h", value_parser = parse_duration)]
    pub signing_key_rotation: Duration,
}

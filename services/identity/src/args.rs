//! Flags of the identity service; every flag is also a `GUARDLINE_*` variable.

use guardline_service::CommonArgs;

/// `guardline-identity`: Identity: tenants, users, roles, signed tokens, authorization decisions.
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
}

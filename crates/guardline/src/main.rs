//! `guardline`: the developer's and operator's command line.
//!
//! - `guardline up`: the whole mesh in one process on embedded defaults.
//! - `guardline certs`: the dev CA and its certificates.
//! - `guardline health`: gRPC health of every service, over mTLS.
//! - `guardline audit verify`: a tenant's audit log checked offline.
//! - `guardline leads import FILE.csv`: a CSV file of leads into lead-vault.
//! - `guardline dnc import FILE`: a do-not-call file into dialer-policy.
//! - `guardline demo`: the product's journeys, narrated, against `guardline up`.

mod audit;
mod demo;
mod dnc;
mod health;
mod leads;
mod monitor;
mod up;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "guardline", version, about = "Guardline: the security backbone of a cloud call center")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run all five services in one process (SQLite, local keyring, dev CA by default).
    Up(Box<up::UpArgs>),
    /// Create (or reuse) the dev CA with a certificate per service and for the CLI.
    Certs(up::CertsArgs),
    /// Check the gRPC health of every service over mTLS with the CLI certificate.
    Health(health::HealthArgs),
    /// The audit log: `guardline audit verify`.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Leads: `guardline leads import FILE.csv`.
    #[command(subcommand)]
    Leads(leads::LeadsCommand),
    /// Run the product's journeys, narrated, against a running `guardline up`.
    Demo(demo::DemoArgs),
    /// Do-not-call lists: `guardline dnc import FILE`.
    #[command(subcommand)]
    Dnc(dnc::DncCommand),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    guardline_runtime::tls::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        match cli.command {
            Command::Up(args) => up::run(*args).await,
            Command::Certs(args) => up::certs(&args),
            Command::Health(args) => health::run(&args).await,
            Command::Audit(cmd) => audit::run(cmd).await,
            Command::Leads(cmd) => leads::run(cmd).await,
            Command::Dnc(cmd) => dnc::run(cmd).await,
            Command::Demo(args) => demo::run(args).await,
        }
    })
}

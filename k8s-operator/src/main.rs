//! `guardline-operator`: `run` reconciles the policies; `crdgen` prints
//! the CRDs the Helm chart ships.

use clap::{Parser, Subcommand};

/// Guardline's Kubernetes operator: tenant key rotation and retention as CRDs.
#[derive(Parser, Debug)]
#[command(name = "guardline-operator", version)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Reconcile TenantKeyPolicy objects until SIGTERM: rotate tenant keys.
    Run(Box<guardline_operator::run::RunArgs>),
    /// Print the CRDs (TenantKeyPolicy, RetentionPolicy) as YAML.
    Crdgen,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    guardline_runtime::tls::install_crypto_provider();
    match Args::parse().command {
        Command::Run(args) => guardline_operator::run::run(*args).await?,
        Command::Crdgen => print!("{}", guardline_operator::crds_yaml()?),
    }
    Ok(())
}

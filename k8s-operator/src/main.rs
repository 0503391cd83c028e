//! `guardline-operator`: `crdgen` prints the CRDs the Helm chart ships.

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
    /// Print the CRDs (TenantKeyPolicy, RetentionPolicy) as YAML.
    Crdgen,
}

fn main() -> anyhow::Result<()> {
    match Args::parse().command {
        Command::Crdgen => print!("{}", guardline_operator::crds_yaml()?),
    }
    Ok(())
}

//! `guardline-operator`: the kube-rs operator that rotates tenant keys and
//! enforces retention through CRDs. Its own issue builds it; until then the
//! binary only states that, so that no deployment mistakes it for a working one.

use clap::Parser;

/// Guardline's Kubernetes operator (not built yet: see its issue).
#[derive(Parser, Debug)]
#[command(name = "guardline-operator", version)]
struct Args {}

fn main() -> anyhow::Result<()> {
    let Args {} = Args::parse();
    anyhow::bail!("guardline-operator is not implemented yet: its issue adds the CRDs and controllers")
}

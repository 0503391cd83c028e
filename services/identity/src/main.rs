//! `guardline-identity`: the identity service as its own process, as Kubernetes runs it.

fn main() -> anyhow::Result<()> {
    guardline_service::main(
        guardline_identity::NAME,
        |a: &guardline_identity::Args| a.common.telemetry.clone(),
        |args, shutdown| guardline_identity::run(args, None, shutdown),
    )
}

//! `guardline-audit`: the audit service as its own process, as Kubernetes runs it.

fn main() -> anyhow::Result<()> {
    guardline_service::main(
        guardline_audit::NAME,
        |a: &guardline_audit::Args| a.common.telemetry.clone(),
        |args, shutdown| guardline_audit::run(args, None, shutdown),
    )
}

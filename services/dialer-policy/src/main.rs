//! `guardline-dialer-policy`: the dialer-policy service as its own process, as Kubernetes runs it.

fn main() -> anyhow::Result<()> {
    guardline_service::main(
        guardline_dialer_policy::NAME,
        |a: &guardline_dialer_policy::Args| a.common.telemetry.clone(),
        |args, shutdown| guardline_dialer_policy::run(args, None, shutdown),
    )
}

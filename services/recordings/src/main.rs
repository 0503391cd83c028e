//! `guardline-recordings`: the recordings service as its own process, as Kubernetes runs it.

fn main() -> anyhow::Result<()> {
    guardline_service::main(
        guardline_recordings::NAME,
        |a: &guardline_recordings::Args| a.common.telemetry.clone(),
        |args, shutdown| guardline_recordings::run(args, None, shutdown),
    )
}

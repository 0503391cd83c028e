//! `guardline-lead-vault`: the lead-vault service as its own process, as Kubernetes runs it.

fn main() -> anyhow::Result<()> {
    guardline_service::main(
        guardline_lead_vault::NAME,
        |a: &guardline_lead_vault::Args| a.common.telemetry.clone(),
        |args, shutdown| guardline_lead_vault::run(args, None, shutdown),
    )
}

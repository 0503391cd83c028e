//! `guardline-operator run`: the controllers, until SIGTERM or SIGINT.
//! The operator authenticates to the services with its own mTLS identity
//! (`operator`) and to Vault with a policy limited to the tenant keys'
//! read, rotate, config and trim (see `docs/operator/README.md`).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use guardline_proto::audit::v1::audit_service_client::AuditServiceClient;
use guardline_proto::identity::v1::identity_service_client::IdentityServiceClient;
use guardline_proto::recordings::v1::recordings_service_client::RecordingsServiceClient;
use guardline_proto::vault::v1::lead_vault_service_client::LeadVaultServiceClient;
use guardline_runtime::args::{MeshArgs, TelemetryArgs, TlsArgs};
use guardline_runtime::clock::Clock;
use kube::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::Recorder;
use kube::runtime::watcher;
use tokio_util::sync::CancellationToken;

use crate::controller::{Context, Error, MANAGER, reconcile};
use crate::crd::{RetentionPolicy, TenantKeyPolicy};
use crate::mesh::Mesh;
use crate::retention_controller;

/// Flags of `guardline-operator run`; every flag is also a `GUARDLINE_*` variable.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The namespace whose policies this operator reconciles (Guardline's own).
    #[arg(long, env = "GUARDLINE_WATCH_NAMESPACE", default_value = "guardline")]
    pub watch_namespace: String,
    /// The operator's mTLS identity.
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Where the services are.
    #[command(flatten)]
    pub mesh: MeshArgs,
    /// Vault, with the operator's policy.
    #[command(flatten)]
    pub keys: guardline_keys::args::KeysArgs,
    /// Logs and traces.
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

/// A failed reconcile is retried after 30 s; a failing tenant backs off on
/// its own schedule (see `schedule::backoff`), recorded in the status.
fn error_policy<K>(_: Arc<K>, error: &Error, _: Arc<Context<Mesh>>) -> Action {
    tracing::warn!(%error, "reconcile failed");
    Action::requeue(Duration::from_secs(30))
}

/// Runs the controllers until a signal.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let _telemetry = guardline_runtime::telemetry::init("guardline-operator", &args.telemetry)?;
    let shutdown = guardline_runtime::shutdown::on_signals();
    let tls = args.tls.load_and_watch(&shutdown)?;
    let channel = |uri: &str| guardline_runtime::connect(uri, tls.clone());
    let mesh = Mesh {
        keys: args.keys.provider(false).await?,
        identity: IdentityServiceClient::new(channel(&args.mesh.identity_endpoint)?),
        vault: LeadVaultServiceClient::new(channel(&args.mesh.lead_vault_endpoint)?),
        recordings: RecordingsServiceClient::new(channel(&args.mesh.recordings_endpoint)?),
        audit: AuditServiceClient::new(channel(&args.mesh.audit_endpoint)?),
    };
    let client = kube::Client::try_default().await?;
    let recorder = Recorder::new(client.clone(), MANAGER.into());
    let ctx = Arc::new(Context::new(client.clone(), recorder, mesh, Clock::system()));
    let ns = &args.watch_namespace;
    tracing::info!(namespace = %ns, "reconciling TenantKeyPolicy and RetentionPolicy");
    let keys = Controller::new(Api::<TenantKeyPolicy>::namespaced(client.clone(), ns), watcher::Config::default())
        .graceful_shutdown_on(cancelled(&shutdown))
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|_| async {});
    let retention = Controller::new(Api::<RetentionPolicy>::namespaced(client, ns), watcher::Config::default())
        .graceful_shutdown_on(cancelled(&shutdown))
        .run(retention_controller::reconcile, error_policy, ctx)
        .for_each(|_| async {});
    futures::join!(keys, retention);
    Ok(())
}

fn cancelled(token: &CancellationToken) -> impl std::future::Future<Output = ()> + Send + 'static {
    let token = token.clone();
    async move { token.cancelled().await }
}

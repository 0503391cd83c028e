//! `guardline-operator run`: the controllers, until SIGTERM or SIGINT,
//! while this replica holds the leader `Lease` (on by default).
//! The operator authenticates to the services with its own mTLS identity
//! (`operator`) and to Vault with a policy limited to the tenant keys'
//! read, rotate, config and trim (see `docs/operator/README.md`).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

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

use crate::controller::{Context, Error, MANAGER};
use crate::crd::{RetentionPolicy, TenantKeyPolicy};
use crate::leader::{Led, while_leading};
use crate::mesh::Mesh;
use crate::{controller, retention_controller};

/// Flags of `guardline-operator run`; every flag is also a `GUARDLINE_*` variable.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The namespace whose policies this operator reconciles (Guardline's own).
    #[arg(long, env = "GUARDLINE_WATCH_NAMESPACE", default_value = "guardline")]
    pub watch_namespace: String,
    /// Reconcile only while holding the leader Lease, so that one of
    /// several replicas acts at a time.
    #[arg(long, env = "GUARDLINE_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,
    /// The Lease, in the watch namespace.
    #[arg(long, env = "GUARDLINE_LEASE_NAME", default_value = "guardline-operator")]
    pub lease_name: String,
    /// This replica's name in the Lease (the pod name); `$HOSTNAME` when unset.
    #[arg(long, env = "GUARDLINE_LEADER_IDENTITY")]
    pub leader_identity: Option<String>,
    /// The operator's mTLS identity.
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Where the services are.
    #[command(flatten)]
    pub mesh: MeshArgs,
    /// Vault, with the operator's policy.
    #[command(flatten)]
    pub keys: guardline_keys::args::KeysArgs,
    /// Logs, traces and metrics.
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

/// A failed reconcile is retried after 30 s; a failing tenant backs off on
/// its own schedule (see `schedule::backoff`), recorded in the status.
fn error_policy<K>(_: Arc<K>, error: &Error, _: Arc<Context<Mesh>>) -> Action {
    tracing::warn!(%error, "reconcile failed");
    Action::requeue(Duration::from_secs(30))
}

/// `reconcile`, counted and timed as `controller`.
async fn measured<K, F>(
    controller: &'static str,
    object: Arc<K>,
    ctx: Arc<Context<Mesh>>,
    reconcile: F,
) -> Result<Action, Error>
where
    F: AsyncFnOnce(Arc<K>, Arc<Context<Mesh>>) -> Result<Action, Error>,
{
    let start = Instant::now();
    let out = reconcile(object, ctx.clone()).await;
    ctx.metrics.reconciled(controller, out.is_ok(), start.elapsed());
    out
}

/// Both controllers, until `stop`.
async fn controllers(client: kube::Client, ns: String, ctx: Arc<Context<Mesh>>, stop: CancellationToken) {
    tracing::info!(namespace = %ns, "reconciling TenantKeyPolicy and RetentionPolicy");
    let keys = Controller::new(Api::<TenantKeyPolicy>::namespaced(client.clone(), &ns), watcher::Config::default())
        .graceful_shutdown_on(cancelled(&stop))
        .run(|p, c| measured("TenantKeyPolicy", p, c, controller::reconcile), error_policy, ctx.clone())
        .for_each(|_| async {});
    let retention = Controller::new(Api::<RetentionPolicy>::namespaced(client, &ns), watcher::Config::default())
        .graceful_shutdown_on(cancelled(&stop))
        .run(|p, c| measured("RetentionPolicy", p, c, retention_controller::reconcile), error_policy, ctx)
        .for_each(|_| async {});
    futures::join!(keys, retention);
}

/// Runs the controllers until a signal (or, with leader election, until
/// the lease is lost, which is an error: the pod restarts and campaigns).
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
    let ns = args.watch_namespace.clone();
    if !args.leader_election {
        controllers(client, ns, ctx, shutdown).await;
        return Ok(());
    }
    let identity = args
        .leader_identity
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| format!("guardline-operator-{}", std::process::id()));
    let lease = kube_lease_manager::LeaseManagerBuilder::new(client.clone(), &args.lease_name)
        .with_namespace(&ns)
        .with_identity(&identity)
        .with_field_manager(MANAGER)
        .build()
        .await?;
    tracing::info!(lease = %args.lease_name, %identity, "campaigning for the leader lease");
    let (leader, manager) = lease.watch().await;
    let led = while_leading(leader, shutdown, |stop| controllers(client, ns, ctx, stop)).await;
    // The receiver is gone: the manager releases the lease and returns.
    match manager.await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "lease not released; it expires on its own"),
        Err(e) => tracing::warn!(error = %e, "lease manager stopped"),
    }
    match led {
        Led::ShutDown => Ok(()),
        Led::LostLease => anyhow::bail!("lost the leader lease; restarting to campaign again"),
    }
}

fn cancelled(token: &CancellationToken) -> impl Future<Output = ()> + Send + 'static {
    let token = token.clone();
    async move { token.cancelled().await }
}

//! What every Guardline service process is made of, assembled once: the
//! shared flags, TLS material kept fresh, the database migrated by the
//! service's own migrator, the audit client with its outbox worker, and the
//! gRPC server builder. A service adds only its API and its allow-list.

use std::sync::Arc;
use std::time::Duration;

use guardline_audit_client::{AuditClient, OutboxWorker};
use guardline_runtime::args::{DatabaseArgs, MeshArgs, ServerArgs, TelemetryArgs, TlsArgs};
use guardline_runtime::server::GrpcServer;
use guardline_runtime::tls::TlsMaterial;
use sea_orm::DatabaseConnection;
use sea_orm_migration::MigratorTrait;
use tokio_util::sync::CancellationToken;

/// How long an unwrapped tenant data key stays in memory.
pub const DATA_KEY_TTL: Duration = Duration::from_secs(300);

/// The outbox's default bound (see [`CommonArgs::outbox_limit`]).
pub const OUTBOX_LIMIT: u64 = 100_000;

/// How long a synchronous audit append may take before the operation is refused.
pub const AUDIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Flags every service has.
#[derive(clap::Args, Clone, Debug)]
pub struct CommonArgs {
    /// Listening and self-protection.
    #[command(flatten)]
    pub server: ServerArgs,
    /// This service's mTLS material.
    #[command(flatten)]
    pub tls: TlsArgs,
    /// The rest of the mesh.
    #[command(flatten)]
    pub mesh: MeshArgs,
    /// The service's database.
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Logs and OpenTelemetry.
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
    /// Events the audit outbox may hold while audit is unreachable before
    /// writes are refused (UNAVAILABLE); 0: no bound.
    #[arg(long, env = "GUARDLINE_OUTBOX_LIMIT", default_value_t = OUTBOX_LIMIT)]
    pub outbox_limit: u64,
    /// How long an unwrapped data key is used from memory: reads go on
    /// through a Vault outage this long.
    #[arg(long, env = "GUARDLINE_DATA_KEY_TTL", default_value = "300s", value_parser = guardline_runtime::args::parse_duration)]
    pub data_key_ttl: Duration,
    /// The clock every decision is made by: the system's, always, in a
    /// service binary (no flag sets it); in-process tests give their whole
    /// mesh one [`guardline_runtime::clock::ManualClock`].
    #[arg(skip)]
    pub clock: guardline_runtime::clock::Clock,
}

impl CommonArgs {
    /// A service on `addr` with these certificates, peers and database, and
    /// default limits and telemetry (`guardline up`, tests).
    pub fn new(
        addr: std::net::SocketAddr,
        tls: guardline_runtime::tls::TlsFiles,
        mesh: MeshArgs,
        database: DatabaseArgs,
    ) -> Self {
        Self {
            server: ServerArgs::on(addr),
            tls: TlsArgs::from_files(tls),
            mesh,
            database,
            telemetry: TelemetryArgs::default(),
            outbox_limit: OUTBOX_LIMIT,
            data_key_ttl: DATA_KEY_TTL,
            clock: guardline_runtime::clock::Clock::system(),
        }
    }

    /// The same service on `clock` (in-process tests).
    pub fn with_clock(mut self, clock: guardline_runtime::clock::Clock) -> Self {
        self.clock = clock;
        self
    }
}

/// The running parts shared by every service.
#[derive(Debug)]
pub struct Base {
    /// mTLS material, reloaded when the files change.
    pub tls: Arc<TlsMaterial>,
    /// The migrated database.
    pub db: DatabaseConnection,
    /// Synchronous audit appends.
    pub audit: AuditClient,
    /// Wakes the outbox worker right after an enqueue.
    pub outbox_waker: Arc<tokio::sync::Notify>,
    /// The outbox's depth and bound, which writes check.
    pub backlog: Arc<guardline_audit_client::Backlog>,
    /// How long unwrapped data keys are kept.
    pub data_key_ttl: Duration,
}

impl Base {
    /// Loads TLS, opens and migrates the database, and starts the outbox
    /// worker (unless `outbox` is false: the audit service does not audit itself
    /// through the network).
    pub async fn start<M: MigratorTrait>(
        args: &CommonArgs,
        outbox: bool,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Self> {
        let tls = args.tls.load_and_watch(shutdown)?;
        let db = guardline_runtime::storage::open::<M>(&args.database).await?;
        let audit =
            AuditClient::new(guardline_runtime::connect(&args.mesh.audit_endpoint, tls.clone())?, AUDIT_TIMEOUT);
        let backlog = Arc::new(guardline_audit_client::Backlog::new(args.outbox_limit));
        let worker = OutboxWorker::new(db.clone(), audit.clone()).with_backlog(backlog.clone());
        let outbox_waker = worker.waker();
        if outbox {
            tokio::spawn(worker.run(shutdown.clone()));
        }
        Ok(Self { tls, db, audit, outbox_waker, backlog, data_key_ttl: args.data_key_ttl })
    }
}

impl Base {
    /// The database as a store writes it: changes commit with their audit
    /// events and wake the outbox worker.
    pub fn audited(&self) -> guardline_audit_client::AuditedDb {
        guardline_audit_client::AuditedDb::new(self.db.clone(), self.outbox_waker.clone())
            .with_backlog(self.backlog.clone())
    }

    /// Verifies users' access tokens against identity's published keys, by
    /// the service's clock.
    pub fn verifier(&self, args: &CommonArgs) -> anyhow::Result<Arc<guardline_runtime::token::TokenVerifier>> {
        let identity = guardline_runtime::connect(&args.mesh.identity_endpoint, self.tls.clone())?;
        Ok(Arc::new(
            guardline_runtime::token::TokenVerifier::new(guardline_runtime::token::IdentityKeys::new(identity))
                .with_clock(args.clock.clone())
                .with_refresh_interval(args.mesh.key_refresh_interval),
        ))
    }

    /// Envelope encryption over the key provider the flags select (Vault or
    /// the local keyring) and this service's database. Built at start, so a
    /// bad key configuration fails the start, not the first request.
    pub async fn envelope(
        &self,
        keys: &guardline_keys::args::KeysArgs,
    ) -> anyhow::Result<Arc<guardline_keys::Envelope>> {
        let provider = keys.provider(false).await?;
        Ok(Arc::new(guardline_keys::Envelope::new(provider, self.db.clone(), self.data_key_ttl)))
    }
}

/// Serves `server` on `listener` (or on `--listen`) until `shutdown` fires.
pub async fn serve(
    server: GrpcServer,
    base: &Base,
    args: &CommonArgs,
    listener: Option<tokio::net::TcpListener>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listener = match listener {
        Some(l) => l,
        None => guardline_runtime::server::bind(args.server.listen).await?,
    };
    server.serve(listener, base.tls.clone(), &args.server, shutdown).await?;
    Ok(())
}

/// The `main` of every service binary: parse flags, start telemetry, run
/// until SIGTERM or Ctrl-C.
pub fn main<A, F, Fut>(name: &str, telemetry: impl FnOnce(&A) -> TelemetryArgs, run: F) -> anyhow::Result<()>
where
    A: clap::Parser,
    F: FnOnce(A, CancellationToken) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let args = A::parse();
    guardline_runtime::tls::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let _telemetry = guardline_runtime::telemetry::init(name, &telemetry(&args))?;
        let shutdown = guardline_runtime::shutdown::on_signals();
        run(args, shutdown).await
    })
}

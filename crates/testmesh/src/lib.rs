//! The in-process mesh every service's tests run against, built once here
//! instead of in each test file. It gives the five services their addresses
//! (bound at once, so every endpoint is known before anything starts),
//! certificates from a dev CA, a database each (SQLite files, or databases
//! on the test process's PostgreSQL), tenant keys (a local keyring, or
//! OpenBao transit on PostgreSQL), and optionally one manual clock for all.
//!
//! A test takes the default arguments of the services it needs, changes
//! what it tests, and starts them; any one can be stopped and started again
//! on the same address and database. Everything stops when the mesh drops.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use guardline_keys::args::KeysArgs;
use guardline_runtime::GrpcChannel;
use guardline_runtime::args::{DatabaseArgs, MeshArgs};
use guardline_runtime::clock::ManualClock;
use guardline_runtime::devca::DevCa;
use guardline_runtime::tls::{TlsMaterial, install_crypto_provider};
use guardline_service::CommonArgs;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The services, in the order of their addresses.
pub const SERVICES: [&str; 5] = ["identity", "audit", "lead-vault", "dialer-policy", "recordings"];

/// Where tenant keys live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keys {
    /// A local keyring sealed by a fixed test master key.
    Local,
    /// OpenBao transit (on PostgreSQL only), as in production.
    OpenBao,
}

struct Running {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// The mesh of one test.
pub struct TestMesh {
    dir: tempfile::TempDir,
    ca: DevCa,
    mesh: MeshArgs,
    addrs: Vec<SocketAddr>,
    listeners: HashMap<&'static str, TcpListener>,
    dbs: Vec<String>,
    keys: KeysArgs,
    clock: Option<ManualClock>,
    running: HashMap<&'static str, Running>,
    /// Second replicas, on ports of their own.
    replicas: Vec<Running>,
}

impl std::fmt::Debug for TestMesh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestMesh").field("dir", &self.dir.path()).finish_non_exhaustive()
    }
}

impl Drop for TestMesh {
    fn drop(&mut self) {
        for r in self.running.values().chain(&self.replicas) {
            r.stop.cancel();
        }
    }
}

fn index(service: &str) -> usize {
    SERVICES.iter().position(|s| *s == service).unwrap_or_else(|| panic!("{service} is not a Guardline service"))
}

impl TestMesh {
    /// A mesh on PostgreSQL and OpenBao (`postgres`) or on SQLite with a
    /// local keyring; `tweak` may change the mesh flags (endpoints are set).
    pub async fn new(postgres: bool, keys: Keys, tweak: impl FnOnce(&mut MeshArgs)) -> Self {
        install_crypto_provider();
        let _ = tracing_subscriber::fmt().with_env_filter("error").with_test_writer().try_init();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let ca = DevCa::open_or_create(&dir.path().join("pki"), "guardline.local", "guardline").expect("dev CA");
        let mut listeners = HashMap::new();
        let mut addrs = Vec::new();
        for s in SERVICES {
            let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            addrs.push(l.local_addr().expect("addr"));
            listeners.insert(s, l);
        }
        let at = |s: &str| format!("https://localhost:{}", addrs[index(s)].port());
        let mut mesh = MeshArgs {
            identity_endpoint: at("identity"),
            audit_endpoint: at("audit"),
            lead_vault_endpoint: at("lead-vault"),
            dialer_policy_endpoint: at("dialer-policy"),
            recordings_endpoint: at("recordings"),
            ..MeshArgs::default()
        };
        tweak(&mut mesh);
        let mut dbs = Vec::new();
        for s in SERVICES {
            dbs.push(if postgres {
                guardline_testkit::Postgres::shared().await.expect("postgres").database().await.expect("database")
            } else {
                format!("sqlite://{}", dir.path().join(format!("{s}.db")).display())
            });
        }
        let keys = match (postgres, keys) {
            (true, Keys::OpenBao) => {
                let bao = guardline_testkit::OpenBao::shared().await.expect("openbao");
                KeysArgs {
                    vault_addr: Some(bao.addr.clone()),
                    vault_token: Some(bao.token.clone()),
                    vault_transit_mount: bao.transit_mount().await.expect("transit mount"),
                    ..Default::default()
                }
            }
            _ => KeysArgs {
                keyring_path: Some(dir.path().join("keyring.json")),
                master_key: Some(base64::engine::general_purpose::STANDARD.encode([9u8; 32])),
                ..Default::default()
            },
        };
        Self { dir, ca, mesh, addrs, listeners, dbs, keys, clock: None, running: HashMap::new(), replicas: Vec::new() }
    }

    /// Every service of the mesh on one manual clock, which tests set and move.
    pub fn with_clock(mut self, clock: ManualClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The test's directory (databases, keyring, object stores).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The mesh flags every service gets.
    pub fn mesh(&self) -> &MeshArgs {
        &self.mesh
    }

    /// The tenant keys every service gets.
    pub fn keys(&self) -> &KeysArgs {
        &self.keys
    }

    /// The database URL of `service`.
    pub fn database(&self, service: &str) -> &str {
        &self.dbs[index(service)]
    }

    /// `https://localhost:PORT` of `service`.
    pub fn endpoint(&self, service: &str) -> String {
        format!("https://localhost:{}", self.addrs[index(service)].port())
    }

    /// The common flags of `service`: its address, certificate, database.
    pub fn common(&self, service: &str) -> CommonArgs {
        let i = index(service);
        let tls = self.ca.issue(service).expect("certificate");
        let common = CommonArgs::new(self.addrs[i], tls, self.mesh.clone(), DatabaseArgs::url(self.dbs[i].clone()));
        match &self.clock {
            Some(c) => common.with_clock(c.clock()),
            None => common,
        }
    }

    /// A channel to `service` presenting a certificate for `identity`.
    pub fn channel(&self, service: &str, identity: &str) -> GrpcChannel {
        self.connect(&self.endpoint(service), identity)
    }

    /// A channel to `uri` presenting a certificate for `identity`.
    pub fn connect(&self, uri: &str, identity: &str) -> GrpcChannel {
        let tls = TlsMaterial::load(self.ca.issue(identity).expect("certificate")).expect("tls");
        guardline_runtime::connect(uri, tls).expect("channel")
    }

    /// Identity's arguments as the tests use them.
    pub fn identity_args(&self) -> guardline_identity::Args {
        guardline_identity::Args {
            common: self.common("identity"),
            keys: self.keys.clone(),
            platform_admins: vec!["platform-admin".into()],
            trusted_gateways: vec!["gateway".into()],
            access_token_ttl: Duration::from_secs(600),
            refresh_token_ttl: Duration::from_secs(3600),
            signing_key_rotation: Duration::from_secs(86_400),
        }
    }

    /// Audit's arguments: webhooks to no one.
    pub fn audit_args(&self) -> guardline_audit::Args {
        guardline_audit::Args {
            common: self.common("audit"),
            keys: self.keys.clone(),
            webhook_allow: vec![],
            webhook_allow_http: false,
            trusted_keys: vec![],
            pin_file: Some(self.audit_pin_file()),
            checkpoint_url: None,
            checkpoint_interval: Duration::from_secs(10),
        }
    }

    /// Where audit writes the fingerprints of its head-signing keys.
    pub fn audit_pin_file(&self) -> std::path::PathBuf {
        self.dir.path().join("audit-trusted-keys")
    }

    /// The lead vault's arguments.
    pub fn vault_args(&self) -> guardline_lead_vault::Args {
        guardline_lead_vault::Args {
            common: self.common("lead-vault"),
            keys: self.keys.clone(),
            reveal_quota: 50,
            export_quota: 1000,
            lookup_rate: 10_000,
        }
    }

    /// The dialer's arguments: the shipped packs, a registry directory.
    pub fn dialer_args(&self) -> guardline_dialer_policy::Args {
        guardline_dialer_policy::Args {
            common: self.common("dialer-policy"),
            packs_dir: None,
            registry_dir: self.dir().join("registry"),
            registry_admins: vec!["operator".into()],
            service_clients: vec!["dialer-app".into(), "telephony-bridge".into()],
        }
    }

    /// Recordings' arguments: a filesystem object store in the test's directory.
    pub fn recordings_args(&self) -> guardline_recordings::Args {
        guardline_recordings::Args {
            common: self.common("recordings"),
            keys: self.keys.clone(),
            objects: guardline_recordings::args::ObjectStoreArgs {
                recordings_dir: Some(self.dir().join("recordings")),
                ..Default::default()
            },
            upload_idle_timeout: Duration::from_secs(5),
        }
    }

    /// Starts identity.
    pub async fn start_identity(&mut self, args: guardline_identity::Args) {
        self.start("identity", |l, s| guardline_identity::run(args, l, s)).await;
    }

    /// Starts audit.
    pub async fn start_audit(&mut self, args: guardline_audit::Args) {
        self.start("audit", |l, s| guardline_audit::run(args, l, s)).await;
    }

    /// Starts the lead vault.
    pub async fn start_vault(&mut self, args: guardline_lead_vault::Args) {
        self.start("lead-vault", |l, s| guardline_lead_vault::run(args, l, s)).await;
    }

    /// Starts the dialer.
    pub async fn start_dialer(&mut self, args: guardline_dialer_policy::Args) {
        self.start("dialer-policy", |l, s| guardline_dialer_policy::run(args, l, s)).await;
    }

    /// Starts recordings.
    pub async fn start_recordings(&mut self, args: guardline_recordings::Args) {
        self.start("recordings", |l, s| guardline_recordings::run(args, l, s)).await;
    }

    /// Starts `service` with `run` on its address (the listener bound at
    /// the start, or the address bound again after a stop). A service that
    /// fails panics in its task: the test sees it as the service's calls
    /// failing, and as a panic when it stops the service.
    pub async fn start<F, Fut>(&mut self, service: &'static str, run: F)
    where
        F: FnOnce(Option<TcpListener>, CancellationToken) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        assert!(!self.running.contains_key(service), "{service} is already running");
        let listener = match self.listeners.remove(service) {
            Some(l) => l,
            None => TcpListener::bind(self.addrs[index(service)]).await.expect("bind the address again"),
        };
        let stop = CancellationToken::new();
        let served = run(Some(listener), stop.clone());
        let task = tokio::spawn(async move { served.await.unwrap_or_else(|e| panic!("{service} failed: {e:#}")) });
        self.running.insert(service, Running { stop, task });
    }

    /// Starts another replica of a service with `run` (its arguments, the
    /// same database) on a port of its own; returns its URI. It stops with
    /// the mesh.
    pub async fn start_replica<F, Fut>(&mut self, run: F) -> String
    where
        F: FnOnce(Option<TcpListener>, CancellationToken) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let uri = format!("https://localhost:{}", listener.local_addr().expect("address").port());
        let stop = CancellationToken::new();
        let served = run(Some(listener), stop.clone());
        let task = tokio::spawn(async move { served.await.unwrap_or_else(|e| panic!("a replica failed: {e:#}")) });
        self.replicas.push(Running { stop, task });
        uri
    }

    /// Stops `service` and waits until it has (what it committed stays).
    pub async fn stop(&mut self, service: &str) {
        let r = self.running.remove(service).unwrap_or_else(|| panic!("{service} is not running"));
        r.stop.cancel();
        r.task.await.expect("the service stopped cleanly");
    }

    /// Waits until every running service reports SERVING on gRPC health,
    /// asked as `identity`. The addresses of services not started by then
    /// are released, so that calls to them are refused at once (as to a
    /// service that is down) instead of hanging; starting one later binds
    /// its address again.
    pub async fn wait_serving(&mut self, identity: &str) {
        self.listeners.clear();
        for service in self.running.keys() {
            let mut health = tonic_health::pb::health_client::HealthClient::new(self.channel(service, identity));
            let mut serving = false;
            for _ in 0..200 {
                let asked = health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await;
                if asked.is_ok_and(|r| r.into_inner().status == 1) {
                    serving = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            assert!(serving, "{service} did not start serving");
        }
    }
}

/// The journeys of `guardline-journeys` run on a test mesh as on any
/// other: the dev CA issues every identity they call with.
impl guardline_journeys::Mesh for TestMesh {
    fn channel(&self, service: &str, identity: &str) -> anyhow::Result<GrpcChannel> {
        Ok(TestMesh::channel(self, service, identity))
    }
    fn platform_admin(&self) -> &str {
        "platform-admin"
    }
    fn gateway(&self) -> &str {
        "gateway"
    }
    fn audit_pins(&self) -> anyhow::Result<guardline_journeys::Pins> {
        guardline_journeys::read_pins(&self.audit_pin_file())
    }
}

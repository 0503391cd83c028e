//! The mesh as a platform team runs it under faults: every service with
//! several replicas (each a process of the real binary), reached through
//! one stable endpoint per service that spreads connections over the live
//! replicas (a TCP proxy playing the Kubernetes Service), on a PostgreSQL
//! primary with a synchronous streaming standby behind one endpoint that
//! moves to the new primary on failover (CloudNativePG's `-rw` Service),
//! and OpenBao behind an endpoint the suite can cut.

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use guardline_runtime::GrpcChannel;
use guardline_runtime::tls::{TlsFiles, TlsMaterial};
use guardline_testkit::{OpenBao, ReplicatedPostgres, free_port};
use tokio::net::{TcpListener, TcpStream};

use crate::{AUDIT_PINS, Cluster, Env, Guarded, SERVICES};

/// A TCP endpoint in front of backends on 127.0.0.1: each connection goes
/// to the next backend that accepts it. It can be paused (connections are
/// refused, as of a server that is down) and its connections cut.
#[derive(Clone, Debug)]
pub struct Proxy {
    port: u16,
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    backends: Mutex<Vec<u16>>,
    next: AtomicUsize,
    paused: AtomicBool,
    cut: tokio::sync::watch::Sender<u64>,
}

impl Proxy {
    /// Listens on `port` for `backends`.
    pub async fn start(port: u16, backends: Vec<u16>) -> Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.with_context(|| format!("proxy on {port}"))?;
        let inner = Arc::new(Inner {
            backends: Mutex::new(backends),
            next: AtomicUsize::new(0),
            paused: AtomicBool::new(false),
            cut: tokio::sync::watch::channel(0).0,
        });
        let serving = inner.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(forward(serving.clone(), client));
            }
        });
        Ok(Self { port, inner })
    }

    /// The port clients use.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Sends new connections to `backends`, and cuts the open ones.
    pub fn set_backends(&self, backends: Vec<u16>) {
        if let Ok(mut b) = self.inner.backends.lock() {
            *b = backends;
        }
        self.cut();
    }

    /// Refuses connections and cuts the open ones, until [`Proxy::resume`].
    pub fn pause(&self) {
        self.inner.paused.store(true, Ordering::SeqCst);
        self.cut();
    }

    /// Accepts connections again.
    pub fn resume(&self) {
        self.inner.paused.store(false, Ordering::SeqCst);
    }

    /// Closes every open connection.
    pub fn cut(&self) {
        self.inner.cut.send_modify(|n| *n += 1);
    }
}

async fn forward(inner: Arc<Inner>, mut client: TcpStream) {
    if inner.paused.load(Ordering::SeqCst) {
        return;
    }
    let mut cut = inner.cut.subscribe();
    let backends = inner.backends.lock().map(|b| b.clone()).unwrap_or_default();
    let first = inner.next.fetch_add(1, Ordering::Relaxed);
    let mut server = None;
    for i in 0..backends.len() {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", backends[(first + i) % backends.len()])).await {
            server = Some(s);
            break;
        }
    }
    let Some(mut server) = server else { return };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = cut.changed() => {}
    }
}

/// One replica of a service: its ports and its process, if running.
#[derive(Debug)]
struct Replica {
    service: &'static str,
    n: usize,
    port: u16,
    metrics: u16,
    health: u16,
    process: Option<Guarded>,
}

/// How the fault mesh is configured: short in tests.
#[derive(Clone, Copy, Debug)]
pub struct Tuning {
    /// Replicas per service.
    pub replicas: usize,
    /// `--data-key-ttl`: how long reads go on through an OpenBao outage.
    pub data_key_ttl: Duration,
    /// `--outbox-limit`: the outbox's bound while audit is down.
    pub outbox_limit: u64,
}

/// The mesh under faults.
#[derive(Debug)]
pub struct FaultMesh {
    dir: std::path::PathBuf,
    pki_dir: std::path::PathBuf,
    ca: std::path::PathBuf,
    bao: &'static OpenBao,
    transit: String,
    pki: String,
    otlp: String,
    tuning: Tuning,
    /// The PostgreSQL pair.
    pub pg: ReplicatedPostgres,
    /// The endpoint of the primary.
    pub pg_endpoint: Proxy,
    /// The endpoint of OpenBao.
    pub bao_endpoint: Proxy,
    /// Per service: its endpoint.
    pub endpoints: Vec<(&'static str, Proxy)>,
    databases: Vec<(&'static str, String)>,
    replicas: Mutex<Vec<Replica>>,
}

impl FaultMesh {
    /// Starts every replica of every service and waits until each serves.
    pub async fn start(tuning: Tuning) -> Result<Self> {
        guardline_runtime::tls::install_crypto_provider();
        let bao = OpenBao::shared().await?;
        let pg = ReplicatedPostgres::start().await?;
        let pg_endpoint = Proxy::start(free_port()?, vec![pg.primary_port()]).await?;
        let bao_port: u16 = bao.addr.rsplit(':').next().and_then(|p| p.parse().ok()).context("bao port")?;
        let bao_endpoint = Proxy::start(free_port()?, vec![bao_port]).await?;
        let dir = tempfile::Builder::new().prefix("guardline-faults-").tempdir()?.keep();
        let transit = bao.transit_mount().await?;
        let pki = format!("pki-{}", transit.trim_start_matches("transit-"));
        let pki_dir = dir.join("pki");
        std::fs::create_dir_all(&pki_dir)?;
        let ca = Cluster::setup_pki(bao, &pki, &pki_dir)?;
        let (mut endpoints, mut databases, mut replicas) = (Vec::new(), Vec::new(), Vec::new());
        for service in SERVICES {
            Cluster::issue(bao, &pki, service, &pki_dir)?;
            let name = pg.create_database().await?;
            databases.push((service, format!("postgres://postgres@127.0.0.1:{}/{name}", pg_endpoint.port())));
            let mut ports = Vec::new();
            for n in 0..tuning.replicas {
                let r = Replica {
                    service,
                    n,
                    port: free_port()?,
                    metrics: free_port()?,
                    health: free_port()?,
                    process: None,
                };
                ports.push(r.port);
                replicas.push(r);
            }
            endpoints.push((service, Proxy::start(free_port()?, ports).await?));
        }
        for name in ["platform-admin", "gateway", "operator", "telephony-bridge", "cli"] {
            Cluster::issue(bao, &pki, name, &pki_dir)?;
        }
        let (otlp, _spans) = crate::otlp::receiver()?;
        let mesh = Self {
            dir,
            pki_dir,
            ca,
            bao,
            transit,
            pki,
            otlp,
            tuning,
            pg,
            pg_endpoint,
            bao_endpoint,
            endpoints,
            databases,
            replicas: Mutex::new(replicas),
        };
        for service in SERVICES {
            for n in 0..tuning.replicas {
                mesh.start_replica(service, n).await?;
            }
        }
        Ok(mesh)
    }

    fn endpoint_urls(&self) -> Vec<(String, String)> {
        self.endpoints.iter().map(|(s, p)| ((*s).to_owned(), format!("https://localhost:{}", p.port()))).collect()
    }

    fn command(&self, r: &Replica) -> Result<Command> {
        let urls = self.endpoint_urls();
        let env = Env {
            dir: &self.dir,
            pki_dir: &self.pki_dir,
            ca: &self.ca,
            endpoints: &urls,
            bao: self.bao,
            transit: &self.transit,
            otlp: &self.otlp,
        };
        let db = self.databases.iter().find(|(s, _)| *s == r.service).map(|(_, u)| u.as_str()).unwrap_or_default();
        let mut cmd = env.command(r.service, (r.port, r.metrics, r.health), db)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{}-{}.log", r.service, r.n)))?;
        cmd.env("GUARDLINE_VAULT_ADDR", format!("http://127.0.0.1:{}", self.bao_endpoint.port()))
            .env("GUARDLINE_DATA_KEY_TTL", format!("{}ms", self.tuning.data_key_ttl.as_millis()))
            .env("GUARDLINE_OUTBOX_LIMIT", self.tuning.outbox_limit.to_string())
            .env("GUARDLINE_TLS_RELOAD_INTERVAL", "1s")
            .stdout(log.try_clone()?)
            .stderr(log);
        Ok(cmd)
    }

    /// Starts replica `n` of `service` and waits until it serves.
    pub async fn start_replica(&self, service: &str, n: usize) -> Result<()> {
        let port = {
            let mut replicas = self.replicas.lock().map_err(|_| anyhow::anyhow!("replicas"))?;
            let r = replicas.iter_mut().find(|r| r.service == service && r.n == n).context("no such replica")?;
            if r.process.is_none() {
                let child = self.command(r)?.spawn().with_context(|| format!("starting {service}-{n}"))?;
                guardline_testkit::stop_with_this_process(&[child.id()], None)?;
                r.process = Some(Guarded(child));
            }
            r.port
        };
        self.wait_serving(service, port).await
    }

    /// Kills replica `n` of `service` with SIGKILL, as a node failure does.
    pub fn kill(&self, service: &str, n: usize) -> Result<()> {
        let mut replicas = self.replicas.lock().map_err(|_| anyhow::anyhow!("replicas"))?;
        let r = replicas.iter_mut().find(|r| r.service == service && r.n == n).context("no such replica")?;
        if let Some(mut p) = r.process.take() {
            p.0.kill()?;
            p.0.wait()?;
        }
        Ok(())
    }

    /// Issues every service a new certificate and key (same CA), which
    /// they load while serving.
    pub fn rotate_certificates(&self) -> Result<()> {
        for service in SERVICES {
            Cluster::issue(self.bao, &self.pki, service, &self.pki_dir)?;
        }
        Ok(())
    }

    async fn wait_serving(&self, service: &str, port: u16) -> Result<()> {
        let uri = format!("https://localhost:{port}");
        if !crate::serving(&uri, self.tls("gateway")?, Duration::from_secs(60)).await? {
            bail!("{service} on {port} never served; its log:\n{}", self.log(service));
        }
        Ok(())
    }

    /// The logs of `service`'s replicas.
    pub fn log(&self, service: &str) -> String {
        (0..self.tuning.replicas)
            .map(|n| std::fs::read_to_string(self.dir.join(format!("{service}-{n}.log"))).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n----\n")
    }

    /// mTLS material of a mesh identity.
    pub fn tls(&self, identity: &str) -> Result<Arc<TlsMaterial>> {
        TlsMaterial::load(TlsFiles::in_dir(&self.pki_dir, identity)).map_err(Into::into)
    }

    /// A channel to `service`'s endpoint as `identity`.
    pub fn channel(&self, service: &str, identity: &str) -> Result<GrpcChannel> {
        let port = self.endpoints.iter().find(|(s, _)| *s == service).map(|(_, p)| p.port()).context("service")?;
        Ok(guardline_runtime::connect(&format!("https://localhost:{port}"), self.tls(identity)?)?)
    }
}

impl guardline_journeys::Mesh for FaultMesh {
    fn channel(&self, service: &str, identity: &str) -> Result<GrpcChannel> {
        FaultMesh::channel(self, service, identity)
    }
    fn audit_pins(&self) -> Result<guardline_journeys::Pins> {
        guardline_journeys::read_pins(&self.dir.join(AUDIT_PINS))
    }
    fn platform_admin(&self) -> &str {
        "platform-admin"
    }
    fn gateway(&self) -> &str {
        "gateway"
    }
    fn say(&self, _line: &str) {}
    fn step(&self, _title: &str) {}
}

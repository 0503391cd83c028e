//! The mesh as a platform team runs it: the five service binaries as
//! separate processes (the same binaries Kubernetes runs), configured only
//! through flags and environment variables, on a real PostgreSQL 15 and a
//! real OpenBao, with certificates issued by OpenBao's PKI engine (short
//! TTL, SPIFFE URI SANs) and keys from its transit engine.
//!
//! [`Cluster::shared`] starts it once per test process; every journey of
//! `tests/` runs against it in its own tenant.

pub mod faults;
mod otlp;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use guardline_runtime::GrpcChannel;
use guardline_runtime::tls::{TlsFiles, TlsMaterial};
use guardline_testkit::{OpenBao, Postgres, free_port};
use tokio::sync::OnceCell;

/// The services, in start order, with their binaries.
pub const SERVICES: [&str; 5] = ["audit", "identity", "lead-vault", "recordings", "dialer-policy"];

/// The trust domain and namespace of the mesh's SPIFFE ids.
pub const TRUST_DOMAIN: &str = "guardline.local";
/// See [`TRUST_DOMAIN`].
pub const NAMESPACE: &str = "e2e";

/// A span the test's OTLP receiver was sent.
#[derive(Clone, Debug)]
pub struct SeenSpan {
    /// `service.name` of the exporting process.
    pub service: String,
    /// Trace id, hex.
    pub trace_id: String,
    /// Span name.
    pub name: String,
}

/// The running mesh.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    /// `https://localhost:PORT` per service name.
    endpoints: Vec<(String, String)>,
    /// The OpenBao the keys and certificates come from.
    pub bao: &'static OpenBao,
    /// The transit mount holding the tenant keys.
    pub transit: String,
    /// The PKI mount issuing the mesh's certificates.
    pub pki: String,
    /// Database URL per service.
    pub databases: Vec<(String, String)>,
    /// Every span the services exported to the test's OTLP receiver.
    pub spans: Arc<Mutex<Vec<SeenSpan>>>,
    /// Per service: its Prometheus scrape port and its plaintext health-only port.
    pub side_ports: Vec<(String, u16, u16)>,
    _children: Vec<Guarded>,
}

/// Everything a mesh needs but its processes: OpenBao's PKI (each
/// service's certificate issued), a transit mount, a database per service,
/// ports and an OTLP receiver.
#[derive(Debug)]
pub struct Stage {
    /// The mesh's directory (logs, `pki/`, recordings, registry).
    pub dir: PathBuf,
    /// `pki/`: `<name>.pem`, `<name>-key.pem`, `ca.pem`.
    pub pki_dir: PathBuf,
    /// The CA bundle.
    pub ca: PathBuf,
    /// OpenBao.
    pub bao: &'static OpenBao,
    /// The transit mount for tenant keys.
    pub transit: String,
    /// The PKI mount.
    pub pki: String,
    /// Database URL per service, in [`SERVICES`] order.
    pub databases: Vec<(String, String)>,
    /// gRPC port per service, in [`SERVICES`] order.
    pub ports: Vec<u16>,
    /// `https://localhost:PORT` per service.
    pub endpoints: Vec<(String, String)>,
    /// Per service: metrics and health-only ports.
    pub side_ports: Vec<(String, u16, u16)>,
    /// The OTLP receiver's endpoint.
    pub otlp: String,
    spans: Arc<Mutex<Vec<SeenSpan>>>,
}

impl Stage {
    /// A fresh stage on the test process's OpenBao and PostgreSQL.
    pub async fn new() -> Result<Self> {
        guardline_runtime::tls::install_crypto_provider();
        let bao = OpenBao::shared().await?;
        let pg = Postgres::shared().await?;
        let dir = tempfile::Builder::new().prefix("guardline-e2e-").tempdir()?.keep();
        let transit = bao.transit_mount().await?;
        let pki = format!("pki-{}", transit.trim_start_matches("transit-"));
        // `pki/` is laid out as the CLI expects (`--data-dir DIR`).
        let pki_dir = dir.join("pki");
        std::fs::create_dir_all(&pki_dir)?;
        let ca = Cluster::setup_pki(bao, &pki, &pki_dir)?;
        let mut databases = Vec::new();
        for s in SERVICES {
            databases.push((s.to_owned(), pg.database().await?));
            Cluster::issue(bao, &pki, s, &pki_dir)?;
        }
        let ports: Vec<u16> = SERVICES.iter().map(|_| free_port()).collect::<Result<_>>()?;
        let endpoints: Vec<(String, String)> =
            SERVICES.iter().zip(&ports).map(|(s, p)| ((*s).to_owned(), format!("https://localhost:{p}"))).collect();
        let side_ports: Vec<(String, u16, u16)> =
            SERVICES.iter().map(|s| Ok(((*s).to_owned(), free_port()?, free_port()?))).collect::<Result<_>>()?;
        let (otlp, spans) = otlp::receiver()?;
        Ok(Self { dir, pki_dir, ca, bao, transit, pki, databases, ports, endpoints, side_ports, otlp, spans })
    }

    /// The log file `service`'s process writes to.
    pub fn log_file(&self, service: &str) -> Result<std::fs::File> {
        Ok(std::fs::File::create(self.dir.join(format!("{service}.log")))?)
    }
}

/// A child process killed with its test process.
#[derive(Debug)]
struct Guarded(Child);

impl Drop for Guarded {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

static CLUSTER: OnceCell<Cluster> = OnceCell::const_new();

/// Where cargo put the workspace's binaries: next to the test executable's
/// `deps/` directory.
fn bin_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().and_then(Path::parent).context("test executable has no target directory")?;
    Ok(dir.to_path_buf())
}

/// The binary `guardline-<service>` cargo built.
pub fn binary(service: &str) -> Result<PathBuf> {
    let path = bin_dir()?.join(format!("guardline-{service}"));
    if !path.exists() {
        bail!(
            "{} is missing: build the service binaries first (`cargo build --bins`, as `make e2e` does)",
            path.display()
        );
    }
    Ok(path)
}

/// Where the e2e processes find their material.
struct Env<'a> {
    dir: &'a Path,
    pki_dir: &'a Path,
    ca: &'a Path,
    endpoints: &'a [(String, String)],
    bao: &'a OpenBao,
    transit: &'a str,
    otlp: &'a str,
}

impl Env<'_> {
    fn endpoint(&self, name: &str) -> String {
        self.endpoints.iter().find(|(n, _)| n == name).map(|(_, e)| e.clone()).unwrap_or_default()
    }

    /// The process of `service` on `port`, configured only by flags and
    /// environment, as a Deployment would be.
    fn command(&self, service: &str, (port, metrics, health): (u16, u16, u16), database: &str) -> Result<Command> {
        let log = std::fs::File::create(self.dir.join(format!("{service}.log")))?;
        let mut cmd = Command::new(binary(service)?);
        // Only flags and environment, as a Deployment would.
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("GUARDLINE_LISTEN", format!("127.0.0.1:{}", port))
            .env("GUARDLINE_TLS_CERT", self.pki_dir.join(format!("{service}.pem")))
            .env("GUARDLINE_TLS_KEY", self.pki_dir.join(format!("{service}-key.pem")))
            .env("GUARDLINE_TLS_CA", self.ca)
            .env("GUARDLINE_TRUST_DOMAIN", TRUST_DOMAIN)
            .env("GUARDLINE_NAMESPACE", NAMESPACE)
            .env("GUARDLINE_IDENTITY_ENDPOINT", self.endpoint("identity"))
            .env("GUARDLINE_LEAD_VAULT_ENDPOINT", self.endpoint("lead-vault"))
            .env("GUARDLINE_DIALER_POLICY_ENDPOINT", self.endpoint("dialer-policy"))
            .env("GUARDLINE_RECORDINGS_ENDPOINT", self.endpoint("recordings"))
            .env("GUARDLINE_AUDIT_ENDPOINT", self.endpoint("audit"))
            .env("GUARDLINE_DATABASE_URL", database)
            .env("GUARDLINE_VAULT_ADDR", &self.bao.addr)
            .env("GUARDLINE_VAULT_TOKEN", &self.bao.token)
            .env("GUARDLINE_VAULT_TRANSIT_MOUNT", self.transit)
            .env("GUARDLINE_LOG", "warn")
            .env("GUARDLINE_OTLP_ENDPOINT", self.otlp)
            .env("GUARDLINE_METRICS_ADDRESS", format!("127.0.0.1:{metrics}"))
            .env("GUARDLINE_HEALTH_LISTEN", format!("127.0.0.1:{health}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        match service {
            "identity" => {
                cmd.env("GUARDLINE_PLATFORM_ADMINS", "platform-admin");
            }
            "audit" => {
                // The journeys' webhook receiver listens on loopback, over http.
                cmd.env("GUARDLINE_WEBHOOK_ALLOW", "127.0.0.0/8").env("GUARDLINE_WEBHOOK_ALLOW_HTTP", "true");
                // What the journeys pin, as an operator would hand it out.
                cmd.env("GUARDLINE_PIN_FILE", self.dir.join(AUDIT_PINS));
            }
            "recordings" => {
                cmd.env("GUARDLINE_RECORDINGS_DIR", self.dir.join("recordings"));
            }
            "dialer-policy" => {
                cmd.env("GUARDLINE_REGISTRY_DIR", self.dir.join("registry"))
                    .env("GUARDLINE_REGISTRY_ADMINS", "operator");
            }
            _ => {}
        }
        Ok(cmd)
    }
}

impl Cluster {
    /// The mesh of this test process, started on first use.
    pub async fn shared() -> Result<&'static Cluster> {
        CLUSTER.get_or_try_init(Self::start).await
    }

    async fn start() -> Result<Self> {
        let stage = Stage::new().await?;
        let mut commands = Vec::new();
        for (i, service) in SERVICES.iter().enumerate() {
            let env = Env {
                dir: &stage.dir,
                pki_dir: &stage.pki_dir,
                ca: &stage.ca,
                endpoints: &stage.endpoints,
                bao: stage.bao,
                transit: &stage.transit,
                otlp: &stage.otlp,
            };
            let (_, metrics, health) = stage.side_ports[i];
            commands.push(env.command(service, (stage.ports[i], metrics, health), &stage.databases[i].1)?);
        }
        Self::launch(stage, commands).await
    }

    /// Starts `commands` (one per service, in [`SERVICES`] order) on `stage`,
    /// and waits until every service is SERVING.
    pub async fn launch(stage: Stage, commands: Vec<Command>) -> Result<Self> {
        let Stage { dir, pki_dir, bao, transit, pki, databases, endpoints, side_ports, spans, .. } = stage;
        let mut children = Vec::new();
        for (service, mut cmd) in SERVICES.iter().zip(commands) {
            children.push(Guarded(cmd.spawn().with_context(|| format!("starting {service}"))?));
        }
        // The cluster lives in a static, whose `Drop` never runs: a watchdog
        // stops the processes and removes their files when the test process ends.
        let pids: Vec<u32> = children.iter().map(|c| c.0.id()).collect();
        guardline_testkit::stop_with_this_process(&pids, Some(&dir))?;
        for name in ["platform-admin", "gateway", "operator", "telephony-bridge", "cli"] {
            Self::issue(bao, &pki, name, &pki_dir)?;
        }
        let cluster = Self { dir, endpoints, bao, transit, pki, databases, spans, side_ports, _children: children };
        cluster.wait_serving().await?;
        Ok(cluster)
    }

    /// A root CA and a role for the mesh in a fresh PKI mount; returns the
    /// CA bundle's path.
    fn setup_pki(bao: &OpenBao, mount: &str, dir: &Path) -> Result<PathBuf> {
        bao.cli(&["secrets", "enable", &format!("-path={mount}"), "pki"])?;
        bao.cli(&["secrets", "tune", "-max-lease-ttl=87600h", mount])?;
        let ca = bao.cli(&[
            "write",
            "-field=certificate",
            &format!("{mount}/root/generate/internal"),
            "common_name=guardline-e2e-root",
            "key_type=ec",
            "ttl=87600h",
        ])?;
        bao.cli(&[
            "write",
            &format!("{mount}/roles/mesh"),
            "allow_any_name=true",
            "enforce_hostnames=false",
            "allow_localhost=true",
            "allow_ip_sans=true",
            &format!("allowed_uri_sans=spiffe://{TRUST_DOMAIN}/ns/{NAMESPACE}/sa/*"),
            "key_type=ec",
            "ttl=1h",
            "max_ttl=24h",
        ])?;
        let path = dir.join("ca.pem");
        std::fs::write(&path, ca)?;
        Ok(path)
    }

    /// Issues `name`'s certificate (one hour, SPIFFE URI SAN) into `dir`.
    pub fn issue(bao: &OpenBao, mount: &str, name: &str, dir: &Path) -> Result<()> {
        let out = bao.cli(&[
            "write",
            "-format=json",
            &format!("{mount}/issue/mesh"),
            &format!("common_name={name}"),
            "alt_names=localhost",
            "ip_sans=127.0.0.1",
            &format!("uri_sans=spiffe://{TRUST_DOMAIN}/ns/{NAMESPACE}/sa/{name}"),
            "private_key_format=pkcs8",
            "ttl=1h",
        ])?;
        let v: serde_json::Value = serde_json::from_str(&out).context("pki issue answer")?;
        let data = &v["data"];
        let field = |k: &str| data[k].as_str().map(str::to_owned).with_context(|| format!("pki issue: no {k}"));
        std::fs::write(
            dir.join(format!("{name}.pem")),
            format!("{}\n{}\n", field("certificate")?, field("issuing_ca")?),
        )?;
        std::fs::write(dir.join(format!("{name}-key.pem")), field("private_key")?)?;
        Ok(())
    }

    /// The endpoint of a service.
    pub fn endpoint(&self, service: &str) -> &str {
        self.endpoints.iter().find(|(n, _)| n == service).map(|(_, e)| e.as_str()).unwrap_or_default()
    }

    /// mTLS material of a mesh identity issued at start (`platform-admin`,
    /// What `service` serves at `/metrics` now (the Prometheus text).
    pub async fn scrape(&self, service: &str) -> Result<String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let port = self.side_ports.iter().find(|(s, _, _)| s == service).map(|p| p.1).context("no such service")?;
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n").await?;
        let mut out = String::new();
        s.read_to_string(&mut out).await?;
        Ok(out)
    }

    /// `service`'s plaintext health-only port.
    pub fn health_port(&self, service: &str) -> u16 {
        self.side_ports.iter().find(|(s, _, _)| s == service).map_or(0, |p| p.2)
    }

    /// `gateway`, `operator`, `telephony-bridge`, or a service).
    pub fn tls(&self, identity: &str) -> Result<Arc<TlsMaterial>> {
        TlsMaterial::load(TlsFiles::in_dir(&self.dir.join("pki"), identity)).map_err(Into::into)
    }

    /// A channel to `service` as `identity`.
    pub fn channel(&self, service: &str, identity: &str) -> Result<GrpcChannel> {
        Ok(guardline_runtime::connect(self.endpoint(service), self.tls(identity)?)?)
    }

    /// The directory whose `pki/` the `guardline` CLI reads (`--data-dir`).
    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// The `guardline` CLI binary.
    pub fn cli() -> Result<PathBuf> {
        let path = bin_dir()?.join("guardline");
        if !path.exists() {
            bail!("{} is missing: `cargo build --bins` first", path.display());
        }
        Ok(path)
    }

    /// The log of a service process, for failure messages.
    pub fn log(&self, service: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{service}.log"))).unwrap_or_default()
    }

    async fn wait_serving(&self) -> Result<()> {
        for service in SERVICES {
            if !serving(self.endpoint(service), self.tls("gateway")?, Duration::from_secs(60)).await? {
                bail!("{service} never became SERVING; its log:\n{}", self.log(service));
            }
        }
        Ok(())
    }
}

/// Whether `uri` answers SERVING on gRPC health (asked with `tls`) within `wait`.
pub(crate) async fn serving(uri: &str, tls: Arc<TlsMaterial>, wait: Duration) -> Result<bool> {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    let deadline = Instant::now() + wait;
    let mut client = HealthClient::new(guardline_runtime::connect(uri, tls)?);
    loop {
        let ok = client
            .check(HealthCheckRequest { service: String::new() })
            .await
            .is_ok_and(|r| r.get_ref().status() == ServingStatus::Serving);
        if ok {
            return Ok(true);
        }
        if Instant::now() > deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Where the audit process writes its head-signing keys' fingerprints.
pub const AUDIT_PINS: &str = "audit-trusted-keys";

impl guardline_journeys::Mesh for Cluster {
    fn channel(&self, service: &str, identity: &str) -> Result<GrpcChannel> {
        Cluster::channel(self, service, identity)
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
    /// Rotates the tenant's key in OpenBao's transit, as a key administrator would.
    fn rotate_tenant_key(&self, tenant: &str) -> Result<bool> {
        self.bao.cli(&["write", "-f", &format!("{}/keys/tenant-{tenant}/rotate", self.transit)])?;
        Ok(true)
    }
    fn set_min_decryption_version(&self, tenant: &str, version: u64) -> Result<bool> {
        let config = format!("{}/keys/tenant-{tenant}/config", self.transit);
        self.bao.cli(&["write", &config, &format!("min_decryption_version={version}")])?;
        Ok(true)
    }
}

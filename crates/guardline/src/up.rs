//! `guardline up`: every service in one process, each on its own port with
//! its own mTLS identity from the dev CA, SQLite and the local keyring under
//! the data directory unless PostgreSQL or Vault are configured.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use guardline_keys::args::KeysArgs;
use guardline_runtime::args::{DatabaseArgs, MeshArgs, TelemetryArgs};
use guardline_runtime::devca::{CLI, SERVICES, ensure_dev_pki};
use guardline_service::CommonArgs;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Flags of `guardline certs`.
#[derive(clap::Args, Debug)]
pub struct CertsArgs {
    /// Directory of the dev CA and certificates.
    #[arg(long, env = "GUARDLINE_PKI_DIR", default_value = "./.guardline/pki")]
    pub dir: PathBuf,
    /// SPIFFE trust domain.
    #[arg(long, env = "GUARDLINE_TRUST_DOMAIN", default_value = "guardline.local")]
    pub trust_domain: String,
    /// Namespace in the SPIFFE ids.
    #[arg(long, env = "GUARDLINE_NAMESPACE", default_value = "guardline")]
    pub namespace: String,
}

/// Flags of `guardline up`.
#[derive(clap::Args, Debug)]
pub struct UpArgs {
    /// Where the dev CA, SQLite databases and the keyring live.
    #[arg(long, env = "GUARDLINE_DATA_DIR", default_value = "./.guardline")]
    pub data_dir: PathBuf,
    /// Address the services listen on.
    #[arg(long, env = "GUARDLINE_HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port of the identity service.
    #[arg(long, env = "GUARDLINE_IDENTITY_PORT", default_value_t = 7101)]
    pub identity_port: u16,
    /// Port of the lead-vault service.
    #[arg(long, env = "GUARDLINE_LEAD_VAULT_PORT", default_value_t = 7102)]
    pub lead_vault_port: u16,
    /// Port of the dialer-policy service.
    #[arg(long, env = "GUARDLINE_DIALER_POLICY_PORT", default_value_t = 7103)]
    pub dialer_policy_port: u16,
    /// Port of the recordings service.
    #[arg(long, env = "GUARDLINE_RECORDINGS_PORT", default_value_t = 7104)]
    pub recordings_port: u16,
    /// Port of the audit service.
    #[arg(long, env = "GUARDLINE_AUDIT_PORT", default_value_t = 7105)]
    pub audit_port: u16,
    /// PostgreSQL URL shared by all services (each in its own schema);
    /// SQLite files in the data directory when absent.
    #[arg(long, env = "GUARDLINE_DATABASE_URL")]
    pub database_url: Option<String>,
    /// SPIFFE trust domain.
    #[arg(long, env = "GUARDLINE_TRUST_DOMAIN", default_value = "guardline.local")]
    pub trust_domain: String,
    /// Namespace in the SPIFFE ids.
    #[arg(long, env = "GUARDLINE_NAMESPACE", default_value = "guardline")]
    pub namespace: String,
    /// Tenant keys: Vault with `--vault-addr`, else the keyring in the data directory.
    #[command(flatten)]
    pub keys: KeysArgs,
    /// Logs and OpenTelemetry.
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

impl UpArgs {
    fn ports(&self) -> [(&'static str, &'static str, u16); 5] {
        [
            ("identity", "--identity-port", self.identity_port),
            ("lead-vault", "--lead-vault-port", self.lead_vault_port),
            ("dialer-policy", "--dialer-policy-port", self.dialer_policy_port),
            ("recordings", "--recordings-port", self.recordings_port),
            ("audit", "--audit-port", self.audit_port),
        ]
    }
}

pub fn certs(args: &CertsArgs) -> anyhow::Result<()> {
    let issued = ensure_dev_pki(&args.dir, &args.trust_domain, &args.namespace)?;
    println!("dev CA: {}", args.dir.join("ca.pem").display());
    for (name, files) in issued {
        println!("{name:>14}: {} {}", files.cert.display(), files.key.display());
    }
    Ok(())
}

fn common(args: &UpArgs, name: &str, addr: SocketAddr, mesh: &MeshArgs, pki: &Path) -> CommonArgs {
    let database = match &args.database_url {
        Some(url) => DatabaseArgs { database_schema: Some(name.replace('-', "_")), ..DatabaseArgs::url(url.clone()) },
        None => DatabaseArgs::url(format!("sqlite://{}", args.data_dir.join(format!("{name}.db")).display())),
    };
    let tls = guardline_runtime::tls::TlsFiles::in_dir(pki, name);
    CommonArgs { telemetry: args.telemetry.clone(), ..CommonArgs::new(addr, tls, mesh.clone(), database) }
}

/// Without Vault or a keyring named, the local keyring in the data
/// directory, sealed by a master key created there once.
fn default_keyring(args: &mut UpArgs) -> anyhow::Result<()> {
    if args.keys.vault_addr.is_none() && args.keys.keyring_path.is_none() {
        args.keys.keyring_path = Some(args.data_dir.join("keyring.json"));
        if args.keys.master_key.is_none() && args.keys.master_key_file.is_none() {
            let file = args.data_dir.join("master.key");
            let keyring = args.data_dir.join("keyring.json");
            // A new master key beside an existing keyring would seal new
            // tenant keys with one key and leave the old ones unopenable.
            anyhow::ensure!(
                file.exists() || !keyring.exists(),
                "{} exists but {} does not: the keyring's tenant keys are sealed by that master key. \
                 Restore it from your backup (or pass --master-key-file), or move the data directory \
                 away to start afresh",
                keyring.display(),
                file.display()
            );
            // Created once, mode 0600; lead-vault and recordings share the keyring it seals.
            guardline_keys::local::master_key_from_file(&file, true)?;
            args.keys.master_key_file = Some(file);
        }
    }
    Ok(())
}

pub async fn run(mut args: UpArgs) -> anyhow::Result<()> {
    let _telemetry = guardline_runtime::telemetry::init("guardline", &args.telemetry)?;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating --data-dir {}", args.data_dir.display()))?;
    let pki = args.data_dir.join("pki");
    ensure_dev_pki(&pki, &args.trust_domain, &args.namespace)?;
    default_keyring(&mut args)?;

    // Bind every port first, so a port in use fails the start with its flag named.
    let mut listeners = Vec::new();
    for (name, flag, port) in args.ports() {
        let addr = SocketAddr::new(args.host, port);
        let l = TcpListener::bind(addr).await.with_context(|| format!("{flag}: cannot listen on {addr}"))?;
        listeners.push((name, l.local_addr()?, l));
    }
    let endpoint = |i: usize| format!("https://localhost:{}", listeners[i].1.port());
    let mesh = MeshArgs {
        trust_domain: args.trust_domain.clone(),
        namespace: args.namespace.clone(),
        identity_endpoint: endpoint(0),
        lead_vault_endpoint: endpoint(1),
        dialer_policy_endpoint: endpoint(2),
        recordings_endpoint: endpoint(3),
        audit_endpoint: endpoint(4),
        ..MeshArgs::default()
    };

    let shutdown = guardline_runtime::shutdown::on_signals();
    let mut tasks = tokio::task::JoinSet::new();
    for (name, addr, listener) in listeners {
        let c = common(&args, name, addr, &mesh, &pki);
        let s = shutdown.clone();
        let keys = args.keys.clone();
        let data_dir = args.data_dir.clone();
        tasks.spawn(async move {
            let res = serve_one(name, c, keys, &data_dir, listener, s).await;
            (name, res)
        });
    }
    print_banner(&args, &mesh, &pki);
    supervise(tasks, shutdown).await
}

/// The file in `--data-dir` where the embedded audit service writes the
/// fingerprints of its head-signing keys, which `guardline audit verify`
/// pins by default.
pub const AUDIT_PINS: &str = "audit-trusted-keys";

/// Runs service `name` on `listener` with its embedded defaults.
async fn serve_one(
    name: &'static str,
    c: CommonArgs,
    keys: guardline_keys::args::KeysArgs,
    data_dir: &std::path::Path,
    listener: TcpListener,
    s: CancellationToken,
) -> anyhow::Result<()> {
    let (recordings_dir, registry_dir) = (data_dir.join("recordings"), data_dir.join("registry"));
    let l = Some(listener);
    match name {
        "identity" => guardline_identity::run(identity_args(c, keys), l, s).await,
        "lead-vault" => {
            let args = guardline_lead_vault::Args {
                common: c,
                keys,
                reveal_quota: 50,
                export_quota: 10_000,
                lookup_rate: 10_000,
            };
            guardline_lead_vault::run(args, l, s).await
        }
        "dialer-policy" => {
            let args = guardline_dialer_policy::Args {
                common: c,
                packs_dir: None,
                registry_dir: registry_dir.clone(),
                // The developer's CLI certificate may load a registry copy.
                registry_admins: vec!["operator".into(), CLI.into()],
                service_clients: vec!["dialer-app".into(), "telephony-bridge".into()],
            };
            guardline_dialer_policy::run(args, l, s).await
        }
        "recordings" => {
            let objects = guardline_recordings::args::ObjectStoreArgs {
                recordings_dir: Some(recordings_dir),
                ..Default::default()
            };
            let args =
                guardline_recordings::Args { common: c, keys, objects, upload_idle_timeout: Duration::from_secs(60) };
            guardline_recordings::run(args, l, s).await
        }
        _ => {
            let args = guardline_audit::Args {
                common: c,
                keys,
                // A developer's local receiver, on one machine.
                webhook_allow: "127.0.0.0/8".parse().into_iter().collect(),
                webhook_allow_http: true,
                trusted_keys: vec![],
                // What `guardline audit verify` pins on this machine.
                pin_file: Some(data_dir.join(AUDIT_PINS)),
                // Heads published beside the databases, written once.
                checkpoint_url: Some(data_dir.join("checkpoints").display().to_string()),
                checkpoint_interval: Duration::from_secs(10),
            };
            guardline_audit::run(args, l, s).await
        }
    }
}

/// Identity's embedded defaults.
fn identity_args(common: CommonArgs, keys: guardline_keys::args::KeysArgs) -> guardline_identity::Args {
    guardline_identity::Args {
        common,
        keys,
        // The developer's CLI certificate administers the embedded mesh.
        platform_admins: vec!["platform-admin".into(), CLI.into()],
        trusted_gateways: vec!["gateway".into()],
        access_token_ttl: Duration::from_secs(600),
        refresh_token_ttl: Duration::from_secs(12 * 3600),
        signing_key_rotation: Duration::from_secs(24 * 3600),
    }
}

/// Waits for every service; the first to fail stops the others.
async fn supervise(
    mut tasks: tokio::task::JoinSet<(&'static str, anyhow::Result<()>)>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        let (name, res) = joined.context("a service task panicked")?;
        if let Err(e) = res {
            tracing::error!(service = name, error = %e, "service failed, stopping the mesh");
            first_error.get_or_insert(e.context(format!("{name} failed")));
            shutdown.cancel();
        } else if !shutdown.is_cancelled() {
            first_error.get_or_insert(anyhow::anyhow!("{name} stopped unexpectedly"));
            shutdown.cancel();
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => {
            println!("guardline stopped");
            Ok(())
        }
    }
}

fn print_banner(args: &UpArgs, mesh: &MeshArgs, pki: &Path) {
    println!("guardline is up");
    for (name, ep) in [
        ("identity", &mesh.identity_endpoint),
        ("lead-vault", &mesh.lead_vault_endpoint),
        ("dialer-policy", &mesh.dialer_policy_endpoint),
        ("recordings", &mesh.recordings_endpoint),
        ("audit", &mesh.audit_endpoint),
    ] {
        println!("  {name:<14} {ep}   spiffe id {}", mesh.identity_of(name));
    }
    println!("  CA certificate     {}", pki.join("ca.pem").display());
    println!(
        "  CLI certificate    {} (key {})",
        pki.join(format!("{CLI}.pem")).display(),
        pki.join(format!("{CLI}-key.pem")).display()
    );
    let store = if args.database_url.is_some() {
        "PostgreSQL (one schema per service)".to_owned()
    } else {
        format!("SQLite in {}", args.data_dir.display())
    };
    let keys = match &args.keys.vault_addr {
        Some(a) => format!("Vault transit at {a}"),
        None => format!("local keyring {}", args.data_dir.join("keyring.json").display()),
    };
    println!("  storage            {store}");
    println!("  tenant keys        {keys}");
    println!("check it: guardline health --data-dir {}   (Ctrl-C stops)", args.data_dir.display());
    debug_assert_eq!(SERVICES.len(), 5);
}

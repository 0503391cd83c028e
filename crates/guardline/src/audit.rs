//! `guardline audit verify`: checks a tenant's whole audit log offline, from
//! an export file or from a live export it fetches first, against pinned
//! keys, and names the first index where anything was changed, removed or
//! reordered. Live, it is also a monitor: it remembers the last head it
//! verified per tenant and proves, with `GetConsistencyProof`, that the log
//! only grew since; a truncated or forked log is said plainly.

use std::path::PathBuf;

use guardline_audit_log::export::{closing_head, recomputed, verify_export};
use guardline_audit_log::monitor::{Head, Verdict, judge};
use guardline_audit_log::pin::Pins;
use guardline_audit_log::verify::Finding;
use guardline_proto::audit::v1::audit_service_client::AuditServiceClient;
use guardline_proto::audit::v1::{ExportEventsRequest, GetConsistencyProofRequest};
use guardline_runtime::tls::{TlsFiles, TlsMaterial};

/// `guardline audit ...`.
#[derive(clap::Subcommand, Debug)]
pub enum AuditCommand {
    /// Verify a tenant's log: `--file EXPORT.jsonl`, or live with `--tenant` and `--token`.
    Verify(VerifyArgs),
}

/// Flags of `guardline audit verify`.
#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// An export (JSON Lines) to verify offline.
    #[arg(long, conflicts_with_all = ["tenant", "token"])]
    pub file: Option<PathBuf>,
    /// Tenant to export and verify live.
    #[arg(long, requires = "token")]
    pub tenant: Option<String>,
    /// Access token of a user holding `audit.read`.
    #[arg(long, env = "GUARDLINE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Audit service endpoint.
    #[arg(long, env = "GUARDLINE_AUDIT_ENDPOINT", default_value = "https://localhost:7105")]
    pub endpoint: String,
    /// Data directory of `guardline up` (for the CLI certificate).
    #[arg(long, env = "GUARDLINE_DATA_DIR", default_value = "./.guardline")]
    pub data_dir: PathBuf,
    /// Also save the fetched export here.
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Fingerprint (`SHA256:` and hex) of a head-signing key to trust;
    /// repeat for each key the audit service has signed with. Only pinned
    /// keys count: the keys an export carries are not trusted on their own.
    #[arg(long = "trusted-key")]
    pub trusted_key: Vec<String>,
    /// A file of such fingerprints, one a line (default: the one
    /// `guardline up` writes in `--data-dir`, when no `--trusted-key` is given).
    #[arg(long)]
    pub trusted_keys: Option<PathBuf>,
    /// Where a live verification remembers each tenant's last verified head
    /// (default: `audit-monitor` in `--data-dir`).
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// A checkpoint the audit service published (a C2SP signed note from
    /// `--checkpoint-url`): the log must extend it.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
}

/// The pins of a verification: the `--trusted-key`s and the `--trusted-keys`
/// file, or else `guardline up`'s file in the data directory.
fn pins(args: &VerifyArgs) -> anyhow::Result<Pins> {
    let mut fingerprints = args.trusted_key.clone();
    let file = match (&args.trusted_keys, fingerprints.is_empty()) {
        (Some(f), _) => Some(f.clone()),
        (None, true) => Some(args.data_dir.join(crate::up::AUDIT_PINS)),
        (None, false) => None,
    };
    if let Some(f) = file {
        let text = std::fs::read_to_string(&f).map_err(|e| {
            anyhow::anyhow!("--trusted-keys {}: {e} (pin the audit service's keys with --trusted-key)", f.display())
        })?;
        fingerprints
            .extend(text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from));
    }
    let pins = Pins::parse(&fingerprints).map_err(|e| anyhow::anyhow!("--trusted-key: {e}"))?;
    anyhow::ensure!(!pins.is_empty(), "no pinned key: give --trusted-key or --trusted-keys");
    Ok(pins)
}

pub async fn run(cmd: AuditCommand) -> anyhow::Result<()> {
    let AuditCommand::Verify(args) = cmd;
    let pins = pins(&args)?;
    let (text, live) = match (&args.file, &args.tenant, &args.token) {
        (Some(file), _, _) => {
            let text = std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("--file {}: {e}", file.display()))?;
            (text, None)
        }
        (None, Some(tenant), Some(token)) => (fetch(&args, tenant, token).await?, Some((tenant, token))),
        _ => anyhow::bail!("give --file EXPORT, or --tenant and --token for a live log"),
    };
    if let Some(path) = &args.save {
        std::fs::write(path, &text)?;
    }
    match verify_export(&text, &pins).map_err(|e| anyhow::anyhow!("unreadable export: {e}"))? {
        Finding::Intact { size } => {
            println!("intact: {size} entries, every signed tree head verified with a pinned key");
        }
        Finding::Tampered { index, problem } => {
            println!("TAMPERED at index {index}: {problem}");
            std::process::exit(1);
        }
    }
    if let Some(file) = &args.checkpoint {
        let verdict = against_checkpoint(&text, &pins, file)?;
        println!("published checkpoint: {verdict}");
        if !verdict.is_consistent() {
            std::process::exit(1);
        }
    }
    let Some((tenant, token)) = live else { return Ok(()) };
    let now = closing_head(&text).ok_or_else(|| anyhow::anyhow!("the export has no closing tree head"))?;
    let state = args.state.clone().unwrap_or_else(|| args.data_dir.join("audit-monitor"));
    let seen = crate::monitor::Seen::load(&state)?;
    let remembered = seen.get(tenant);
    let proof = match remembered {
        Some(r) if r.size > 0 && r.size < now.size => Some(consistency(&args, tenant, token, r, now).await?),
        _ => None,
    };
    let verdict = judge(remembered, now, proof.as_deref());
    println!("{verdict}");
    if !verdict.is_consistent() {
        std::process::exit(1);
    }
    if verdict != Verdict::Unchanged {
        seen.save(&state, tenant, now)?;
    }
    Ok(())
}

/// Whether the (intact) export extends a published checkpoint: the note
/// must be of the export's tenant and signed by a pinned key; the proof is
/// made on the export's own recomputed tree.
fn against_checkpoint(text: &str, pins: &Pins, file: &std::path::Path) -> anyhow::Result<Verdict> {
    use guardline_audit_log::checkpoint;
    let note = std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("--checkpoint {}: {e}", file.display()))?;
    let (tenant, keys, tree) = recomputed(text, pins).map_err(|e| anyhow::anyhow!("unreadable export: {e}"))?;
    let origin = note.lines().next().unwrap_or_default();
    anyhow::ensure!(
        origin.ends_with(&format!("/audit/{tenant}")),
        "--checkpoint: not a checkpoint of tenant {tenant}'s log"
    );
    let keys: Vec<&[u8]> = keys.values().map(Vec::as_slice).collect();
    let published = checkpoint::open(&note, origin, &keys).map_err(|e| anyhow::anyhow!("--checkpoint: {e}"))?;
    let now = Head { size: tree.len(), root: tree.root(tree.len()).map_err(|e| anyhow::anyhow!("{e}"))? };
    let proof = match tree.consistency_proof(published.size, now.size) {
        Ok(p) => Some(p),
        Err(guardline_audit_log::merkle::ProofError::Pruned(k)) => {
            anyhow::bail!("--checkpoint: its size precedes the export's pruned prefix ({k}); verify live instead")
        }
        Err(_) => None,
    };
    Ok(judge(Some(published), now, proof.as_deref()))
}

/// The consistency proof from the remembered head to today's.
async fn consistency(
    args: &VerifyArgs,
    tenant: &str,
    token: &str,
    seen: Head,
    now: Head,
) -> anyhow::Result<Vec<guardline_audit_log::merkle::Hash>> {
    let req = GetConsistencyProofRequest { tenant_id: tenant.to_owned(), first_size: seen.size, second_size: now.size };
    let mut req = tonic::Request::new(req);
    req.metadata_mut().insert("authorization", format!("Bearer {token}").parse()?);
    let proof = client(args)?.get_consistency_proof(req).await?.into_inner();
    // A hash of the wrong length fails the proof, as a forged one would.
    Ok(proof.path.into_iter().map(|h| h.try_into().unwrap_or([0; 32])).collect())
}

fn client(args: &VerifyArgs) -> anyhow::Result<AuditServiceClient<guardline_runtime::GrpcChannel>> {
    let tls = TlsMaterial::load(TlsFiles::in_dir(&args.data_dir.join("pki"), guardline_runtime::devca::CLI))?;
    Ok(AuditServiceClient::new(guardline_runtime::connect(&args.endpoint, tls)?))
}

async fn fetch(args: &VerifyArgs, tenant: &str, token: &str) -> anyhow::Result<String> {
    let mut client = client(args)?;
    let mut req = tonic::Request::new(ExportEventsRequest { tenant_id: tenant.to_owned(), range: None });
    req.metadata_mut().insert("authorization", format!("Bearer {token}").parse()?);
    let mut stream = client.export_events(req).await?.into_inner();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.message().await? {
        bytes.extend_from_slice(&chunk.data);
    }
    Ok(String::from_utf8(bytes)?)
}

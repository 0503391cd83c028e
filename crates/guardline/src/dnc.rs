//! `guardline dnc import FILE`: streams a do-not-call file to dialer-policy's
//! `ImportDnc` with a progress bar: a national registry copy (the FTC
//! download, `area code,number` per line, or E.164 lines), loaded beside the
//! old copy and swapped in at once; or a tenant's internal or campaign list.

use std::io::Read;
use std::path::PathBuf;

use guardline_proto::dialer::v1 as pb;
use guardline_proto::dialer::v1::dialer_policy_service_client::DialerPolicyServiceClient;
use guardline_runtime::tls::{TlsFiles, TlsMaterial};
use indicatif::{ProgressBar, ProgressStyle};

/// `guardline dnc ...`.
#[derive(clap::Subcommand, Debug)]
pub enum DncCommand {
    /// Import a do-not-call file.
    Import(ImportArgs),
}

/// File formats.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Format {
    /// FTC download: `area code,number` per line.
    Ftc,
    /// One E.164 number per line.
    E164,
}

/// Flags of `guardline dnc import`.
#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// The file.
    pub file: PathBuf,
    /// Its format.
    #[arg(long, value_enum, default_value = "ftc")]
    pub format: Format,
    /// Load a national registry copy (platform-wide; the CLI certificate must be a registry admin).
    #[arg(long, conflicts_with_all = ["tenant", "campaign"], requires = "copy_date")]
    pub national: bool,
    /// Region of the national copy (the FTC format implies US).
    #[arg(long, default_value = "")]
    pub region: String,
    /// Date of the national copy, YYYY-MM-DD.
    #[arg(long)]
    pub copy_date: Option<chrono::NaiveDate>,
    /// Tenant whose internal list (or campaign list, with --campaign) gets the numbers.
    #[arg(long, requires = "token")]
    pub tenant: Option<String>,
    /// Campaign whose list gets the numbers.
    #[arg(long, requires = "tenant")]
    pub campaign: Option<String>,
    /// Access token of a user with `dnc.manage` (tenant lists).
    #[arg(long, env = "GUARDLINE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Dialer-policy endpoint.
    #[arg(long, env = "GUARDLINE_DIALER_POLICY_ENDPOINT", default_value = "https://localhost:7103")]
    pub endpoint: String,
    /// Data directory of `guardline up` (for the CLI certificate).
    #[arg(long, env = "GUARDLINE_DATA_DIR", default_value = "./.guardline")]
    pub data_dir: PathBuf,
}

/// Bytes per streamed message.
const CHUNK: usize = 256 * 1024;

pub async fn run(cmd: DncCommand) -> anyhow::Result<()> {
    let DncCommand::Import(args) = cmd;
    let header = header(&args)?;
    let mut file = std::fs::File::open(&args.file).map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    let size = file.metadata()?.len();
    let tls = TlsMaterial::load(TlsFiles::in_dir(&args.data_dir.join("pki"), guardline_runtime::devca::CLI))?;
    let mut client = DialerPolicyServiceClient::new(guardline_runtime::connect(&args.endpoint, tls)?);

    let bar = ProgressBar::new(size);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:40}] {bytes}/{total_bytes} {msg}")?.progress_chars("=> "),
    );
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::ImportDncRequest>(8);
    tx.send(pb::ImportDncRequest { item: Some(pb::import_dnc_request::Item::Header(header)) }).await?;
    let reading_bar = bar.clone();
    let reading = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            let chunk = pb::ImportDncRequest { item: Some(pb::import_dnc_request::Item::Data(buf[..n].to_vec())) };
            if tx.blocking_send(chunk).is_err() {
                break;
            }
            reading_bar.inc(n as u64);
        }
        reading_bar.set_message("sent; the dialer is building the list");
        Ok(())
    });
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    let mut req = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    if let Some(token) = &args.token {
        req.metadata_mut().insert("authorization", format!("Bearer {token}").parse()?);
    }
    let answer = client.import_dnc(req).await;
    reading.await??;
    bar.finish_and_clear();
    let answer = answer.map_err(|s| anyhow::anyhow!("import refused: {:?}: {}", s.code(), s.message()))?.into_inner();
    println!("loaded {} numbers, refused {} lines", answer.loaded, answer.rejected);
    Ok(())
}

fn header(args: &ImportArgs) -> anyhow::Result<pb::ImportDncHeader> {
    let format = match args.format {
        Format::Ftc => pb::DncFormat::Ftc,
        Format::E164 => pb::DncFormat::E164,
    } as i32;
    if args.national {
        let date = args.copy_date.ok_or_else(|| anyhow::anyhow!("--copy-date is required with --national"))?;
        let midnight = date.and_hms_opt(0, 0, 0).ok_or_else(|| anyhow::anyhow!("--copy-date"))?.and_utc();
        return Ok(pb::ImportDncHeader {
            list: pb::DncList::National as i32,
            format,
            region: args.region.clone(),
            copy_date: Some(prost_types::Timestamp { seconds: midnight.timestamp(), nanos: 0 }),
            ..Default::default()
        });
    }
    let Some(tenant) = &args.tenant else {
        anyhow::bail!("give --national (with --copy-date), or --tenant (and --campaign for a campaign list)");
    };
    let (list, campaign) = match &args.campaign {
        Some(c) => (pb::DncList::Campaign, c.clone()),
        None => (pb::DncList::Internal, String::new()),
    };
    Ok(pb::ImportDncHeader {
        tenant_id: tenant.clone(),
        list: list as i32,
        campaign_id: campaign,
        format,
        ..Default::default()
    })
}

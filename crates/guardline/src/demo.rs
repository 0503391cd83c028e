//! `guardline demo`: the product's journeys 1–8 (written once, in
//! `guardline-journeys`), narrated, against a running `guardline up`
//! (embedded defaults). Every call is a real gRPC call over mTLS; the demo
//! uses the dev CA of the data directory for the identities a real
//! deployment gives other systems (the telephony bridge, the operator).
//! All data is synthetic.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use guardline_audit_log::verify::Finding;
use guardline_journeys as journeys;
use guardline_runtime::GrpcChannel;
use guardline_runtime::tls::{TlsFiles, TlsMaterial};

/// Flags of `guardline demo`.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Data directory of `guardline up` (its dev CA and CLI certificate).
    #[arg(long, env = "GUARDLINE_DATA_DIR", default_value = "./.guardline")]
    pub data_dir: PathBuf,
    /// Endpoints as NAME=URI; defaults to the five services on localhost:7101-7105.
    #[arg(long = "endpoint", value_parser = crate::health::parse_endpoint)]
    pub endpoints: Vec<(String, String)>,
}

/// The running `guardline up`, as the journeys reach it; narrates on stdout.
struct Demo {
    endpoints: Vec<(String, String)>,
    pki: PathBuf,
    data_dir: PathBuf,
    ca: guardline_runtime::devca::DevCa,
}

impl journeys::Mesh for Demo {
    /// A channel to `service` as `identity` (the CLI, or an identity the dev CA issues).
    fn channel(&self, service: &str, identity: &str) -> Result<GrpcChannel> {
        let files = if identity == guardline_runtime::devca::CLI {
            TlsFiles::in_dir(&self.pki, identity)
        } else {
            self.ca.ensure(identity)?
        };
        let endpoint = self.endpoints.iter().find(|(n, _)| n == service).map(|(_, e)| e.as_str());
        Ok(guardline_runtime::connect(endpoint.context("no endpoint")?, TlsMaterial::load(files)?)?)
    }
    /// `guardline up` makes the CLI's certificate a platform admin.
    fn platform_admin(&self) -> &str {
        guardline_runtime::devca::CLI
    }
    fn gateway(&self) -> &str {
        guardline_runtime::devca::CLI
    }
    fn step(&self, title: &str) {
        println!("\n== {title}");
    }
    fn say(&self, line: &str) {
        println!("   {line}");
    }
    /// The keys `guardline up`'s audit service wrote beside its data.
    fn audit_pins(&self) -> Result<journeys::Pins> {
        journeys::read_pins(&self.data_dir.join(crate::up::AUDIT_PINS))
    }
}

/// Whether China works on `day`, by the dialer's `cn` pack and its
/// official calendars.
fn cn_works() -> Result<impl Fn(chrono::NaiveDate) -> bool> {
    let packs = guardline_dialer_policy::domain::window::Packs::load(None)?;
    Ok(move |day| packs.get("cn").is_some_and(|p| p.works_on(day, &Default::default())))
}

pub async fn run(args: DemoArgs) -> Result<()> {
    let pki = args.data_dir.join("pki");
    let ca = guardline_runtime::devca::DevCa::open_or_create(&pki, "guardline.local", "guardline")
        .context("the dev CA of `guardline up` (run it first, with the same --data-dir)")?;
    let mut endpoints: Vec<(String, String)> = crate::health::SERVICE_NAMES
        .iter()
        .map(|(n, _, port)| ((*n).to_owned(), format!("https://localhost:{port}")))
        .collect();
    for (name, uri) in args.endpoints {
        if let Some(e) = endpoints.iter_mut().find(|(n, _)| *n == name) {
            e.1 = uri;
        }
    }
    let d = Demo { endpoints, pki, data_dir: args.data_dir, ca };
    println!("Guardline demo: a call center's day, against the running mesh. All data is synthetic.");
    let name = format!("Demo Call Center {}", chrono::Utc::now().format("%H:%M:%S"));
    let org = journeys::onboard(&d, &name).await?;
    journeys::leads::leads(&d, &org, 100).await?;
    journeys::dialing::dialing(&d, &org, cn_works()?).await?;
    journeys::recording::recording(&d, &org).await?;
    journeys::exfiltration::exfiltration(&d, &org, 20, 30, vec![]).await?;
    journeys::erasure::erasure(&d, &org).await?;
    journeys::rotation::rotation(&d, &org).await?;
    if let Finding::Tampered { index, problem } = journeys::audit::audit(&d, &org).await?.finding {
        bail!("the audit log is TAMPERED at {index}: {problem}");
    }
    println!(
        "\nDone: every answer above came from the services over mTLS, and every step is in the tenant's audit log."
    );
    Ok(())
}

//! `guardline health`: asks every service for its gRPC health over mTLS with
//! the CLI certificate of the dev CA.

use std::path::PathBuf;
use std::time::Duration;

use guardline_runtime::tls::{TlsFiles, TlsMaterial};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// Flags of `guardline health`.
#[derive(clap::Args, Debug)]
pub struct HealthArgs {
    /// Data directory of `guardline up` (its `pki/` holds the CLI certificate).
    #[arg(long, env = "GUARDLINE_DATA_DIR", default_value = "./.guardline")]
    pub data_dir: PathBuf,
    /// Endpoints as NAME=URI; defaults to the five services on localhost:7101-7105.
    #[arg(long = "endpoint", value_parser = parse_endpoint)]
    pub endpoints: Vec<(String, String)>,
    /// How long to keep retrying before giving up.
    #[arg(long, default_value = "10s", value_parser = guardline_runtime::args::parse_duration)]
    pub wait: Duration,
}

pub(crate) fn parse_endpoint(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(n, u)| (n.to_owned(), u.to_owned())).ok_or_else(|| "use NAME=https://host:port".into())
}

pub(crate) const SERVICE_NAMES: [(&str, &str, u16); 5] = [
    ("identity", "guardline.identity.v1.IdentityService", 7101),
    ("lead-vault", "guardline.vault.v1.LeadVaultService", 7102),
    ("dialer-policy", "guardline.dialer.v1.DialerPolicyService", 7103),
    ("recordings", "guardline.recordings.v1.RecordingsService", 7104),
    ("audit", "guardline.audit.v1.AuditService", 7105),
];

pub async fn run(args: &HealthArgs) -> anyhow::Result<()> {
    let tls = TlsMaterial::load(TlsFiles::in_dir(&args.data_dir.join("pki"), guardline_runtime::devca::CLI))?;
    let targets: Vec<(String, String, String)> = if args.endpoints.is_empty() {
        SERVICE_NAMES
            .iter()
            .map(|(n, s, p)| ((*n).to_owned(), (*s).to_owned(), format!("https://localhost:{p}")))
            .collect()
    } else {
        args.endpoints
            .iter()
            .map(|(n, u)| {
                let svc = SERVICE_NAMES
                    .iter()
                    .find(|(name, ..)| name == n)
                    .map(|(_, s, _)| (*s).to_owned())
                    .unwrap_or_default();
                (n.clone(), svc, u.clone())
            })
            .collect()
    };
    let deadline = tokio::time::Instant::now() + args.wait;
    let mut all_ok = true;
    for (name, service, uri) in targets {
        let mut client = HealthClient::new(guardline_runtime::connect(&uri, tls.clone())?);
        let status = loop {
            let res = client.check(HealthCheckRequest { service: service.clone() }).await;
            match res {
                Ok(r) if r.get_ref().status() == tonic_health::pb::health_check_response::ServingStatus::Serving => {
                    break Ok("SERVING".to_owned());
                }
                other if tokio::time::Instant::now() >= deadline => {
                    break Err(match other {
                        Ok(r) => format!("{:?}", r.get_ref().status()),
                        Err(s) => format!("{:?}: {}", s.code(), s.message()),
                    });
                }
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        match status {
            Ok(s) => println!("{name:<14} {uri:<28} {s}"),
            Err(s) => {
                all_ok = false;
                println!("{name:<14} {uri:<28} {s}");
            }
        }
    }
    anyhow::ensure!(all_ok, "some services are not serving");
    Ok(())
}

//! Configuration groups shared by every binary. Every flag is also a
//! `GUARDLINE_*` environment variable; services flatten the groups they use.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::peer::SpiffeId;
use crate::tls::TlsFiles;

/// Parses `250ms`, `30s`, `5m`, `2h` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("`{s}` is not a duration like 30s or 250ms"))?;
    Ok(match unit {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return Err(format!("`{s}` has an unknown unit (use ms, s, m or h)")),
    })
}

/// Log output format.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Logging and OpenTelemetry.
#[derive(clap::Args, Clone, Debug)]
pub struct TelemetryArgs {
    /// Log filter in `tracing` env-filter syntax.
    #[arg(long, env = "GUARDLINE_LOG", default_value = "info")]
    pub log: String,
    /// Log format.
    #[arg(long, env = "GUARDLINE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// OTLP/gRPC endpoint for traces and metrics, e.g. `http://otel-collector:4317`.
    #[arg(long, env = "GUARDLINE_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// Which spans are exported over OTLP, in env-filter syntax; independent of
    /// `--log`, so quiet logs do not silence traces.
    #[arg(long, env = "GUARDLINE_TRACE", default_value = "info")]
    pub trace: String,
    /// Serves the metrics for Prometheus at `http://ADDRESS/metrics` (plain
    /// HTTP; counts and durations only, never personal data), e.g.
    /// `0.0.0.0:9090`. Off when unset.
    #[arg(long, env = "GUARDLINE_METRICS_ADDRESS")]
    pub metrics_address: Option<std::net::SocketAddr>,
}

impl Default for TelemetryArgs {
    fn default() -> Self {
        Self {
            log: "info".into(),
            log_format: LogFormat::Text,
            otlp_endpoint: None,
            trace: "info".into(),
            metrics_address: None,
        }
    }
}

/// This component's mTLS material.
#[derive(clap::Args, Clone, Debug)]
pub struct TlsArgs {
    /// PEM certificate chain presented to peers (leaf first).
    #[arg(long, env = "GUARDLINE_TLS_CERT")]
    pub tls_cert: PathBuf,
    /// PEM private key of the certificate.
    #[arg(long, env = "GUARDLINE_TLS_KEY")]
    pub tls_key: PathBuf,
    /// PEM bundle of the CAs that sign peers' certificates.
    #[arg(long, env = "GUARDLINE_TLS_CA")]
    pub tls_ca: PathBuf,
    /// How often the files are checked for a rotated certificate.
    #[arg(long, env = "GUARDLINE_TLS_RELOAD_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub tls_reload_interval: Duration,
}

impl TlsArgs {
    /// Flags for these files, checked every 5 s.
    pub fn from_files(files: TlsFiles) -> Self {
        Self { tls_cert: files.cert, tls_key: files.key, tls_ca: files.ca, tls_reload_interval: Duration::from_secs(5) }
    }

    /// Loads the TLS material these flags name and keeps it fresh until
    /// `shutdown`.
    pub fn load_and_watch(
        &self,
        shutdown: &tokio_util::sync::CancellationToken,
    ) -> Result<std::sync::Arc<crate::tls::TlsMaterial>> {
        let tls = crate::tls::TlsMaterial::load(self.files())?;
        tls.spawn_reloader(self.tls_reload_interval, shutdown.clone());
        Ok(tls)
    }

    /// The files these flags name.
    pub fn files(&self) -> TlsFiles {
        TlsFiles { cert: self.tls_cert.clone(), key: self.tls_key.clone(), ca: self.tls_ca.clone() }
    }
}

/// How the gRPC server listens and protects itself.
#[derive(clap::Args, Clone, Debug)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, env = "GUARDLINE_LISTEN")]
    pub listen: SocketAddr,
    /// Longest a request may run (a shorter client `grpc-timeout` wins).
    #[arg(long, env = "GUARDLINE_REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// Requests in flight across all connections before new ones are shed.
    #[arg(long, env = "GUARDLINE_MAX_IN_FLIGHT", default_value_t = 1024)]
    pub max_in_flight: usize,
    /// Largest gRPC message accepted or sent, in bytes.
    #[arg(long, env = "GUARDLINE_MAX_MESSAGE_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_message_bytes: usize,
    /// How long in-flight requests may finish after SIGTERM.
    #[arg(long, env = "GUARDLINE_DRAIN_TIMEOUT", default_value = "20s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// Also serve gRPC health (`grpc.health.v1.Health`), and nothing else,
    /// in plaintext here: for kubelet's gRPC probes, which cannot present a
    /// client certificate. The main port stays mTLS-only. Off when unset.
    #[arg(long, env = "GUARDLINE_HEALTH_LISTEN")]
    pub health_listen: Option<SocketAddr>,
    /// Requests a second one user may make to this service, in bursts of
    /// twice that (from the verified token); past it RESOURCE_EXHAUSTED with
    /// a retry hint. 0: no limit.
    #[arg(long, env = "GUARDLINE_RATE_LIMIT_USER", default_value_t = crate::ratelimit::Rates::DEFAULT.user)]
    pub rate_limit_user: u32,
    /// Requests a second all users of one tenant may make to this service,
    /// in bursts of twice that. 0: no limit.
    #[arg(long, env = "GUARDLINE_RATE_LIMIT_TENANT", default_value_t = crate::ratelimit::Rates::DEFAULT.tenant)]
    pub rate_limit_tenant: u32,
    /// Requests a second one service identity may make without a user token,
    /// in bursts of twice that. 0: no limit.
    #[arg(long, env = "GUARDLINE_RATE_LIMIT_SERVICE", default_value_t = crate::ratelimit::Rates::DEFAULT.service)]
    pub rate_limit_service: u32,
}

impl ServerArgs {
    /// Defaults for `addr` (for in-process servers and tests).
    pub fn on(addr: SocketAddr) -> Self {
        Self {
            listen: addr,
            request_timeout: Duration::from_secs(30),
            max_in_flight: 1024,
            max_message_bytes: 4 * 1024 * 1024,
            drain_timeout: Duration::from_secs(20),
            health_listen: None,
            rate_limit_user: crate::ratelimit::Rates::DEFAULT.user,
            rate_limit_tenant: crate::ratelimit::Rates::DEFAULT.tenant,
            rate_limit_service: crate::ratelimit::Rates::DEFAULT.service,
        }
    }

    /// The rate limits these flags set.
    pub fn rates(&self) -> crate::ratelimit::Rates {
        crate::ratelimit::Rates {
            user: self.rate_limit_user,
            tenant: self.rate_limit_tenant,
            service: self.rate_limit_service,
        }
    }
}

/// Where the other services of the mesh are, and how identities are named.
#[derive(clap::Args, Clone, Debug)]
pub struct MeshArgs {
    /// SPIFFE trust domain of the mesh.
    #[arg(long, env = "GUARDLINE_TRUST_DOMAIN", default_value = "guardline.local")]
    pub trust_domain: String,
    /// Namespace in service identities (`spiffe://<domain>/ns/<namespace>/sa/<service>`).
    #[arg(long, env = "GUARDLINE_NAMESPACE", default_value = "guardline")]
    pub namespace: String,
    /// Identity service endpoint.
    #[arg(long, env = "GUARDLINE_IDENTITY_ENDPOINT", default_value = "https://localhost:7101")]
    pub identity_endpoint: String,
    /// Lead-vault service endpoint.
    #[arg(long, env = "GUARDLINE_LEAD_VAULT_ENDPOINT", default_value = "https://localhost:7102")]
    pub lead_vault_endpoint: String,
    /// Dialer-policy service endpoint.
    #[arg(long, env = "GUARDLINE_DIALER_POLICY_ENDPOINT", default_value = "https://localhost:7103")]
    pub dialer_policy_endpoint: String,
    /// Recordings service endpoint.
    #[arg(long, env = "GUARDLINE_RECORDINGS_ENDPOINT", default_value = "https://localhost:7104")]
    pub recordings_endpoint: String,
    /// Audit service endpoint.
    #[arg(long, env = "GUARDLINE_AUDIT_ENDPOINT", default_value = "https://localhost:7105")]
    pub audit_endpoint: String,
    /// How often identity's token verification keys are fetched again: a
    /// revoked signing key stops verifying within this interval.
    #[arg(long, env = "GUARDLINE_KEY_REFRESH_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub key_refresh_interval: Duration,
}

impl MeshArgs {
    /// The SPIFFE id of the mesh's service `name`.
    pub fn identity_of(&self, name: &str) -> SpiffeId {
        SpiffeId::service(&self.trust_domain, &self.namespace, name)
    }
}

impl Default for MeshArgs {
    fn default() -> Self {
        Self {
            trust_domain: "guardline.local".into(),
            namespace: "guardline".into(),
            identity_endpoint: "https://localhost:7101".into(),
            lead_vault_endpoint: "https://localhost:7102".into(),
            dialer_policy_endpoint: "https://localhost:7103".into(),
            recordings_endpoint: "https://localhost:7104".into(),
            audit_endpoint: "https://localhost:7105".into(),
            key_refresh_interval: crate::token::KEY_REFRESH_INTERVAL,
        }
    }
}

/// The service's database.
#[derive(clap::Args, Clone, Debug)]
pub struct DatabaseArgs {
    /// `sqlite://PATH` (created if missing) or `postgres://USER@HOST:PORT/DB`.
    #[arg(long, env = "GUARDLINE_DATABASE_URL")]
    pub database_url: String,
    /// Connections in the pool.
    #[arg(long, env = "GUARDLINE_DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    pub database_max_connections: u32,
    /// PostgreSQL schema holding this service's tables (created if missing),
    /// so that services can share one database.
    #[arg(long, env = "GUARDLINE_DATABASE_SCHEMA")]
    pub database_schema: Option<String>,
}

impl DatabaseArgs {
    /// `url` with a pool of 5 and no schema.
    pub fn url(url: impl Into<String>) -> Self {
        Self { database_url: url.into(), database_max_connections: 5, database_schema: None }
    }

    /// Checks the URL's scheme, naming the flag on error.
    pub fn validate(&self) -> Result<()> {
        let ok = ["sqlite:", "postgres://", "postgresql://"].iter().any(|p| self.database_url.starts_with(p));
        if !ok {
            return Err(Error::config("--database-url", "must start with sqlite: or postgres://"));
        }
        if let Some(schema) = &self.database_schema {
            let valid = !schema.is_empty()
                && schema.len() <= 63
                && schema.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !valid {
                return Err(Error::config("--database-schema", "use 1-63 characters of a-z, 0-9 and _"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn database_url_scheme_is_checked() {
        let db = |u: &str| DatabaseArgs { database_url: u.into(), database_max_connections: 1, database_schema: None };
        assert!(db("sqlite://x.db").validate().is_ok());
        assert!(db("postgres://u@h/d").validate().is_ok());
        let err = db("mysql://u@h/d").validate().expect_err("refused");
        assert!(err.to_string().contains("--database-url"));
        let bad_schema = DatabaseArgs { database_schema: Some("x; drop".into()), ..db("postgres://u@h/d") };
        assert!(bad_schema.validate().expect_err("refused").to_string().contains("--database-schema"));
    }
}

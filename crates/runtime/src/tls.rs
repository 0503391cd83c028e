//! mTLS material: certificate, key and CA bundle read from files and reloaded
//! when the files change, so short-lived certificates (Vault PKI, cert-manager)
//! rotate without a restart.
//!
//! Each new handshake takes the configuration current at that moment; live
//! connections keep the one they were made with.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

/// Installs aws-lc-rs as the process-wide rustls provider. Idempotent; every
/// entry point calls it because a second provider may be compiled in by a
/// dependency, and rustls then refuses to guess.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Where a component's mTLS material lives on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, SEC1 or PKCS#1).
    pub key: PathBuf,
    /// PEM bundle of CAs trusted for peers, in both directions.
    pub ca: PathBuf,
}

impl TlsFiles {
    /// The dev-CA layout: `<dir>/<name>.pem`, `<dir>/<name>-key.pem`, `<dir>/ca.pem`.
    pub fn in_dir(dir: &Path, name: &str) -> Self {
        Self { cert: dir.join(format!("{name}.pem")), key: dir.join(format!("{name}-key.pem")), ca: dir.join("ca.pem") }
    }

    fn read_all(&self) -> Result<[Vec<u8>; 3]> {
        let read = |p: &Path| std::fs::read(p).map_err(|e| Error::tls(format!("reading {}: {e}", p.display())));
        Ok([read(&self.cert)?, read(&self.key)?, read(&self.ca)?])
    }
}

struct Loaded {
    digest: Vec<u8>,
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

/// Server and client TLS configurations built from one [`TlsFiles`], swapped
/// atomically on reload.
pub struct TlsMaterial {
    files: TlsFiles,
    current: ArcSwap<Loaded>,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial").field("files", &self.files).finish_non_exhaustive()
    }
}

impl TlsMaterial {
    /// Reads and validates the files; fails if any is missing or malformed.
    pub fn load(files: TlsFiles) -> Result<Arc<Self>> {
        install_crypto_provider();
        let loaded = build(&files)?;
        Ok(Arc::new(Self { files, current: ArcSwap::from_pointee(loaded) }))
    }

    /// Configuration for accepting connections: client certificates required
    /// and verified against the CA bundle; ALPN `h2`.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.current.load().server.clone()
    }

    /// Configuration for connecting: the server verified against the CA bundle,
    /// our certificate presented.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.current.load().client.clone()
    }

    /// The files this material is read from.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// Re-reads the files; swaps in new configurations if their content changed.
    /// On a read or parse error the old configuration stays in force (a
    /// half-written rotation must not take the service down).
    pub fn reload(&self) -> Result<bool> {
        let contents = self.files.read_all()?;
        let digest = digest_of(&contents);
        if digest == self.current.load().digest {
            return Ok(false);
        }
        let loaded = build_from(&contents, digest)?;
        self.current.store(Arc::new(loaded));
        Ok(true)
    }

    /// Polls the files every `interval` until `shutdown` fires.
    pub fn spawn_reloader(
        self: &Arc<Self>,
        interval: Duration,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                match this.reload() {
                    Ok(true) => tracing::info!(cert = %this.files.cert.display(), "tls material reloaded"),
                    Ok(false) => {}
                    Err(error) => tracing::warn!(%error, "tls reload failed, keeping the previous material"),
                }
            }
        })
    }
}

fn digest_of(contents: &[Vec<u8>; 3]) -> Vec<u8> {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for c in contents {
        ctx.update(&(c.len() as u64).to_be_bytes());
        ctx.update(c);
    }
    ctx.finish().as_ref().to_vec()
}

fn build(files: &TlsFiles) -> Result<Loaded> {
    let contents = files.read_all()?;
    let digest = digest_of(&contents);
    build_from(&contents, digest)
}

fn build_from(contents: &[Vec<u8>; 3], digest: Vec<u8>) -> Result<Loaded> {
    let [cert_pem, key_pem, ca_pem] = contents;
    let certs = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::tls(format!("certificate: {e}")))?;
    if certs.is_empty() {
        return Err(Error::tls("certificate file holds no certificate"));
    }
    if let Ok((_, leaf)) = x509_parser::parse_x509_certificate(certs[0].as_ref()) {
        let expiry = leaf.validity().not_after.timestamp().max(0) as u64;
        crate::metrics::business().certificate_expiry.record(expiry, &[]);
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| Error::tls(format!("private key: {e}")))?;
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(ca_pem) {
        let ca = ca.map_err(|e| Error::tls(format!("CA bundle: {e}")))?;
        roots.add(ca).map_err(|e| Error::tls(format!("CA bundle: {e}")))?;
    }
    if roots.is_empty() {
        return Err(Error::tls("CA bundle holds no certificate"));
    }
    let roots = Arc::new(roots);
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());

    let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .map_err(|e| Error::tls(format!("client verifier: {e}")))?;
    let mut server = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs.clone(), key.clone_key())
        .map_err(|e| Error::tls(format!("certificate and key: {e}")))?;
    server.alpn_protocols = vec![b"h2".to_vec()];

    let mut client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .map_err(|e| Error::tls(format!("certificate and key: {e}")))?;
    client.alpn_protocols = vec![b"h2".to_vec()];

    Ok(Loaded { digest, server: Arc::new(server), client: Arc::new(client) })
}

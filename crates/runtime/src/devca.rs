//! A development certificate authority: one CA, one certificate per service
//! and one client certificate for the CLI, written to a directory as
//! `ca.pem`, `<name>.pem` and `<name>-key.pem`. Production uses Vault PKI or
//! cert-manager; the files have the same shape.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use crate::error::{Error, Result};
use crate::peer::SpiffeId;
use crate::tls::TlsFiles;

/// The five services of the mesh, in port order.
pub const SERVICES: [&str; 5] = ["identity", "lead-vault", "dialer-policy", "recordings", "audit"];

/// The client certificate name of the `guardline` CLI.
pub const CLI: &str = "cli";

/// How long dev certificates are valid.
const LEAF_VALIDITY: Duration = Duration::days(90);
const CA_VALIDITY: Duration = Duration::days(3650);

/// A CA whose key is at hand, able to issue leaf certificates.
pub struct DevCa {
    dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
    trust_domain: String,
    namespace: String,
    // Whether the CA was created by this call: older leaves cannot chain to it.
    fresh: bool,
}

impl std::fmt::Debug for DevCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevCa").field("dir", &self.dir).finish_non_exhaustive()
    }
}

fn rc(e: rcgen::Error) -> Error {
    Error::tls(format!("certificate generation: {e}"))
}

fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let tmp = path.with_extension("tmp");
    opts.open(&tmp)?.write_all(contents.as_bytes())?;
    std::fs::rename(tmp, path)?;
    Ok(())
}

fn write_public(path: &Path, contents: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents)?;
    std::fs::rename(tmp, path)?;
    Ok(())
}

impl DevCa {
    /// Opens the CA in `dir`, creating it (and the directory) if absent.
    pub fn open_or_create(dir: &Path, trust_domain: &str, namespace: &str) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let (cert_path, key_path) = (dir.join("ca.pem"), dir.join("ca-key.pem"));
        let fresh = !(cert_path.exists() && key_path.exists());
        let issuer = if !fresh {
            let key = KeyPair::from_pem(&std::fs::read_to_string(&key_path)?).map_err(rc)?;
            Issuer::from_ca_cert_pem(&std::fs::read_to_string(&cert_path)?, key).map_err(rc)?
        } else {
            let key = KeyPair::generate().map_err(rc)?;
            let mut params = CertificateParams::new(Vec::<String>::new()).map_err(rc)?;
            let mut dn = DistinguishedName::new();
            dn.push(DnType::OrganizationName, "Guardline");
            // A unique name per CA, so that two dev CAs are never mistaken for each other.
            let id = uuid::Uuid::new_v4().simple().to_string();
            dn.push(DnType::CommonName, format!("Guardline dev CA {trust_domain} {}", &id[..8]));
            params.distinguished_name = dn;
            params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
            params.key_usages =
                vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
            let now = OffsetDateTime::now_utc();
            params.not_before = now - Duration::hours(1);
            params.not_after = now + CA_VALIDITY;
            let cert = params.self_signed(&key).map_err(rc)?;
            write_private(&key_path, &key.serialize_pem())?;
            write_public(&cert_path, &cert.pem())?;
            Issuer::new(params, key)
        };
        Ok(Self {
            dir: dir.to_owned(),
            issuer,
            trust_domain: trust_domain.to_owned(),
            namespace: namespace.to_owned(),
            fresh,
        })
    }

    /// The SPIFFE id this CA gives `name`.
    pub fn identity_of(&self, name: &str) -> SpiffeId {
        SpiffeId::service(&self.trust_domain, &self.namespace, name)
    }

    /// Issues (always anew) a certificate for `name`, valid for client and
    /// server use, with DNS SANs `name` and `localhost`, loopback IP SANs and
    /// the SPIFFE URI SAN. Returns its file paths.
    pub fn issue(&self, name: &str) -> Result<TlsFiles> {
        let key = KeyPair::generate().map_err(rc)?;
        let mut params = CertificateParams::new(vec![name.to_owned(), "localhost".to_owned()]).map_err(rc)?;
        params.subject_alt_names.push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        params.subject_alt_names.push(SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        let uri = self.identity_of(name).to_string();
        params.subject_alt_names.push(SanType::URI(uri.try_into().map_err(rc)?));
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "Guardline");
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::hours(1);
        params.not_after = now + LEAF_VALIDITY;
        let cert = params.signed_by(&key, &self.issuer).map_err(rc)?;
        let files = TlsFiles::in_dir(&self.dir, name);
        write_private(&files.key, &key.serialize_pem())?;
        write_public(&files.cert, &cert.pem())?;
        Ok(files)
    }

    /// Issues a certificate for `name` unless a readable one is already
    /// there with more than a week of validity left.
    pub fn ensure(&self, name: &str) -> Result<TlsFiles> {
        let files = TlsFiles::in_dir(&self.dir, name);
        if !self.fresh && crate::tls::TlsMaterial::load(files.clone()).is_ok() && valid_for_a_week(&files.cert) {
            return Ok(files);
        }
        self.issue(name)
    }
}

fn valid_for_a_week(cert: &Path) -> bool {
    use rustls_pki_types::pem::PemObject;
    let Ok(der) = rustls_pki_types::CertificateDer::from_pem_file(cert) else { return false };
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(der.as_ref()) else { return false };
    let week = time::Duration::days(7).whole_seconds();
    parsed.validity().not_after.timestamp() - OffsetDateTime::now_utc().unix_timestamp() > week
}

/// Creates (or reuses) the dev CA in `dir` with a certificate for every
/// service and for the CLI. Returns the CA directory's files per name.
pub fn ensure_dev_pki(dir: &Path, trust_domain: &str, namespace: &str) -> Result<Vec<(String, TlsFiles)>> {
    let ca = DevCa::open_or_create(dir, trust_domain, namespace)?;
    SERVICES.iter().chain(std::iter::once(&CLI)).map(|n| Ok(((*n).to_owned(), ca.ensure(n)?))).collect()
}

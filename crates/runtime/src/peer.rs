//! Who is on the other end of an mTLS connection: the SPIFFE id in the peer
//! certificate's URI SAN, e.g. `spiffe://guardline.local/ns/guardline/sa/audit`.

use std::fmt;
use std::net::SocketAddr;

use rustls_pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// A SPIFFE id naming a workload.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    trust_domain: String,
    path: String,
}

impl SpiffeId {
    /// Parses `spiffe://<trust-domain>/<path>`; the path must not be empty.
    pub fn parse(uri: &str) -> Option<Self> {
        let rest = uri.strip_prefix("spiffe://")?;
        let (domain, path) = rest.split_once('/')?;
        let valid = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._/".contains(&b));
        if !valid(domain) || !valid(path) || domain.contains('/') {
            return None;
        }
        Some(Self { trust_domain: domain.to_owned(), path: format!("/{path}") })
    }

    /// The identity Guardline gives a service account in a namespace.
    pub fn service(trust_domain: &str, namespace: &str, service: &str) -> Self {
        Self { trust_domain: trust_domain.to_owned(), path: format!("/ns/{namespace}/sa/{service}") }
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The service-account name (the segment after `/sa/`), if the path has one.
    pub fn service_account(&self) -> Option<&str> {
        let (_, sa) = self.path.rsplit_once("/sa/")?;
        (!sa.is_empty() && !sa.contains('/')).then_some(sa)
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "spiffe://{}{}", self.trust_domain, self.path)
    }
}

/// What a server knows of a connected peer; inserted by the transport into
/// every request's extensions.
#[derive(Clone, Debug)]
pub struct PeerInfo {
    /// The peer's socket address.
    pub remote_addr: Option<SocketAddr>,
    /// The SPIFFE id of the peer's verified client certificate, if it has one.
    pub identity: Option<SpiffeId>,
}

impl PeerInfo {
    /// The peer of a request, as the transport recorded it.
    pub fn of<T>(request: &tonic::Request<T>) -> Option<&PeerInfo> {
        request.extensions().get::<PeerInfo>()
    }

    /// Whether `request` comes from the mesh service `service_account`
    /// acting for itself: its verified certificate names that service
    /// account and it carries no user token (a token means a user acts).
    pub fn is_service_acting_alone<T>(request: &tonic::Request<T>, service_account: &str) -> bool {
        let named = Self::of(request)
            .and_then(|p| p.identity.as_ref())
            .is_some_and(|i| i.service_account() == Some(service_account));
        named && !request.metadata().contains_key("authorization")
    }
}

/// Reads the first SPIFFE URI SAN of a DER certificate.
pub fn spiffe_id_of(cert: &CertificateDer<'_>) -> Option<SpiffeId> {
    let (_, cert) = X509Certificate::from_der(cert.as_ref()).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|name| match name {
        GeneralName::URI(uri) => SpiffeId::parse(uri),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_service_ids() {
        let id = SpiffeId::parse("spiffe://guardline.local/ns/prod/sa/lead-vault").expect("valid id");
        assert_eq!(id.trust_domain(), "guardline.local");
        assert_eq!(id.service_account(), Some("lead-vault"));
        assert_eq!(id, SpiffeId::service("guardline.local", "prod", "lead-vault"));
        assert_eq!(id.to_string(), "spiffe://guardline.local/ns/prod/sa/lead-vault");
    }

    #[test]
    fn refuses_malformed_ids() {
        for bad in [
            "",
            "spiffe://",
            "spiffe://domain",
            "spiffe://domain/",
            "https://x/ns/a/sa/b",
            "spiffe:///path",
            "spiffe://d/a b",
        ] {
            assert!(SpiffeId::parse(bad).is_none(), "{bad:?} must not parse");
        }
        let no_sa = SpiffeId::parse("spiffe://d/ns/x").expect("valid id");
        assert_eq!(no_sa.service_account(), None);
    }
}

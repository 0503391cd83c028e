//! Where alert webhooks may be sent: public addresses over https, nothing
//! else unless the operator allows it. A tenant admin cannot aim Guardline's
//! deliveries at the mesh's own services, a cloud metadata endpoint or the
//! operator's private network (server-side request forgery).
//!
//! The URL is checked at registration and again at every delivery, and the
//! addresses a host name resolves to are checked when the connection is
//! made (so a name that later resolves to a private address is refused too).
//! Redirects are never followed.

use std::net::IpAddr;

use ipnet::IpNet;

/// The operator's egress rules for webhooks.
#[derive(Clone, Debug, Default)]
pub struct Egress {
    /// Networks allowed although private (an internal receiver).
    pub allow: Vec<IpNet>,
    /// Whether plain `http` is allowed (never by default).
    pub allow_http: bool,
}

/// Why a URL or address is refused; names no value.
pub type Refusal = &'static str;

impl Egress {
    /// Checks a webhook URL's scheme and, when the host is an address, the
    /// address.
    pub fn check_url(&self, url: &str) -> Result<(), Refusal> {
        let u = url::Url::parse(url).map_err(|_| "must be an https URL")?;
        match u.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            _ => return Err("must be an https URL"),
        }
        match u.host() {
            None => Err("must name a host"),
            Some(url::Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip)),
            Some(url::Host::Domain(d)) if d.eq_ignore_ascii_case("localhost") || d.ends_with(".localhost") => {
                self.check_ip(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
            }
            Some(url::Host::Domain(_)) => Ok(()),
        }
    }

    /// Whether an address may be connected to: a public one, or one in an
    /// allowed network.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Refusal> {
        if self.allow.iter().any(|n| n.contains(&ip)) {
            return Ok(());
        }
        if is_internal(ip) {
            Err("must be a public address (loopback, private, link-local and metadata addresses are refused)")
        } else {
            Ok(())
        }
    }
}

/// Loopback, private, shared, link-local (cloud metadata), unspecified,
/// multicast, broadcast, documentation and IPv4-mapped such addresses.
fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || (o[0] == 198 && (o[1] & 0xfe) == 18)
                || o[0] >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_targets_are_refused_and_public_ones_taken() {
        let e = Egress::default();
        for bad in [
            "http://hooks.example.com/x",
            "ftp://hooks.example.com/x",
            "https://127.0.0.1/x",
            "https://localhost:8443/x",
            "https://10.1.2.3/x",
            "https://172.20.0.1/x",
            "https://192.168.1.1/x",
            "https://169.254.169.254/latest/meta-data/",
            "https://100.100.100.200/",
            "https://[::1]/x",
            "https://[fd00::1]/x",
            "https://[fe80::1]/x",
            "https://[::ffff:10.0.0.1]/x",
            "https://0.0.0.0/x",
            "not a url",
        ] {
            assert!(e.check_url(bad).is_err(), "{bad}");
        }
        for good in ["https://hooks.example.com/guardline", "https://93.184.216.34/x", "https://[2606:4700::1111]/x"] {
            assert_eq!(e.check_url(good), Ok(()), "{good}");
        }
    }

    #[test]
    fn the_operator_allows_internal_receivers_and_http_explicitly() {
        let e = Egress { allow: vec!["10.20.0.0/16".parse().expect("net")], allow_http: true };
        assert_eq!(e.check_url("http://10.20.3.4:8080/hook"), Ok(()));
        assert!(e.check_url("http://10.21.0.1/hook").is_err(), "outside the allowed network");
        assert!(e.check_ip("169.254.169.254".parse().expect("ip")).is_err());
    }
}

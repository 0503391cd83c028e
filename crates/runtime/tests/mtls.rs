//! mTLS over real gRPC on 127.0.0.1:0: who is accepted, who is refused, and
//! certificate rotation without a restart.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use guardline_runtime::args::ServerArgs;
use guardline_runtime::authz::AllowList;
use guardline_runtime::devca::DevCa;
use guardline_runtime::server::{GrpcServer, bind};
use guardline_runtime::tls::{TlsFiles, TlsMaterial, install_crypto_provider};
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic::transport::{Endpoint, Uri};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_server};

const TD: &str = "guardline.local";
const NS: &str = "test";

struct Running {
    addr: std::net::SocketAddr,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<guardline_runtime::Result<()>>,
}

/// A server with only health and reflection, as every service has.
async fn start(tls: Arc<TlsMaterial>, allow: AllowList) -> Running {
    let listener = bind("127.0.0.1:0".parse().expect("addr")).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shutdown = CancellationToken::new();
    let args = ServerArgs::on(addr);
    let s = shutdown.clone();
    let task =
        tokio::spawn(async move { GrpcServer::new("test").allow_list(allow).serve(listener, tls, &args, s).await });
    Running { addr, shutdown, task }
}

async fn check(channel: guardline_runtime::GrpcChannel) -> Result<ServingStatus, tonic::Status> {
    let mut client = HealthClient::new(channel);
    let resp = client.check(HealthCheckRequest { service: String::new() }).await?;
    Ok(resp.into_inner().status())
}

fn channel(addr: std::net::SocketAddr, tls: &Arc<TlsMaterial>) -> guardline_runtime::GrpcChannel {
    guardline_runtime::connect(&format!("https://localhost:{}", addr.port()), tls.clone()).expect("channel")
}

/// The refusal happened in the TLS layer, for the expected reason, and the
/// same server still serves a legitimate client.
async fn assert_refused(err: tonic::Status, reason: &str, addr: std::net::SocketAddr, ca: &DevCa) {
    let chain = format!("{err:?}");
    assert!(chain.contains(reason), "expected a refusal for {reason}, got {chain}");
    let good = TlsMaterial::load(ca.issue("cli").expect("cert")).expect("tls");
    assert_eq!(check(channel(addr, &good)).await.expect("legitimate client served"), ServingStatus::Serving);
}

fn ca(dir: &Path) -> DevCa {
    install_crypto_provider();
    DevCa::open_or_create(dir, TD, NS).expect("ca")
}

#[tokio::test]
async fn a_client_with_a_certificate_from_our_ca_is_served() {
    let dir = tempfile::tempdir().expect("tmp");
    let ca = ca(dir.path());
    let server = TlsMaterial::load(ca.issue("audit").expect("cert")).expect("tls");
    let client = TlsMaterial::load(ca.issue("cli").expect("cert")).expect("tls");
    let s = start(server, AllowList::new()).await;
    assert_eq!(check(channel(s.addr, &client)).await.expect("served"), ServingStatus::Serving);
    s.shutdown.cancel();
    s.task.await.expect("join").expect("clean stop");
}

/// A connector with an arbitrary rustls client configuration.
#[derive(Clone)]
struct RawTls(Arc<rustls::ClientConfig>);

impl tower::Service<Uri> for RawTls {
    type Response = TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;
    type Error = std::io::Error;
    type Future = std::pin::Pin<Box<dyn Future<Output = std::io::Result<Self::Response>> + Send>>;
    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn call(&mut self, uri: Uri) -> Self::Future {
        let cfg = self.0.clone();
        Box::pin(async move {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", uri.port_u16().expect("port"))).await?;
            let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
            Ok(TokioIo::new(tokio_rustls::TlsConnector::from(cfg).connect(name, tcp).await?))
        })
    }
}

async fn check_raw(addr: std::net::SocketAddr, cfg: rustls::ClientConfig) -> Result<ServingStatus, tonic::Status> {
    let ch = Endpoint::from_shared(format!("https://localhost:{}", addr.port()))
        .expect("uri")
        .connect_timeout(Duration::from_secs(5))
        .connect_with_connector_lazy(RawTls(Arc::new(cfg)));
    let resp = HealthClient::new(ch).check(HealthCheckRequest { service: String::new() }).await?;
    Ok(resp.into_inner().status())
}

fn roots(ca_pem: &Path) -> rustls::RootCertStore {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_file_iter(ca_pem).expect("pem") {
        roots.add(c.expect("cert")).expect("add");
    }
    roots
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let ca = ca(dir.path());
    let s = start(TlsMaterial::load(ca.issue("audit").expect("cert")).expect("tls"), AllowList::new()).await;
    let mut cfg =
        rustls::ClientConfig::builder().with_root_certificates(roots(&dir.path().join("ca.pem"))).with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let err = check_raw(s.addr, cfg).await.expect_err("refused");
    assert_refused(err, "CertificateRequired", s.addr, &ca).await;
}

#[tokio::test]
async fn a_client_with_a_certificate_from_another_ca_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let other_dir = tempfile::tempdir().expect("tmp");
    let ours = ca(dir.path());
    let theirs = ca(other_dir.path());
    let s = start(TlsMaterial::load(ours.issue("audit").expect("cert")).expect("tls"), AllowList::new()).await;
    // The intruder trusts our CA for the server, but its own certificate is foreign.
    let foreign = theirs.issue("cli").expect("cert");
    let intruder = TlsMaterial::load(TlsFiles { ca: dir.path().join("ca.pem"), ..foreign }).expect("tls");
    let err = check(channel(s.addr, &intruder)).await.expect_err("refused");
    assert_refused(err, "UnknownCA", s.addr, &ours).await;
}

#[tokio::test]
async fn a_plaintext_client_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let ca = ca(dir.path());
    let s = start(TlsMaterial::load(ca.issue("audit").expect("cert")).expect("tls"), AllowList::new()).await;
    let ch = Endpoint::from_shared(format!("http://127.0.0.1:{}", s.addr.port()))
        .expect("uri")
        .connect_timeout(Duration::from_secs(5))
        .connect_lazy();
    let err = HealthClient::new(ch).check(HealthCheckRequest { service: String::new() }).await.expect_err("refused");
    assert_refused(err, "transport error", s.addr, &ca).await;
}

#[tokio::test]
async fn a_rotated_certificate_is_used_without_a_restart() {
    let dir = tempfile::tempdir().expect("tmp");
    let new_dir = tempfile::tempdir().expect("tmp");
    let old_ca = ca(dir.path());
    let new_ca = ca(new_dir.path());
    let files = old_ca.issue("audit").expect("cert");
    let server_tls = TlsMaterial::load(files.clone()).expect("tls");
    let reloader_stop = CancellationToken::new();
    let reloader = server_tls.spawn_reloader(Duration::from_millis(50), reloader_stop.clone());
    let s = start(server_tls, AllowList::new()).await;

    // A client of the new CA only: refused until the server rotates.
    let client = TlsMaterial::load(new_ca.issue("cli").expect("cert")).expect("tls");
    assert!(check(channel(s.addr, &client)).await.is_err(), "the old certificate does not chain to the new CA");

    // Rotate in place, as cert-manager or Vault agent would: new cert, key and CA bundle.
    let rotated = new_ca.issue("audit").expect("cert");
    for (from, to) in [(&rotated.cert, &files.cert), (&rotated.key, &files.key), (&rotated.ca, &files.ca)] {
        std::fs::copy(from, to).expect("copy");
    }
    let mut served = None;
    for _ in 0..100 {
        if let Ok(status) = check(channel(s.addr, &client)).await {
            served = Some(status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(served, Some(ServingStatus::Serving), "new handshakes use the rotated certificate");
    reloader_stop.cancel();
    reloader.await.expect("reloader stops");
}

#[tokio::test]
async fn a_broken_rotation_keeps_the_old_material() {
    let dir = tempfile::tempdir().expect("tmp");
    let ca = ca(dir.path());
    let files = ca.issue("audit").expect("cert");
    let tls = TlsMaterial::load(files.clone()).expect("tls");
    let before = tls.server_config();
    std::fs::write(&files.cert, "-----BEGIN CERTIFICATE-----\ngarbage\n").expect("write");
    assert!(tls.reload().is_err());
    assert!(Arc::ptr_eq(&before, &tls.server_config()), "old config still in force");
}

#[tokio::test]
async fn the_allow_list_refuses_a_wrong_caller_with_permission_denied() {
    let dir = tempfile::tempdir().expect("tmp");
    let ca = ca(dir.path());
    let method = format!("/{}/Check", <health_server::HealthServer<()> as tonic::server::NamedService>::NAME);
    let allow = AllowList::new().allow(&method, [ca.identity_of("lead-vault")]);
    let s = start(TlsMaterial::load(ca.issue("audit").expect("cert")).expect("tls"), allow).await;

    let cli = TlsMaterial::load(ca.issue("cli").expect("cert")).expect("tls");
    let err = check(channel(s.addr, &cli)).await.expect_err("refused");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("/sa/cli"), "names the caller: {}", err.message());

    let vault = TlsMaterial::load(ca.issue("lead-vault").expect("cert")).expect("tls");
    assert_eq!(check(channel(s.addr, &vault)).await.expect("allowed"), ServingStatus::Serving);
}

#[tokio::test]
async fn shutdown_drains_and_stops_accepting() {
    let dir = tempfile::tempdir().expect("tmp");
    let ca = ca(dir.path());
    let s = start(TlsMaterial::load(ca.issue("audit").expect("cert")).expect("tls"), AllowList::new()).await;
    let cli = TlsMaterial::load(ca.issue("cli").expect("cert")).expect("tls");
    assert!(check(channel(s.addr, &cli)).await.is_ok());
    s.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), s.task).await.expect("stops in time").expect("join").expect("clean");
    assert!(check(channel(s.addr, &cli)).await.is_err(), "no longer accepting");
}

#[test]
fn the_dev_ca_reuses_valid_certificates_and_reissues_missing_ones() {
    let dir = tempfile::tempdir().expect("tmp");
    let first = guardline_runtime::devca::ensure_dev_pki(dir.path(), TD, NS).expect("pki");
    let pem = std::fs::read(&first[0].1.cert).expect("cert");
    let again = guardline_runtime::devca::ensure_dev_pki(dir.path(), TD, NS).expect("pki");
    assert_eq!(std::fs::read(&again[0].1.cert).expect("cert"), pem, "a valid certificate is kept");
    std::fs::write(&first[0].1.cert, "not a certificate").expect("break");
    let third = guardline_runtime::devca::ensure_dev_pki(dir.path(), TD, NS).expect("pki");
    let reissued = std::fs::read(&third[0].1.cert).expect("cert");
    assert!(reissued.starts_with(b"-----BEGIN CERTIFICATE-----") && reissued != pem, "a broken one is reissued");
}

/// Kubelet's gRPC probe: plaintext health on its own port, sharing the
/// main server's state; no other RPC is reachable there, and the main
/// port still refuses a client without a certificate.
#[tokio::test]
async fn the_probe_port_serves_health_in_plaintext_and_nothing_else() {
    let dir = tempfile::tempdir().expect("tmp");
    let ca = ca(dir.path());
    let tls = TlsMaterial::load(ca.issue("audit").expect("cert")).expect("tls");
    let listener = bind("127.0.0.1:0".parse().expect("addr")).await.expect("bind");
    let probe = bind("127.0.0.1:0".parse().expect("addr")).await.expect("bind");
    let (addr, probe_addr) = (listener.local_addr().expect("addr"), probe.local_addr().expect("addr"));
    let shutdown = CancellationToken::new();
    let args = ServerArgs::on(addr);
    let s = shutdown.clone();
    let server = GrpcServer::new("test").health_on(probe);
    let task = tokio::spawn(async move { server.serve(listener, tls, &args, s).await });

    let plain = Endpoint::from_shared(format!("http://{probe_addr}")).expect("uri").connect().await.expect("plaintext");
    let mut health = HealthClient::new(plain.clone());
    let status = health.check(HealthCheckRequest { service: String::new() }).await.expect("probe").into_inner();
    assert_eq!(status.status(), ServingStatus::Serving);
    // A data RPC and reflection: not there.
    let mut vault = guardline_proto::vault::v1::lead_vault_service_client::LeadVaultServiceClient::new(plain.clone());
    let req = guardline_proto::vault::v1::GetLeadRequest::default();
    assert_eq!(vault.get_lead(req).await.expect_err("no data RPC").code(), Code::Unimplemented);
    let mut reflection = tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient::new(plain.clone());
    let ask = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(tonic_reflection::pb::v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let listed = reflection.server_reflection_info(tokio_stream::iter([ask])).await;
    assert_eq!(listed.expect_err("no reflection").code(), Code::Unimplemented);
    // The main port: TLS only.
    let refused = Endpoint::from_shared(format!("http://{addr}")).expect("uri").connect().await;
    let refused = match refused {
        Ok(c) => HealthClient::new(c).check(HealthCheckRequest { service: String::new() }).await.map(|_| ()),
        Err(e) => Err(tonic::Status::unavailable(e.to_string())),
    };
    assert!(refused.is_err(), "plaintext refused on the main port");
    shutdown.cancel();
    task.await.expect("join").expect("clean stop");
}

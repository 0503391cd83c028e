//! mTLS on the wire: a stream of verified server-side connections that carry
//! their peer's identity, and a client connector for tonic channels.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint, Uri, server::Connected};

use crate::error::{Error, Result};
use crate::peer::{PeerInfo, spiffe_id_of};
use crate::tls::TlsMaterial;

/// How long a client may take to complete its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A server-side connection whose client certificate has been verified.
pub struct TlsConn {
    inner: tokio_rustls::server::TlsStream<TcpStream>,
    peer: PeerInfo,
}

impl Connected for TlsConn {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.peer.clone()
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Accepts TCP connections and completes TLS handshakes off the accept loop,
/// so one slow or hostile client cannot stall the others. Connections that
/// fail the handshake (no certificate, unknown CA, plaintext) are dropped
/// and logged at debug level. The stream ends when `shutdown` fires.
pub fn tls_incoming(
    listener: TcpListener,
    tls: Arc<TlsMaterial>,
    shutdown: CancellationToken,
) -> ReceiverStream<io::Result<TlsConn>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tx.closed() => return,
                accepted = listener.accept() => accepted,
            };
            let (tcp, remote) = match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = TlsAcceptor::from(tls.server_config());
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let identity =
                            stream.get_ref().1.peer_certificates().and_then(|c| c.first()).and_then(spiffe_id_of);
                        let peer = PeerInfo { remote_addr: Some(remote), identity };
                        let _ = tx.send(Ok(TlsConn { inner: stream, peer })).await;
                    }
                    Ok(Err(error)) => tracing::debug!(%remote, %error, "tls handshake refused"),
                    Err(_) => tracing::debug!(%remote, "tls handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// A tonic connector that speaks mTLS with the current client configuration.
#[derive(Clone, Debug)]
pub struct MtlsConnector {
    tls: Arc<TlsMaterial>,
    server_name: Option<ServerName<'static>>,
}

impl MtlsConnector {
    /// Verifies the server against the URI's host name.
    pub fn new(tls: Arc<TlsMaterial>) -> Self {
        Self { tls, server_name: None }
    }

    /// Verifies the server against `name` instead of the URI's host.
    pub fn with_server_name(mut self, name: &str) -> Result<Self> {
        let name = ServerName::try_from(name.to_owned())
            .map_err(|_| Error::config("tls server name", "not a valid DNS name or IP address"))?;
        self.server_name = Some(name);
        Ok(self)
    }
}

impl tower::Service<Uri> for MtlsConnector {
    type Response = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let config = self.tls.client_config();
        let fixed_name = self.server_name.clone();
        Box::pin(async move {
            let host = uri.host().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "uri has no host"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
            let port = uri.port_u16().unwrap_or(443);
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let name = match fixed_name {
                Some(n) => n,
                None => ServerName::try_from(host).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
            };
            let stream = TlsConnector::from(config).connect(name, tcp).await?;
            Ok(TokioIo::new(stream))
        })
    }
}

/// A lazily connecting mTLS channel to `uri` (e.g. `https://localhost:7101`).
/// Lazy, so that services may start in any order.
pub fn channel(uri: &str, tls: Arc<TlsMaterial>) -> Result<Channel> {
    let endpoint = Endpoint::from_shared(uri.to_owned())
        .map_err(|_| Error::config("endpoint", "not a valid URI"))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true);
    Ok(endpoint.connect_with_connector_lazy(MtlsConnector::new(tls)))
}

/// The address a listener actually bound (for `127.0.0.1:0` in tests).
pub fn local_addr(listener: &TcpListener) -> Result<SocketAddr> {
    listener.local_addr().map_err(|e| Error::Io(e.to_string()))
}

//! Node links: TCP with keepalive and `TCP_USER_TIMEOUT` (so a dead or partitioned peer's
//! socket errors out instead of retransmitting for minutes), mutual TLS, then handed to
//! ractor_cluster as an external stream. The listener is ours, not ractor_cluster's, so a
//! peer that fails the TLS handshake (wrong CA, no certificate) never reaches ractor.

use std::net::SocketAddr;
use std::time::Duration;

use ractor::ActorRef;
use ractor_cluster::{BoxRead, BoxWrite, ClusterBidiStream, NodeServerMessage};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::tls::NodeTls;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// A TLS stream ractor_cluster can use.
struct TlsLink<S> {
    stream: S,
    peer: String,
}

impl<S> ClusterBidiStream for TlsLink<S>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    fn split(self: Box<Self>) -> (BoxRead, BoxWrite) {
        let (r, w) = tokio::io::split(self.stream);
        (Box::new(r), Box::new(w))
    }

    fn peer_label(&self) -> Option<String> {
        Some(self.peer.clone())
    }
}

/// Keepalive after `deadline / 4` idle, probes every `deadline / 8`, and
/// `TCP_USER_TIMEOUT = deadline`: unacknowledged data for that long closes the socket.
pub(crate) fn tune_socket(stream: &TcpStream, deadline: Duration) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let sock = socket2::SockRef::from(stream);
    let idle = (deadline / 4).max(Duration::from_secs(1));
    let every = (deadline / 8).max(Duration::from_secs(1));
    sock.set_tcp_keepalive(
        &socket2::TcpKeepalive::new()
            .with_time(idle)
            .with_interval(every)
            .with_retries(4),
    )?;
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "fuchsia"))]
    sock.set_tcp_user_timeout(Some(deadline))?;
    Ok(())
}

/// Accepts node links until the task is aborted.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: NodeTls,
    server: ActorRef<NodeServerMessage>,
    deadline: Duration,
) {
    let acceptor = TlsAcceptor::from(tls.server.clone());
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "cluster listener accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let server = server.clone();
        tokio::spawn(async move {
            if let Err(e) = tune_socket(&stream, deadline) {
                tracing::debug!(%peer, error = %e, "cannot set socket options");
            }
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let link = TlsLink {
                        stream: tls,
                        peer: peer.to_string(),
                    };
                    let _ = server.cast(NodeServerMessage::ConnectionOpenedExternal {
                        stream: Box::new(link),
                        is_server: true,
                    });
                }
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    // The dialer gave up (e.g. it timed out while this node was frozen).
                    tracing::debug!(%peer, "node link closed during the TLS handshake");
                }
                Ok(Err(e)) => {
                    metrics::counter!("drover_cluster_links_refused_total", "reason" => "tls")
                        .increment(1);
                    tracing::warn!(%peer, error = %e, "refused node link: TLS handshake failed");
                }
                Err(_) => {
                    metrics::counter!("drover_cluster_links_refused_total", "reason" => "timeout")
                        .increment(1);
                    tracing::warn!(%peer, "refused node link: TLS handshake timed out");
                }
            }
        });
    }
}

/// Dials `addr`, secures the link and hands it to the node server.
pub(crate) async fn dial(
    addr: &str,
    tls: &NodeTls,
    server: &ActorRef<NodeServerMessage>,
    deadline: Duration,
) -> Result<SocketAddr, String> {
    let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| format!("connect: {e}"))?;
    let peer = stream.peer_addr().map_err(|e| e.to_string())?;
    tune_socket(&stream, deadline).map_err(|e| format!("socket options: {e}"))?;
    let connector = TlsConnector::from(tls.client.clone());
    let name = NodeTls::peer_server_name().map_err(|e| e.to_string())?;
    let tls_stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, connector.connect(name, stream))
        .await
        .map_err(|_| "TLS handshake timed out".to_owned())?
        .map_err(|e| format!("TLS handshake: {e}"))?;
    server
        .cast(NodeServerMessage::ConnectionOpenedExternal {
            stream: Box::new(TlsLink {
                stream: tls_stream,
                peer: peer.to_string(),
            }),
            is_server: false,
        })
        .map_err(|e| format!("node server: {e}"))?;
    Ok(peer)
}

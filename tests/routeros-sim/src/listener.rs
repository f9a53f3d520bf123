//! Per-device accept loops: bind, accept, apply accept-time faults, TLS handshake, and close
//! or re-open the listener as the device goes down and up (reboot, flap).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::device::Device;
use crate::fault::StallMode;
use crate::session;
use crate::stats::Counters;

/// Binds a listening socket with `SO_REUSEADDR` (so a rebooted device can re-bind at once).
pub(crate) fn bind(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Accepts connections for one device on one port until the fleet stops.
pub(crate) async fn run(dev: Arc<Device>, addr: SocketAddr, tls: bool, first: TcpListener) {
    let mut up = dev.up_receiver();
    up.borrow_and_update();
    let stop = dev.fleet.stop.clone();
    let mut listener = Some(first);
    loop {
        let Some(l) = listener.as_ref() else {
            // Down: wait until the device is up again, then re-bind.
            if !*up.borrow_and_update() {
                tokio::select! {
                    _ = stop.stopped() => return,
                    r = up.changed() => if r.is_err() { return },
                }
                continue;
            }
            match bind(addr, dev.config().backlog) {
                Ok(l) => listener = Some(l),
                Err(e) => {
                    tracing::warn!(%addr, error = %e, "re-bind failed; retrying");
                    tokio::select! {
                        _ = stop.stopped() => return,
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                }
            }
            continue;
        };
        tokio::select! {
            _ = stop.stopped() => return,
            r = up.changed() => {
                if r.is_err() {
                    return;
                }
                if !*up.borrow_and_update() {
                    listener = None; // closing the socket refuses new connections
                }
            }
            accepted = l.accept() => match accepted {
                Ok((tcp, _)) => {
                    tokio::spawn(handle(dev.clone(), tcp, tls));
                }
                Err(e) => {
                    // Out of file descriptors or a transient error: back off briefly.
                    tracing::debug!(%addr, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
        }
    }
}

/// Counts a live connection for as long as it is held.
struct ActiveGuard(Arc<Device>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0
            .counters
            .active_connections
            .fetch_sub(1, Ordering::Relaxed);
    }
}

async fn handle(dev: Arc<Device>, tcp: TcpStream, tls: bool) {
    Counters::bump(&dev.counters.connections_accepted);
    Counters::bump(&dev.counters.active_connections);
    let _guard = ActiveGuard(dev.clone());
    let stop = dev.connections_signal().child();
    let faults = dev.faults();
    if faults.drop_after_replies == Some(0) {
        return;
    }
    let _ = tcp.set_nodelay(true);
    if faults.stall == Some(StallMode::Handshake) {
        session::discard(tcp, &stop).await;
        return;
    }
    let serial = dev.next_connection_serial();
    if !tls {
        session::serve(dev, tcp, stop, serial).await;
        return;
    }
    let config = match dev.server_config() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(device = %dev.ip, error = %e, "no TLS configuration");
            return;
        }
    };
    let handshake = tokio::time::timeout(
        Duration::from_secs(30),
        TlsAcceptor::from(config).accept(tcp),
    );
    let stream = tokio::select! {
        _ = stop.stopped() => return,
        r = handshake => match r {
            Ok(Ok(s)) => s,
            _ => return,
        },
    };
    session::serve(dev, stream, stop, serial).await;
}

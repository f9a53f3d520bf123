//! TLS over a TCP socket with rustls' unbuffered API: this module owns the ciphertext and
//! plaintext buffers, so an idle session (thousands per node, each waiting 11–60 s for its
//! next reply) holds none of them.
//!
//! rustls' buffered `ClientConnection` keeps a received-records buffer of at least 4 KiB for
//! the life of the connection. Here the received ciphertext, the decrypted plaintext the
//! reader has not taken yet and the ciphertext waiting to be written are plain `Vec`s that
//! are freed as soon as they are empty and the stream is about to wait; a record that is
//! only partly received is kept, of course.
//!
//! [`TlsStream`] implements `AsyncRead` and `AsyncWrite` like `tokio_rustls`'s stream, so the
//! session code above it does not change. All rustls state changes go through
//! [`TlsStream::advance`], which records what the connection produced (plaintext, bytes to
//! send, the peer's `close_notify`, a failure) in the stream's own fields.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker, ready};

use rustls::ClientConfig;
use rustls::client::UnbufferedClientConnection;
use rustls::pki_types::ServerName;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Room reserved for one read of ciphertext when no partial record says how much is due.
const READ_CHUNK: usize = 8 * 1024;
/// A TLS record header: type, version, length.
const RECORD_HEADER: usize = 5;
/// Worst-case bytes a record adds to its payload (header, padding, tag), with room to spare.
const RECORD_OVERHEAD: usize = 64;
/// Largest plaintext of one record.
const MAX_FRAGMENT: usize = 16 * 1024;

/// What [`TlsStream::advance`] should write while the connection is able to.
#[derive(Clone, Copy)]
enum Send<'a> {
    Nothing,
    Data(&'a [u8]),
    CloseNotify,
}

/// Where [`TlsStream::advance`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// The handshake needs more bytes from the peer.
    Handshaking,
    /// The connection is established; it needs more bytes from the peer to go on reading.
    Established,
    /// Both sides have sent `close_notify`.
    Closed,
}

/// A client TLS session over a TCP socket whose buffers exist only while bytes are in flight.
pub(crate) struct TlsStream {
    tcp: TcpStream,
    conn: UnbufferedClientConnection,
    /// Ciphertext received; `incoming[incoming_start..]` is not processed yet (at most a
    /// partial record, or a handshake message rustls is still joining).
    incoming: Vec<u8>,
    incoming_start: usize,
    /// Decrypted bytes the reader has not taken yet: `plaintext[plaintext_start..]`.
    plaintext: Vec<u8>,
    plaintext_start: usize,
    /// Ciphertext to write, in order: `outgoing[outgoing_sent..]` is not written yet.
    outgoing: Vec<u8>,
    outgoing_sent: usize,
    /// The peer sent `close_notify`: reads end once `plaintext` is taken.
    peer_closed: bool,
    /// Our `close_notify` is queued.
    close_sent: bool,
    /// The first failure; the stream is unusable after it and every call repeats it.
    failed: Option<(io::ErrorKind, String)>,
    /// The task waiting in `poll_read`, woken when a write-side call changes what it can read.
    reader: Option<Waker>,
}

impl std::fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsStream")
            .field("peer", &self.tcp.peer_addr().ok())
            .field("incoming", &(self.incoming.len() - self.incoming_start))
            .field("plaintext", &(self.plaintext.len() - self.plaintext_start))
            .field("outgoing", &(self.outgoing.len() - self.outgoing_sent))
            .field("peer_closed", &self.peer_closed)
            .field("failed", &self.failed)
            .finish()
    }
}

impl TlsStream {
    /// Runs the client handshake on `tcp`. Failures are `io::Error`s whose text names the
    /// cause (a TLS alert from the peer, a certificate rejected, bytes that are not TLS, the
    /// peer closing mid-handshake). Not bounded in time: the caller applies its timeout.
    pub(crate) async fn connect(
        tcp: TcpStream,
        config: Arc<ClientConfig>,
        server_name: ServerName<'static>,
    ) -> io::Result<Self> {
        let conn = UnbufferedClientConnection::new(config, server_name)
            .map_err(|e| io::Error::other(e.to_string()))?;
        let mut stream = Self {
            tcp,
            conn,
            incoming: Vec::new(),
            incoming_start: 0,
            plaintext: Vec::new(),
            plaintext_start: 0,
            outgoing: Vec::new(),
            outgoing_sent: 0,
            peer_closed: false,
            close_sent: false,
            failed: None,
            reader: None,
        };
        loop {
            let (stop, _) = stream.advance(Send::Nothing)?;
            poll_fn(|cx| stream.poll_send(cx)).await?;
            match stop {
                Stop::Established => break,
                Stop::Closed => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the device closed the TLS session during the handshake",
                    ));
                }
                Stop::Handshaking => {}
            }
            if stream.peer_closed {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the device closed the TLS session during the handshake",
                ));
            }
            let n = poll_fn(|cx| stream.poll_receive(cx)).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the device closed the connection during the TLS handshake",
                ));
            }
        }
        stream.release_idle_buffers();
        Ok(stream)
    }

    /// The certificate chain the peer presented, leaf first.
    pub(crate) fn peer_certificates(
        &self,
    ) -> Option<&[rustls::pki_types::CertificateDer<'static>]> {
        self.conn.peer_certificates()
    }

    fn fail(&mut self, kind: io::ErrorKind, reason: String) -> io::Error {
        let error = io::Error::new(kind, reason.clone());
        self.failed.get_or_insert((kind, reason));
        if let Some(reader) = self.reader.take() {
            reader.wake();
        }
        error
    }

    fn check_failed(&self) -> io::Result<()> {
        match &self.failed {
            Some((kind, reason)) => Err(io::Error::new(*kind, reason.clone())),
            None => Ok(()),
        }
    }

    /// Lets rustls process what has been received and produce what must be sent, until it
    /// needs more bytes from the peer. Decrypted data is appended to `plaintext` and
    /// ciphertext to `outgoing`; `send` is encrypted once the connection can carry it.
    /// Returns where it stopped and whether `send` was queued.
    fn advance(&mut self, send: Send<'_>) -> io::Result<(Stop, bool)> {
        self.check_failed()?;
        let mut queued = matches!(send, Send::Nothing);
        loop {
            let UnbufferedStatus { mut discard, state } = self
                .conn
                .process_tls_records(&mut self.incoming[self.incoming_start..]);
            let state = match state {
                Ok(state) => state,
                Err(e) => {
                    self.incoming_start += discard;
                    return Err(self.fail_tls(e));
                }
            };
            // What to do once `state` (which borrows the connection and `incoming`) is gone.
            let stop = match state {
                ConnectionState::ReadTraffic(mut traffic) => {
                    while let Some(record) = traffic.next_record() {
                        match record {
                            Ok(record) => {
                                discard += record.discard;
                                self.plaintext.extend_from_slice(record.payload);
                            }
                            Err(e) => {
                                drop(traffic);
                                self.incoming_start += discard;
                                return Err(self.fail_tls(e));
                            }
                        }
                    }
                    None
                }
                ConnectionState::EncodeTlsData(mut encode) => {
                    let at = self.outgoing.len();
                    self.outgoing.resize(at + MAX_FRAGMENT / 4, 0);
                    let written = match encode.encode(&mut self.outgoing[at..]) {
                        Err(EncodeError::InsufficientSize(size)) => {
                            self.outgoing.resize(at + size.required_size, 0);
                            encode.encode(&mut self.outgoing[at..])
                        }
                        other => other,
                    };
                    match written {
                        Ok(n) => self.outgoing.truncate(at + n),
                        Err(e) => {
                            self.outgoing.truncate(at);
                            drop(encode);
                            return Err(self.fail(io::ErrorKind::Other, e.to_string()));
                        }
                    }
                    None
                }
                // The encoded bytes are queued in `outgoing`, ahead of anything queued later;
                // the caller writes them out.
                ConnectionState::TransmitTlsData(transmit) => {
                    transmit.done();
                    None
                }
                ConnectionState::BlockedHandshake => Some(Stop::Handshaking),
                ConnectionState::PeerClosed => {
                    self.peer_closed = true;
                    None
                }
                ConnectionState::Closed => {
                    self.peer_closed = true;
                    Some(Stop::Closed)
                }
                ConnectionState::WriteTraffic(mut traffic) => {
                    match send {
                        Send::Data(data) if !queued => {
                            let at = self.outgoing.len();
                            let records = data.len() / MAX_FRAGMENT + 1;
                            self.outgoing
                                .resize(at + data.len() + records * RECORD_OVERHEAD, 0);
                            let written = match traffic.encrypt(data, &mut self.outgoing[at..]) {
                                Err(EncryptError::InsufficientSize(size)) => {
                                    self.outgoing.resize(at + size.required_size, 0);
                                    traffic.encrypt(data, &mut self.outgoing[at..])
                                }
                                other => other,
                            };
                            match written {
                                Ok(n) => self.outgoing.truncate(at + n),
                                Err(e) => {
                                    self.outgoing.truncate(at);
                                    return Err(self.fail(io::ErrorKind::Other, e.to_string()));
                                }
                            }
                            queued = true;
                        }
                        Send::CloseNotify if !queued => {
                            let at = self.outgoing.len();
                            self.outgoing
                                .resize(at + RECORD_HEADER + RECORD_OVERHEAD, 0);
                            match traffic.queue_close_notify(&mut self.outgoing[at..]) {
                                Ok(n) => self.outgoing.truncate(at + n),
                                Err(e) => {
                                    self.outgoing.truncate(at);
                                    return Err(self.fail(io::ErrorKind::Other, e.to_string()));
                                }
                            }
                            self.close_sent = true;
                            queued = true;
                        }
                        _ => {}
                    }
                    Some(Stop::Established)
                }
                other => {
                    let reason = format!("unexpected TLS connection state {other:?}");
                    drop(other);
                    return Err(self.fail(io::ErrorKind::Other, reason));
                }
            };
            self.incoming_start += discard;
            if self.incoming_start == self.incoming.len() {
                self.incoming.clear();
                self.incoming_start = 0;
            }
            if let Some(stop) = stop {
                return Ok((stop, queued));
            }
        }
    }

    /// Records a rustls failure and, like a buffered rustls stream, makes one attempt to
    /// tell the peer (an alert rustls may have queued), without waiting for it.
    fn fail_tls(&mut self, e: rustls::Error) -> io::Error {
        let error = self.fail(io::ErrorKind::InvalidData, e.to_string());
        let UnbufferedStatus { state, .. } = self
            .conn
            .process_tls_records(&mut self.incoming[self.incoming_start..]);
        if let Ok(ConnectionState::EncodeTlsData(mut encode)) = state {
            let at = self.outgoing.len();
            self.outgoing
                .resize(at + RECORD_HEADER + RECORD_OVERHEAD, 0);
            match encode.encode(&mut self.outgoing[at..]) {
                Ok(n) => self.outgoing.truncate(at + n),
                Err(_) => self.outgoing.truncate(at),
            }
        }
        while self.outgoing_sent < self.outgoing.len() {
            match self.tcp.try_write(&self.outgoing[self.outgoing_sent..]) {
                Ok(n) if n > 0 => self.outgoing_sent += n,
                _ => break,
            }
        }
        self.outgoing = Vec::new();
        self.outgoing_sent = 0;
        error
    }

    /// Writes `outgoing` to the socket; ready once all of it is written.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.outgoing_sent < self.outgoing.len() {
            let n = match Pin::new(&mut self.tcp)
                .poll_write(cx, &self.outgoing[self.outgoing_sent..])
            {
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(e)) => {
                    return Poll::Ready(Err(self.fail(e.kind(), e.to_string())));
                }
                Poll::Pending => return Poll::Pending,
            };
            if n == 0 {
                return Poll::Ready(Err(self.fail(
                    io::ErrorKind::WriteZero,
                    "the connection accepts no more data".into(),
                )));
            }
            self.outgoing_sent += n;
        }
        // Written: nothing of it needs keeping, and a session writes once per poll.
        self.outgoing = Vec::new();
        self.outgoing_sent = 0;
        Poll::Ready(Ok(()))
    }

    /// Reads ciphertext from the socket into `incoming`; `Ok(0)` at end of stream. Room is
    /// reserved only once the socket is readable, and what is held while waiting is freed.
    fn poll_receive(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        loop {
            if self.tcp.poll_read_ready(cx).is_pending() {
                self.release_idle_buffers();
                return Poll::Pending;
            }
            if self.incoming_start > 0 {
                self.incoming.drain(..self.incoming_start);
                self.incoming_start = 0;
            }
            let want = match self.incoming.get(3..RECORD_HEADER) {
                // A partial record: what the header says is still due, at least a chunk.
                Some(len) => {
                    let due = RECORD_HEADER + usize::from(u16::from_be_bytes([len[0], len[1]]));
                    due.saturating_sub(self.incoming.len()).max(READ_CHUNK)
                }
                None => READ_CHUNK,
            };
            if self.incoming.capacity() - self.incoming.len() < want {
                self.incoming.reserve(want);
            }
            match self.tcp.try_read_buf(&mut self.incoming) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(self.fail(e.kind(), e.to_string()))),
            }
        }
    }

    /// Frees every buffer that holds nothing (an idle session keeps no buffer at all).
    fn release_idle_buffers(&mut self) {
        if self.incoming.is_empty() && self.incoming.capacity() > 0 {
            self.incoming = Vec::new();
        }
        if self.plaintext_start == self.plaintext.len() && self.plaintext.capacity() > 0 {
            self.plaintext = Vec::new();
            self.plaintext_start = 0;
        }
        if self.outgoing_sent == self.outgoing.len() && self.outgoing.capacity() > 0 {
            self.outgoing = Vec::new();
            self.outgoing_sent = 0;
        }
    }

    /// Bytes of buffer capacity held right now (tests check an idle session holds none).
    #[cfg(test)]
    pub(crate) fn buffer_capacity(&self) -> usize {
        self.incoming.capacity() + self.plaintext.capacity() + self.outgoing.capacity()
    }

    /// Copies pending plaintext into `buf`; true when anything was copied.
    fn take_plaintext(&mut self, buf: &mut ReadBuf<'_>) -> bool {
        let pending = &self.plaintext[self.plaintext_start..];
        if pending.is_empty() || buf.remaining() == 0 {
            return false;
        }
        let n = pending.len().min(buf.remaining());
        buf.put_slice(&pending[..n]);
        self.plaintext_start += n;
        if self.plaintext_start == self.plaintext.len() {
            self.plaintext.clear();
            self.plaintext_start = 0;
        }
        true
    }

    /// Wakes the reader if a write-side call left it something to return.
    fn wake_reader_if_readable(&mut self) {
        if (self.plaintext_start < self.plaintext.len() || self.peer_closed)
            && let Some(reader) = self.reader.take()
        {
            reader.wake();
        }
    }
}

impl AsyncRead for TlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.take_plaintext(buf) {
                return Poll::Ready(Ok(()));
            }
            if buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            this.check_failed()?;
            if this.peer_closed {
                return Poll::Ready(Ok(())); // end of stream
            }
            let (stop, _) = this.advance(Send::Nothing)?;
            // Whatever processing produced (a key update, an alert) goes out now; a socket
            // that cannot take it yet wakes this task when it can.
            if let Poll::Ready(Err(e)) = this.poll_send(cx) {
                return Poll::Ready(Err(e));
            }
            if this.plaintext_start < this.plaintext.len() || this.peer_closed {
                continue;
            }
            if stop == Stop::Closed {
                return Poll::Ready(Ok(()));
            }
            match this.reader.as_ref() {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                _ => this.reader = Some(cx.waker().clone()),
            }
            let n = ready!(this.poll_receive(cx))?;
            if n == 0 {
                // End of stream without `close_notify`. Between records it reads like any
                // closed connection; inside one, the reply was cut off.
                if this.incoming.len() > this.incoming_start {
                    return Poll::Ready(Err(this.fail(
                        io::ErrorKind::UnexpectedEof,
                        "the device closed the connection in the middle of a TLS record".into(),
                    )));
                }
                this.peer_closed = true;
                return Poll::Ready(Ok(()));
            }
        }
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // One batch in flight at a time: what was queued before goes first.
        ready!(this.poll_send(cx))?;
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if this.close_sent {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the TLS session is closing",
            )));
        }
        let result = this.advance(Send::Data(data));
        this.wake_reader_if_readable();
        let (stop, queued) = result?;
        if !queued {
            return Poll::Ready(Err(this.fail(
                io::ErrorKind::NotConnected,
                format!("the TLS session cannot carry data ({stop:?})"),
            )));
        }
        // Accepted; the bytes go out now if the socket takes them, else on the next call.
        if let Poll::Ready(Err(e)) = this.poll_send(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.close_sent && this.failed.is_none() {
            let result = this.advance(Send::CloseNotify);
            this.wake_reader_if_readable();
            result?;
        }
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use routeros_proto::{Command, Limits, Reply, ReplyKind};
    use routeros_sim::{Fleet, SimConfig};
    use tokio::io::AsyncWriteExt;

    use super::*;
    use crate::session::ReadBuffer;
    use crate::tls::TlsPolicy;

    async fn open(fleet: &Fleet) -> TlsStream {
        let tcp = TcpStream::connect(fleet.device_addr(0)).await.expect("tcp");
        let name = ServerName::IpAddress(std::net::IpAddr::V4(fleet.ip(0)).into());
        TlsStream::connect(tcp, TlsPolicy::insecure().config, name)
            .await
            .expect("handshake")
    }

    async fn send(stream: &mut TlsStream, command: Command) {
        let mut bytes = Vec::new();
        command.encode(&mut bytes);
        stream.write_all(&bytes).await.expect("write");
        stream.flush().await.expect("flush");
    }

    /// Reads replies up to the `!done`; returns the `!re` rows.
    async fn until_done(stream: &mut TlsStream, reader: &mut ReadBuffer) -> Vec<Reply> {
        let mut rows = Vec::new();
        loop {
            let reply = tokio::time::timeout(Duration::from_secs(5), reader.next_reply(stream))
                .await
                .expect("a reply within 5 s")
                .expect("a reply");
            match reply.kind {
                ReplyKind::Done => return rows,
                ReplyKind::Re => rows.push(reply),
                other => panic!("unexpected {other:?}: {reply:?}"),
            }
        }
    }

    /// Waits in `poll_read` for a reply that does not come (yet), then returns.
    async fn wait_idle(stream: &mut TlsStream, reader: &mut ReadBuffer) {
        let waited =
            tokio::time::timeout(Duration::from_millis(50), reader.next_reply(stream)).await;
        assert!(waited.is_err(), "nothing was asked, nothing arrives");
    }

    #[tokio::test]
    async fn an_idle_session_holds_no_tls_buffer_and_a_long_reply_spans_records_and_reads() {
        let fleet = Fleet::start(SimConfig::for_tests()).await.expect("sim");
        let mut stream = open(&fleet).await;
        assert_eq!(stream.buffer_capacity(), 0, "after the handshake");
        let mut reader = ReadBuffer::new(Limits::CLIENT);
        let (user, password) = fleet.credentials();
        send(
            &mut stream,
            routeros_proto::login::plain_login(user, password),
        )
        .await;
        until_done(&mut stream, &mut reader).await;

        // Idle: waiting for the next reply holds no ciphertext, plaintext or outgoing bytes.
        wait_idle(&mut stream, &mut reader).await;
        assert_eq!(stream.buffer_capacity(), 0, "{stream:?}");

        // A reply of ≈ 100 KB: several 16 KiB records, many socket reads.
        let comment = "c".repeat(2000);
        for i in 0..48 {
            send(
                &mut stream,
                Command::new("/ip/address/add")
                    .attr("address", format!("10.77.{i}.1/24"))
                    .attr("interface", "ether2")
                    .attr("comment", comment.clone()),
            )
            .await;
            until_done(&mut stream, &mut reader).await;
        }
        send(&mut stream, Command::new("/ip/address/print")).await;
        let rows = until_done(&mut stream, &mut reader).await;
        let long: Vec<_> = rows
            .iter()
            .filter(|r| r.attributes.get("comment") == Some(comment.as_str()))
            .collect();
        assert_eq!(long.len(), 48);
        wait_idle(&mut stream, &mut reader).await;
        assert_eq!(stream.buffer_capacity(), 0, "{stream:?}");

        // Still in step afterwards.
        send(&mut stream, Command::new("/system/identity/print")).await;
        let rows = until_done(&mut stream, &mut reader).await;
        assert!(rows[0].attributes.get("name").is_some());
        wait_idle(&mut stream, &mut reader).await;
        assert_eq!(stream.buffer_capacity(), 0);

        // A clean close sends close_notify; the device then ends the stream.
        stream.shutdown().await.expect("close");
        fleet.shutdown().await;
    }
}

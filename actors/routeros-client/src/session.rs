//! Opening a session: TCP connect, TLS handshake, login (modern, or the legacy challenge when
//! the device asks for it), each bounded by its own timeout.

use std::net::IpAddr;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use routeros_proto::{Limits, Reply, ReplyKind, SentenceDecoder, login};

use crate::client::{Client, ClientOptions};
use crate::error::Error;
use crate::tls::{Fingerprint, TlsCheck, Transport};
use crate::tls_stream::TlsStream;

/// A username and a password. The password never appears in `Debug` output.
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    password: String,
}

impl Credentials {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
        }
    }

    pub fn password(&self) -> &str {
        &self.password
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Everything needed to open a session to one device.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Host name or IP address of the device.
    pub host: String,
    /// API port; `None` means 8729 for TLS and 8728 for plain.
    pub port: Option<u16>,
    pub transport: Transport,
    pub credentials: Credentials,
    pub connect_timeout: Duration,
    pub login_timeout: Duration,
    /// Default timeout of one command.
    pub command_timeout: Duration,
    /// How long a cancelled command may take to drain before the session is closed.
    pub drain_timeout: Duration,
    /// Bounds on what the device may send.
    pub limits: Limits,
    /// Most commands in flight at once on the session.
    pub max_in_flight: usize,
    /// Most `!re` rows accepted in one reply.
    pub max_rows: usize,
}

impl ConnectOptions {
    /// Defaults: TLS accepting any certificate, 10 s connect, 10 s login, 30 s per command.
    pub fn new(host: impl Into<String>, credentials: Credentials) -> Self {
        Self {
            host: host.into(),
            port: None,
            transport: Transport::insecure(),
            credentials,
            connect_timeout: Duration::from_secs(10),
            login_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(10),
            limits: Limits::CLIENT,
            max_in_flight: 64,
            max_rows: 100_000,
        }
    }

    pub fn port(&self) -> u16 {
        self.port.unwrap_or_else(|| self.transport.default_port())
    }

    fn addr(&self) -> String {
        match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V6(v6)) => format!("[{v6}]:{}", self.port()),
            _ => format!("{}:{}", self.host, self.port()),
        }
    }
}

/// Facts about an open session.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub peer: std::net::SocketAddr,
    /// Whether the session runs over TLS.
    pub tls: bool,
    /// Fingerprint of the certificate the device presented (TLS only).
    pub fingerprint: Option<Fingerprint>,
    /// Whether the device asked for the legacy (pre-6.43) challenge login.
    pub legacy_login: bool,
}

pub(crate) trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// Connects, logs in and returns a ready [`Client`].
pub async fn connect(options: &ConnectOptions) -> Result<Client, Error> {
    let addr = options.addr();
    let tcp = tokio::time::timeout(options.connect_timeout, TcpStream::connect(&addr))
        .await
        .map_err(|_| Error::ConnectTimeout {
            addr: addr.clone(),
            after: options.connect_timeout,
        })?
        .map_err(|e| Error::Connect {
            addr: addr.clone(),
            reason: e.to_string(),
        })?;
    let peer = tcp.peer_addr().map_err(|e| Error::Connect {
        addr: addr.clone(),
        reason: e.to_string(),
    })?;
    tune_socket(&tcp);

    let (mut stream, fingerprint): (Box<dyn Stream>, Option<Fingerprint>) = match &options.transport
    {
        Transport::Plain => (Box::new(tcp), None),
        Transport::Tls(policy) => {
            let server_name = match options.host.parse::<IpAddr>() {
                Ok(ip) => ServerName::IpAddress(ip.into()),
                Err(_) => ServerName::try_from(options.host.clone()).map_err(|e| Error::Tls {
                    addr: addr.clone(),
                    reason: format!("invalid host name: {e}"),
                })?,
            };
            let handshake = TlsStream::connect(tcp, policy.config.clone(), server_name);
            let tls = tokio::time::timeout(options.connect_timeout, handshake)
                .await
                .map_err(|_| Error::ConnectTimeout {
                    addr: addr.clone(),
                    after: options.connect_timeout,
                })?
                .map_err(|e| Error::Tls {
                    addr: addr.clone(),
                    reason: e.to_string(),
                })?;
            let actual = tls
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| Fingerprint::of_der(c));
            if let (Some(expected), Some(actual)) = (policy.pinned, actual)
                && expected != actual
            {
                return Err(Error::FingerprintMismatch {
                    addr,
                    expected,
                    actual,
                });
            }
            if policy.mode == TlsCheck::Insecure && actual.is_none() {
                return Err(Error::Tls {
                    addr,
                    reason: "device presented no certificate".into(),
                });
            }
            (Box::new(tls), actual)
        }
    };

    let mut reader = ReadBuffer::new(options.limits);
    let legacy_login = tokio::time::timeout(
        options.login_timeout,
        log_in(&mut stream, &mut reader, &options.credentials),
    )
    .await
    .map_err(|_| Error::LoginTimeout {
        after: options.login_timeout,
    })??;

    let info = SessionInfo {
        peer,
        tls: fingerprint.is_some(),
        fingerprint,
        legacy_login,
    };
    Ok(Client::start(
        stream,
        reader,
        info,
        ClientOptions::from_connect_options(options),
    ))
}

/// TCP keepalive and a user timeout so a silent peer is noticed by the kernel too; an
/// abortive close (linger 0), so requests still queued in the kernel when the session is
/// given up are discarded, never delivered later: after a network partition heals, a
/// stale node's old polls must not reach a device that another node now polls.
fn tune_socket(tcp: &TcpStream) {
    let sock = socket2::SockRef::from(tcp);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(10))
        .with_interval(Duration::from_secs(5))
        .with_retries(3);
    // Best effort: a socket that refuses these options still works.
    let _ = sock.set_tcp_keepalive(&keepalive);
    let _ = sock.set_tcp_nodelay(true);
    let _ = sock.set_linger(Some(Duration::ZERO));
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let _ = sock.set_tcp_user_timeout(Some(Duration::from_secs(30)));
}

/// Logs in; returns whether the legacy challenge flow was used.
async fn log_in(
    stream: &mut Box<dyn Stream>,
    reader: &mut ReadBuffer,
    credentials: &Credentials,
) -> Result<bool, Error> {
    let mut out = Vec::new();
    login::plain_login(&credentials.username, credentials.password()).encode(&mut out);
    write(stream, &out).await?;
    let done = read_until_done(stream, reader).await?;
    let Some(challenge) = done.ret() else {
        return Ok(false);
    };
    let response = login::challenge_response(credentials.password().as_bytes(), challenge)
        .ok_or_else(|| Error::Protocol {
            reason: "login challenge is not hex".into(),
        })?;
    out.clear();
    login::legacy_login(&credentials.username, &response).encode(&mut out);
    write(stream, &out).await?;
    read_until_done(stream, reader).await?;
    Ok(true)
}

async fn write(stream: &mut Box<dyn Stream>, bytes: &[u8]) -> Result<(), Error> {
    stream
        .write_all(bytes)
        .await
        .map_err(|e| Error::ConnectionLost {
            reason: e.to_string(),
        })?;
    stream.flush().await.map_err(|e| Error::ConnectionLost {
        reason: e.to_string(),
    })
}

/// Reads login replies up to `!done`; a trap before it means the login was rejected.
async fn read_until_done(
    stream: &mut Box<dyn Stream>,
    reader: &mut ReadBuffer,
) -> Result<Reply, Error> {
    let mut trap: Option<String> = None;
    loop {
        let reply = reader.next_reply(stream).await?;
        match reply.kind {
            ReplyKind::Done => {
                return match trap {
                    Some(message) => Err(Error::LoginRejected { message }),
                    None => Ok(reply),
                };
            }
            ReplyKind::Trap => {
                trap.get_or_insert_with(|| reply.message().unwrap_or("login failed").to_owned());
            }
            ReplyKind::Fatal => {
                return Err(Error::LoginRejected {
                    message: reply
                        .fatal_reason
                        .unwrap_or_else(|| "session closed".into()),
                });
            }
            ReplyKind::Re | ReplyKind::Empty => {}
        }
    }
}

/// Bytes received and not yet decoded, with the sentence decoder that reads them.
/// What an idle session's read buffer holds while it waits for the next reply.
const IDLE_READ: usize = 256;

#[derive(Debug)]
pub(crate) struct ReadBuffer {
    data: Vec<u8>,
    start: usize,
    decoder: SentenceDecoder,
}

impl ReadBuffer {
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            data: Vec::with_capacity(1024),
            start: 0,
            decoder: SentenceDecoder::new(limits),
        }
    }

    /// Reads until one whole reply sentence is available and returns it parsed.
    pub(crate) async fn next_reply<R: AsyncRead + Unpin + ?Sized>(
        &mut self,
        stream: &mut R,
    ) -> Result<Reply, Error> {
        loop {
            match self.decoder.decode(&self.data[self.start..]) {
                Ok(Some((sentence, used))) => {
                    self.start += used;
                    if self.start == self.data.len() {
                        self.data.clear();
                        self.start = 0;
                    }
                    return Reply::parse(&sentence).map_err(|e| Error::Protocol {
                        reason: e.to_string(),
                    });
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(Error::Protocol {
                        reason: e.to_string(),
                    });
                }
            }
            if self.start > 0 {
                self.data.drain(..self.start);
                self.start = 0;
            }
            self.grow_for_read();
            let n = stream
                .read_buf(&mut self.data)
                .await
                .map_err(|e| Error::ConnectionLost {
                    reason: e.to_string(),
                })?;
            if n == 0 {
                return Err(Error::ConnectionLost {
                    reason: "device closed the connection".into(),
                });
            }
            // Memory held for an idle session stays small once a large reply is gone.
            if self.data.len() == n && self.data.capacity() > 64 * 1024 && n < 4096 {
                self.data.shrink_to(8 * 1024);
            }
        }
    }

    /// Room for the next read. An empty buffer (an idle session waiting for its next
    /// reply, thousands of them per node) gets only [`IDLE_READ`] bytes; a reply that
    /// spans reads grows it by at least 4 KiB at a time.
    fn grow_for_read(&mut self) {
        let free = self.data.capacity() - self.data.len();
        if self.data.is_empty() {
            if free == 0 {
                self.data.reserve_exact(IDLE_READ);
            }
        } else if free < 512 {
            self.data.reserve(self.data.len().max(4096));
        }
    }

    pub(crate) fn release_memory(&mut self) {
        if self.start == self.data.len() {
            self.data = Vec::new();
            self.start = 0;
            self.decoder.release_memory();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One `!done` reply with a tag, as the wire carries it.
    fn done_reply(tag: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for word in ["!done".to_owned(), format!(".tag={tag}")] {
            out.push(word.len() as u8);
            out.extend_from_slice(word.as_bytes());
        }
        out.push(0);
        out
    }

    #[tokio::test]
    async fn an_idle_session_waits_with_a_small_buffer_and_a_long_reply_still_reads() {
        let mut buffer = ReadBuffer::new(Limits::default());
        // Between polls: released, then the wait for the next reply holds IDLE_READ bytes.
        buffer.release_memory();
        assert_eq!(buffer.data.capacity(), 0);
        buffer.grow_for_read();
        assert!(
            buffer.data.capacity() <= IDLE_READ * 2,
            "{}",
            buffer.data.capacity()
        );

        // A reply much longer than the idle buffer, then a second one, both arrive whole.
        let mut long = Vec::new();
        for i in 0..200 {
            let word = format!("=k{i:03}={}", "x".repeat(100));
            long.push(word.len() as u8);
            long.extend_from_slice(word.as_bytes());
        }
        long.push(0);
        let mut wire = vec![];
        wire.extend_from_slice(&[3, b'!', b'r', b'e']);
        wire.extend_from_slice(&long);
        wire.extend_from_slice(&done_reply("7"));
        let mut reader: &[u8] = &wire;
        let first = buffer
            .next_reply(&mut reader)
            .await
            .expect("the long reply");
        assert_eq!(first.kind, ReplyKind::Re);
        assert_eq!(first.attributes.len(), 200);
        assert_eq!(first.attributes.get("k199").map(str::len), Some(100));
        let second = buffer
            .next_reply(&mut reader)
            .await
            .expect("the done reply");
        assert_eq!(second.tag.as_deref(), Some("7"));
        assert!(buffer.decoder.held_bytes() > 0);
        buffer.release_memory();
        assert_eq!(buffer.data.capacity(), 0);
        assert_eq!(
            buffer.decoder.held_bytes(),
            0,
            "the decoder's word index is freed too"
        );
    }
}

//! A small HTTP/1.1 client on a plain tokio `TcpStream` for the API and SSE benchmarks:
//! keep-alive requests with `Content-Length` or chunked responses, and an incremental
//! chunked-body decoder for event streams. No HTTP library sits between the benchmark and
//! the server, so what is measured is the server (and this thin client), nothing else.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Largest response body accepted.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// A response: status, the headers the benchmarks look at, and the body.
#[derive(Debug, Clone)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

impl Response {
    pub(crate) fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "HTTP {}: body is not JSON: {}",
                self.status,
                String::from_utf8_lossy(&self.body[..self.body.len().min(200)])
            )
        })
    }

    /// The body as text, shortened, for error messages.
    pub(crate) fn snippet(&self) -> String {
        String::from_utf8_lossy(&self.body[..self.body.len().min(300)]).into_owned()
    }
}

/// How the body of a response is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    Length(usize),
    Chunked,
    /// Until the server closes the connection.
    UntilClose,
}

/// A parsed response head.
#[derive(Debug, Clone)]
pub(crate) struct Head {
    pub(crate) status: u16,
    pub(crate) framing: Framing,
    pub(crate) keep_alive: bool,
    /// Bytes of the head, including the blank line.
    pub(crate) len: usize,
}

/// Parses a response head from the start of `buf`; `Ok(None)` when more bytes are needed.
pub(crate) fn parse_head(buf: &[u8]) -> anyhow::Result<Option<Head>> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > MAX_HEAD {
            bail!("response head longer than {MAX_HEAD} bytes");
        }
        return Ok(None);
    };
    let text = std::str::from_utf8(&buf[..end]).context("response head is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        bail!("not an HTTP/1.x response: {status_line:?}");
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let mut framing = Framing::UntilClose;
    let mut keep_alive = version == "HTTP/1.1";
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n: usize = value.parse().context("bad Content-Length")?;
            if framing != Framing::Chunked {
                framing = Framing::Length(n);
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            && value.to_ascii_lowercase().contains("chunked")
        {
            framing = Framing::Chunked;
        } else if name.eq_ignore_ascii_case("connection") {
            keep_alive = !value.eq_ignore_ascii_case("close");
        }
    }
    // 1xx, 204 and 304 have no body.
    if status < 200 || status == 204 || status == 304 {
        framing = Framing::Length(0);
    }
    Ok(Some(Head {
        status,
        framing,
        keep_alive,
        len: end + 4,
    }))
}

/// Incremental decoder of a chunked body: feed raw bytes, get the payload bytes.
#[derive(Debug, Default)]
pub(crate) struct Dechunker {
    pending: Vec<u8>,
    /// Payload bytes left in the current chunk, plus its CRLF.
    left_in_chunk: usize,
    in_chunk: bool,
    ended: bool,
}

impl Dechunker {
    /// Appends the payload decoded from `raw` to `out`.
    pub(crate) fn feed(&mut self, raw: &[u8], out: &mut Vec<u8>) -> anyhow::Result<()> {
        self.pending.extend_from_slice(raw);
        let mut at = 0;
        loop {
            if self.ended {
                break;
            }
            if self.in_chunk {
                let avail = self.pending.len() - at;
                if self.left_in_chunk > 2 {
                    let take = avail.min(self.left_in_chunk - 2);
                    out.extend_from_slice(&self.pending[at..at + take]);
                    at += take;
                    self.left_in_chunk -= take;
                    if self.left_in_chunk > 2 {
                        break;
                    }
                }
                // The CRLF after the chunk's data.
                if self.pending.len() - at < 2 {
                    break;
                }
                if &self.pending[at..at + 2] != b"\r\n" {
                    bail!("chunk not followed by CRLF");
                }
                at += 2;
                self.in_chunk = false;
                continue;
            }
            let Some(eol) = self.pending[at..].windows(2).position(|w| w == b"\r\n") else {
                if self.pending.len() - at > 1024 {
                    bail!("chunk size line too long");
                }
                break;
            };
            let line = std::str::from_utf8(&self.pending[at..at + eol]).context("chunk size")?;
            let size_text = line.split(';').next().unwrap_or_default().trim();
            let size =
                usize::from_str_radix(size_text, 16).with_context(|| format!("chunk {line:?}"))?;
            at += eol + 2;
            if size == 0 {
                self.ended = true;
                break;
            }
            if size > MAX_BODY {
                bail!("chunk of {size} bytes");
            }
            self.in_chunk = true;
            self.left_in_chunk = size + 2;
        }
        self.pending.drain(..at);
        Ok(())
    }

    pub(crate) fn ended(&self) -> bool {
        self.ended
    }
}

/// One keep-alive connection.
#[derive(Debug)]
pub(crate) struct Conn {
    stream: TcpStream,
    host: String,
    /// Bytes read past the previous response.
    buf: Vec<u8>,
    /// The server asked to close (or did): the connection cannot be reused.
    pub(crate) closed: bool,
}

impl Conn {
    pub(crate) async fn connect(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            host: addr.to_string(),
            buf: Vec::with_capacity(16 * 1024),
            closed: false,
        })
    }

    /// Writes one request. `headers` are extra `(name, value)` pairs.
    pub(crate) async fn send_request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> anyhow::Result<()> {
        let mut req = Vec::with_capacity(256 + body.map_or(0, <[u8]>::len));
        req.extend_from_slice(
            format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.host).as_bytes(),
        );
        for (name, value) in headers {
            req.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        if let Some(b) = body {
            req.extend_from_slice(
                format!(
                    "Content-Type: application/json\r\nContent-Length: {}\r\n",
                    b.len()
                )
                .as_bytes(),
            );
        }
        req.extend_from_slice(b"\r\n");
        if let Some(b) = body {
            req.extend_from_slice(b);
        }
        self.stream.write_all(&req).await?;
        Ok(())
    }

    /// Reads more bytes into the buffer; errors on EOF.
    async fn fill(&mut self) -> anyhow::Result<usize> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            self.closed = true;
            bail!("connection closed by the server");
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Reads one response head; the body is left for [`Conn::read_body`] or
    /// [`Conn::into_stream`].
    pub(crate) async fn read_head(&mut self) -> anyhow::Result<Head> {
        loop {
            if let Some(h) = parse_head(&self.buf)? {
                self.buf.drain(..h.len);
                if !h.keep_alive {
                    self.closed = true;
                }
                return Ok(h);
            }
            self.fill().await?;
        }
    }

    /// Reads the body that `head` announced.
    pub(crate) async fn read_body(&mut self, head: &Head) -> anyhow::Result<Vec<u8>> {
        match head.framing {
            Framing::Length(n) => {
                if n > MAX_BODY {
                    bail!("body of {n} bytes");
                }
                while self.buf.len() < n {
                    self.fill().await?;
                }
                let rest = self.buf.split_off(n);
                Ok(std::mem::replace(&mut self.buf, rest))
            }
            Framing::Chunked => {
                let mut out = Vec::new();
                let mut d = Dechunker::default();
                let first = std::mem::take(&mut self.buf);
                d.feed(&first, &mut out)?;
                while !d.ended() {
                    let mut chunk = [0u8; 16 * 1024];
                    let n = self.stream.read(&mut chunk).await?;
                    if n == 0 {
                        bail!("connection closed inside a chunked body");
                    }
                    d.feed(&chunk[..n], &mut out)?;
                    if out.len() > MAX_BODY {
                        bail!("body larger than {MAX_BODY} bytes");
                    }
                }
                // A chunked body may end with trailers; the benchmarks' servers send none,
                // and the final CRLF was consumed with the zero chunk's line, so the buffer
                // is empty here. Not reusing the connection keeps this honest.
                self.closed = true;
                Ok(out)
            }
            Framing::UntilClose => {
                let mut out = std::mem::take(&mut self.buf);
                let mut chunk = [0u8; 16 * 1024];
                loop {
                    let n = self.stream.read(&mut chunk).await?;
                    if n == 0 {
                        break;
                    }
                    out.extend_from_slice(&chunk[..n]);
                }
                self.closed = true;
                Ok(out)
            }
        }
    }

    /// One request and its whole response.
    pub(crate) async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> anyhow::Result<Response> {
        self.send_request(method, path, headers, body).await?;
        let head = self.read_head().await?;
        let body = self.read_body(&head).await?;
        Ok(Response {
            status: head.status,
            body,
        })
    }

    /// The socket and whatever was read past the head, for a streaming body.
    pub(crate) fn into_stream(self) -> (TcpStream, Vec<u8>) {
        (self.stream, self.buf)
    }
}

/// One request on a fresh connection, bounded by `timeout`.
pub(crate) async fn request_once(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&serde_json::Value>,
    timeout: Duration,
) -> anyhow::Result<Response> {
    let body = body.map(serde_json::to_vec).transpose()?;
    tokio::time::timeout(timeout, async {
        let mut c = Conn::connect(addr).await?;
        c.request(method, path, headers, body.as_deref()).await
    })
    .await
    .with_context(|| format!("{method} {path}: no answer within {timeout:?}"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_parse_with_their_framing() {
        let h = parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello")
            .unwrap()
            .unwrap();
        assert_eq!(
            (h.status, h.framing, h.keep_alive),
            (200, Framing::Length(5), true)
        );
        assert_eq!(h.len, 38);
        let h = parse_head(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!((h.framing, h.keep_alive), (Framing::Chunked, false));
        let h = parse_head(b"HTTP/1.1 204 No Content\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::Length(0));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n").unwrap().is_none());
        assert!(parse_head(b"SSH-2.0\r\n\r\n").is_err());
    }

    #[test]
    fn chunks_decode_when_split_anywhere() {
        let raw = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n";
        for split in 0..raw.len() {
            let mut d = Dechunker::default();
            let mut out = Vec::new();
            d.feed(&raw[..split], &mut out).unwrap();
            d.feed(&raw[split..], &mut out).unwrap();
            assert_eq!(out, b"hello, world", "split at {split}");
            assert!(d.ended());
        }
        let mut d = Dechunker::default();
        assert!(d.feed(b"3\r\nabcX\r\n", &mut Vec::new()).is_err());
    }
}

//! A tiny HTTP/1.1 server and client for the control API: one request per connection
//! (`Connection: close`), `Content-Length` bodies only, bounded header and body sizes.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::stop::StopSignal;

pub(crate) const MAX_HEADER: usize = 16 * 1024;
pub(crate) const MAX_BODY: usize = 1024 * 1024;
/// Responses read by the fan-out client may be large (`/stats` of 9000 devices).
const MAX_RESPONSE: usize = 512 * 1024 * 1024;
const IO_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Request {
    pub(crate) fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) content_type: &'static str,
    pub(crate) body: Vec<u8>,
}

impl Response {
    pub(crate) fn json(status: u16, value: &serde_json::Value) -> Self {
        Self {
            status,
            content_type: "application/json",
            body: serde_json::to_vec(value).unwrap_or_default(),
        }
    }

    pub(crate) fn raw_json(status: u16, body: Vec<u8>) -> Self {
        Self {
            status,
            content_type: "application/json",
            body,
        }
    }

    pub(crate) fn error(status: u16, message: &str) -> Self {
        Self::json(
            status,
            &serde_json::json!({ "ok": false, "error": message }),
        )
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        502 => "Bad Gateway",
        _ => "Error",
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads a head (up to the blank line) and returns it with any body bytes already read.
async fn read_head<R: AsyncRead + Unpin>(
    reader: &mut R,
    limit: usize,
) -> anyhow::Result<(String, Vec<u8>)> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            return Ok((head, buf[end + 4..].to_vec()));
        }
        if buf.len() > limit {
            bail!("header too large");
        }
        let n = reader.read(&mut chunk).await?;
        if n == 0 {
            bail!("connection closed before the end of the header");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn content_length(head: &str) -> anyhow::Result<usize> {
    for line in head.lines().skip(1) {
        if let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-length")
        {
            return value.trim().parse().context("bad Content-Length");
        }
    }
    Ok(0)
}

async fn read_body<R: AsyncRead + Unpin>(
    reader: &mut R,
    mut body: Vec<u8>,
    len: usize,
) -> anyhow::Result<Vec<u8>> {
    if body.len() > len {
        body.truncate(len);
    }
    let mut rest = vec![0u8; len - body.len()];
    reader.read_exact(&mut rest).await?;
    body.extend_from_slice(&rest);
    Ok(body)
}

async fn read_request(stream: &mut TcpStream) -> Result<Request, Response> {
    let (head, early) = read_head(stream, MAX_HEADER)
        .await
        .map_err(|_| Response::error(431, "bad or oversized request header"))?;
    let mut parts = head.lines().next().unwrap_or_default().split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default().to_owned();
    let len = content_length(&head).map_err(|_| Response::error(400, "bad Content-Length"))?;
    if len > MAX_BODY {
        return Err(Response::error(413, "body too large"));
    }
    let body = read_body(stream, early, len)
        .await
        .map_err(|_| Response::error(400, "short body"))?;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let query = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    Ok(Request {
        method,
        path: path.to_owned(),
        query,
        body,
    })
}

async fn write_response(stream: &mut TcpStream, r: &Response) {
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        r.status,
        reason(r.status),
        r.content_type,
        r.body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(&r.body).await;
    let _ = stream.shutdown().await;
}

/// Serves requests with `handler` until `stop`.
pub(crate) async fn serve<H, F>(listener: TcpListener, stop: StopSignal, handler: H)
where
    H: Fn(Request) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response> + Send + 'static,
{
    loop {
        let (mut stream, _) = tokio::select! {
            _ = stop.stopped() => return,
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let response = match tokio::time::timeout(IO_TIMEOUT, read_request(&mut stream)).await {
                Ok(Ok(request)) => handler(request).await,
                Ok(Err(r)) => r,
                Err(_) => Response::error(400, "request timed out"),
            };
            let _ = tokio::time::timeout(IO_TIMEOUT, write_response(&mut stream, &response)).await;
        });
    }
}

/// Sends one request and returns (status, body).
pub(crate) async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
) -> anyhow::Result<(u16, Vec<u8>)> {
    tokio::time::timeout(IO_TIMEOUT, async {
        let mut stream = TcpStream::connect(addr).await?;
        let body = body.unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        let (head, early) = read_head(&mut stream, MAX_HEADER).await?;
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .context("bad status line")?;
        let len = content_length(&head)?;
        if len > MAX_RESPONSE {
            bail!("response too large");
        }
        let body = read_body(&mut stream, early, len).await?;
        Ok((status, body))
    })
    .await
    .context("control request timed out")?
}

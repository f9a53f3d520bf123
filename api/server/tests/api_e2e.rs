//! The HTTP API of a real `drover run` process, end to end, as an operator meets it: a
//! simulated fleet (`routeros-sim`, driven through its HTTP control API), a fresh PostgreSQL
//! database seeded with `drover demo seed`, the machine's Redis and NATS, and a hand-written
//! HTTP/1.1 client over a plain TCP socket (no HTTP library between the test and the server).
//! Covers the browser's login (legacy step, SRP enrolment, SRP-6a with the M2 check), device
//! commands through the live actor session, role checks, the audit log, Server-Sent Events
//! of live device events (including a device going offline), and hostile input.

#![allow(clippy::unwrap_used)] // test code

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use drover_testkit::eventually;
use routeros_sim::control::ControlServer;
use routeros_sim::{Fleet, SimConfig};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

const KEY: &str = "q6mBvX5r1qZ6w0yqz8l2Lw9yJ3m0o5Xo7s0YV3n1kTQ=";
const PG: &str = "postgres://postgres@127.0.0.1:5432";
/// How long one plain HTTP exchange may take before the test fails.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------
// Processes and the database
// ---------------------------------------------------------------------------------------

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Drops the test's database when the test ends, passed or failed.
struct DropDatabase(String);

impl Drop for DropDatabase {
    fn drop(&mut self) {
        let name = self.0.clone();
        // Drop may run inside the test's runtime: use a runtime of our own on a thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                use sqlx::Connection;
                if let Ok(mut c) = sqlx::PgConnection::connect(&format!("{PG}/postgres")).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut c)
                    .await;
                }
            });
        })
        .join();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn drover(args: &[&str], db_url: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_drover"));
    c.args(args)
        .env("DATABASE_URL", db_url)
        .env("CREDENTIAL_ENCRYPTION_KEY", KEY)
        .env("DROVER_LOG", "warn")
        .stdin(Stdio::null());
    c
}

/// One running stack: simulator (optional), database, `drover run` with the API.
struct Stack {
    // Field order is drop order: the node stops before the database goes.
    _node: KillOnDrop,
    control: Option<ControlServer>,
    fleet: Option<Fleet>,
    _db: DropDatabase,
    api: SocketAddr,
    /// The seeded tenant's id (when a fleet was seeded).
    tenant: Option<String>,
    /// As configured (mixed case on purpose: logins must not depend on case).
    admin_email: String,
    admin_password: String,
}

impl Stack {
    /// Starts a simulated fleet of `devices` (none when 0), seeds a tenant with them (poll
    /// every 5 s), and runs `drover run` on free ports with a bootstrap super_admin.
    async fn start(devices: usize) -> Stack {
        let db = format!("drover_api_e2e_{:x}", rand::random::<u64>());
        let db_url = format!("{PG}/{db}");
        let db_guard = DropDatabase(db.clone());
        let mut fleet = None;
        let mut control = None;
        let mut tenant = None;
        if devices > 0 {
            let f = Fleet::start(SimConfig {
                devices,
                ..SimConfig::for_tests()
            })
            .await
            .unwrap();
            let seed = drover(
                &[
                    "demo",
                    "seed",
                    "--tenant",
                    "api-e2e",
                    "--devices",
                    &devices.to_string(),
                    "--first",
                    &f.ip(0).to_string(),
                    "--port",
                    &f.device_addr(0).port().to_string(),
                    "--password",
                    f.credentials().1,
                    "--interval",
                    "5",
                ],
                &db_url,
            )
            .output()
            .unwrap();
            assert!(
                seed.status.success(),
                "seed failed: {}",
                String::from_utf8_lossy(&seed.stderr)
            );
            let seeded: Value = serde_json::from_slice(&seed.stdout).unwrap();
            tenant = Some(seeded["tenant_id"].as_str().unwrap().to_owned());
            control = Some(
                ControlServer::start_local(&f, "127.0.0.1:0".parse().unwrap())
                    .await
                    .unwrap(),
            );
            fleet = Some(f);
        }
        let unique = uuid::Uuid::new_v4().simple().to_string();
        let admin_email = format!("Root-{}@Example.COM", &unique[..12]);
        let admin_password = format!("bootstrap-{}", &unique[..16]);
        let http_port = free_port();
        let node = KillOnDrop(
            drover(
                &[
                    "run",
                    "--metrics-addr",
                    &format!("127.0.0.1:{}", free_port()),
                    "--status-every-secs",
                    "0",
                ],
                &db_url,
            )
            .env("DROVER_HTTP_ADDR", format!("127.0.0.1:{http_port}"))
            .env("FIRST_ADMIN_EMAIL", &admin_email)
            .env("FIRST_ADMIN_PASSWORD", &admin_password)
            // Redis is shared with every other test on the machine: own key space, and
            // enough auth attempts for two logins from 127.0.0.1 within a minute.
            .env("DROVER_REDIS_PREFIX", format!("drover-e2e-{unique}:"))
            .env("DROVER_AUTH_RATE_PER_MINUTE", "100")
            .spawn()
            .unwrap(),
        );
        Stack {
            _node: node,
            control,
            fleet,
            _db: db_guard,
            api: SocketAddr::from(([127, 0, 0, 1], http_port)),
            tenant,
            admin_email,
            admin_password,
        }
    }

    fn fleet(&self) -> &Fleet {
        self.fleet.as_ref().unwrap()
    }

    fn control(&self) -> SocketAddr {
        self.control.as_ref().unwrap().addr()
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        request(self.api, "GET", path, token, None).await
    }

    async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Resp {
        let body = serde_json::to_vec(body).unwrap();
        request(self.api, "POST", path, token, Some(&body)).await
    }

    /// `GET /health/ready` answers 200 with every dependency ok.
    async fn wait_ready(&self) {
        let ready = eventually!(
            Duration::from_secs(60),
            try_request(self.api, "GET", "/health/ready", None, None)
                .await
                .is_some_and(|r| r.status == 200)
        );
        assert!(ready, "drover run never became ready on {}", self.api);
        let r = self.get("/health/ready", None).await;
        let v = r.json();
        assert_eq!(v["status"], "ready", "{v}");
        let deps = v["dependencies"].as_array().unwrap();
        for name in ["postgresql", "redis", "nats", "cluster"] {
            let d = deps
                .iter()
                .find(|d| d["name"] == name)
                .unwrap_or_else(|| panic!("dependency {name} missing from {v}"));
            assert_eq!(d["ok"], true, "{v}");
        }
    }

    /// The bootstrap admin's first login exactly as a browser does it: legacy password step,
    /// SRP enrolment, SRP login.
    async fn admin(&self) -> Session {
        let x = enrol(self, &self.admin_email, &self.admin_password).await;
        let s = srp_login(self, &self.admin_email, &x).await;
        assert_eq!(s.user["role"], "super_admin");
        assert_eq!(s.user["email"], self.admin_email.to_lowercase());
        s
    }

    /// Creates a user of `tenant` with `role` (as `admin`), enrols and logs them in.
    async fn user(&self, admin: &Session, tenant: &str, role: &str) -> Session {
        let email = format!("{role}-{}@example.com", uuid::Uuid::new_v4().simple());
        let password = "temporary password 1";
        let r = self
            .post(
                &format!("/api/tenants/{tenant}/users"),
                Some(&admin.token),
                &json!({"email": email, "role": role, "password": password}),
            )
            .await;
        assert_eq!(r.status, 200, "create {role}: {}", r.text());
        let x = enrol(self, &email, password).await;
        let s = srp_login(self, &email, &x).await;
        assert_eq!(s.user["role"], role);
        assert_eq!(s.user["tenant_id"], tenant);
        s
    }

    /// Devices of the seeded tenant, as the API lists them, waiting until `n` are online.
    async fn wait_online(&self, token: &str, n: usize) -> Vec<Value> {
        let tenant = self.tenant.clone().unwrap();
        let path = format!("/api/tenants/{tenant}/devices?status=online&limit=500");
        let all_online = eventually!(
            Duration::from_secs(45),
            self.get(&path, Some(token)).await.json()["items"]
                .as_array()
                .map(Vec::len)
                == Some(n)
        );
        let last = self.get(&path, Some(token)).await.json();
        assert!(all_online, "not all {n} devices came online: {last}");
        assert_eq!(last["total"], n);
        last["items"].as_array().unwrap().clone()
    }

    /// The simulator's own view of a device, from its control API.
    async fn sim_device(&self, address: &str) -> Value {
        let r = request(self.control(), "GET", "/devices", None, None).await;
        assert_eq!(r.status, 200);
        r.json()
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["address"] == address)
            .cloned()
            .unwrap_or_else(|| panic!("the simulator has no device {address}"))
    }
}

// ---------------------------------------------------------------------------------------
// A tiny HTTP/1.1 client
// ---------------------------------------------------------------------------------------

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Headers,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: body is not JSON ({e}): {:?}",
                self.status,
                self.text()
            )
        })
    }

    /// Asserts the documented error shape and returns the code.
    fn error_code(&self) -> String {
        let v = self.json();
        let (code, message, request_id) = (&v["code"], &v["message"], &v["request_id"]);
        assert!(code.is_string(), "no code in {v}");
        assert!(message.is_string(), "no message in {v}");
        assert!(
            request_id.as_str().is_some_and(|s| !s.is_empty()),
            "no request_id in {v}"
        );
        assert_eq!(
            self.header("x-request-id"),
            request_id.as_str(),
            "X-Request-Id must echo the body's request_id"
        );
        code.as_str().unwrap().to_owned()
    }
}

fn request_head(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    framing: &str,
) -> String {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         {framing}\r\nConnection: close\r\n{auth}\r\n"
    )
}

/// One request with a `Content-Length` body; panics when the server does not answer.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
) -> Resp {
    try_request(addr, method, path, token, body)
        .await
        .unwrap_or_else(|| panic!("no HTTP answer from {addr} to {method} {path}"))
}

/// One request; `None` when the connection fails or no complete response arrives.
async fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
) -> Option<Resp> {
    let body = body.unwrap_or_default();
    let framing = format!("Content-Length: {}", body.len());
    let mut bytes = request_head(addr, method, path, token, &framing).into_bytes();
    bytes.extend_from_slice(body);
    exchange(addr, bytes).await
}

/// Writes `bytes` while reading the answer to EOF (a server refusing a large body may answer
/// and close before reading it all; reading concurrently keeps that answer).
async fn exchange(addr: SocketAddr, bytes: Vec<u8>) -> Option<Resp> {
    let run = async move {
        let stream = TcpStream::connect(addr).await.ok()?;
        let (mut rd, mut wr) = stream.into_split();
        // The write half stays open until the answer is read: closing it early would be a
        // half-close, which some servers take as the client going away.
        let writer = tokio::spawn(async move {
            let _ = wr.write_all(&bytes).await;
            let _ = wr.flush().await;
            wr
        });
        let mut raw = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        }
        drop(writer.await);
        parse_response(&raw)
    };
    tokio::time::timeout(HTTP_TIMEOUT, run).await.ok().flatten()
}

/// Response headers, in order, names as sent.
type Headers = Vec<(String, String)>;

/// Status line and headers of `raw` (up to the blank line), and the offset of the body.
fn parse_head(raw: &[u8]) -> Option<(u16, Headers, usize)> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let mut parts = status_line.splitn(3, ' ');
    assert_eq!(
        parts.next(),
        Some("HTTP/1.1"),
        "status line {status_line:?}"
    );
    let status = parts.next()?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Some((status, headers, end + 4))
}

fn is_chunked(headers: &Headers) -> bool {
    headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked")
    })
}

/// Moves every complete chunk at the front of `raw` into `out`; true once the last (empty)
/// chunk was seen.
fn take_chunks(raw: &mut Vec<u8>, out: &mut Vec<u8>) -> bool {
    loop {
        let Some(line_end) = raw.windows(2).position(|w| w == b"\r\n") else {
            return false;
        };
        let size_text = std::str::from_utf8(&raw[..line_end]).unwrap();
        let size_text = size_text.split(';').next().unwrap().trim();
        let size = usize::from_str_radix(size_text, 16)
            .unwrap_or_else(|_| panic!("bad chunk size line {size_text:?}"));
        if size == 0 {
            raw.clear();
            return true;
        }
        let start = line_end + 2;
        if raw.len() < start + size + 2 {
            return false;
        }
        out.extend_from_slice(&raw[start..start + size]);
        assert_eq!(&raw[start + size..start + size + 2], b"\r\n", "chunk end");
        raw.drain(..start + size + 2);
    }
}

fn parse_response(raw: &[u8]) -> Option<Resp> {
    let (status, headers, at) = parse_head(raw)?;
    let rest = &raw[at..];
    let body = if is_chunked(&headers) {
        let mut pending = rest.to_vec();
        let mut out = Vec::new();
        if !take_chunks(&mut pending, &mut out) {
            return None; // cut off before the last chunk
        }
        out
    } else if let Some(len) = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        if rest.len() < len {
            return None;
        }
        rest[..len].to_vec()
    } else {
        rest.to_vec()
    };
    Some(Resp {
        status,
        headers,
        body,
    })
}

// ---------------------------------------------------------------------------------------
// Server-Sent Events, read incrementally
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct SseEvent {
    event: String,
    data: String,
    id: Option<String>,
}

struct Sse {
    stream: TcpStream,
    chunked: bool,
    /// Bytes received and not yet de-chunked.
    raw: Vec<u8>,
    /// The event-stream text received and not yet parsed into events.
    text: Vec<u8>,
    ended: bool,
}

impl Sse {
    /// Opens the stream; returns the response head and the reader.
    async fn open(addr: SocketAddr, path: &str) -> (u16, Headers, Sse) {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\
             Connection: close\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        let deadline = Instant::now() + Duration::from_secs(10);
        let (status, headers, at) = loop {
            if let Some(h) = parse_head(&raw) {
                break h;
            }
            let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
                .await
                .expect("no SSE response head within 10 s")
                .unwrap();
            assert!(n > 0, "SSE connection closed before the response head");
            raw.extend_from_slice(&buf[..n]);
        };
        raw.drain(..at);
        let chunked = is_chunked(&headers);
        let mut sse = Sse {
            stream,
            chunked,
            raw: Vec::new(),
            text: Vec::new(),
            ended: false,
        };
        sse.feed(&raw);
        (status, headers, sse)
    }

    fn feed(&mut self, bytes: &[u8]) {
        if self.chunked {
            self.raw.extend_from_slice(bytes);
            if take_chunks(&mut self.raw, &mut self.text) {
                self.ended = true;
            }
        } else {
            self.text.extend_from_slice(bytes);
        }
    }

    /// The next event with a name (comments and keep-alives skipped), or `None` at the
    /// deadline or the end of the stream.
    async fn next(&mut self, deadline: Instant) -> Option<SseEvent> {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            while let Some(block) = self.take_block() {
                if let Some(e) = parse_event(&block) {
                    return Some(e);
                }
            }
            if self.ended {
                return None;
            }
            match tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await {
                Err(_) => return None,
                Ok(Ok(0) | Err(_)) => {
                    self.ended = true;
                }
                Ok(Ok(n)) => {
                    let bytes = buf[..n].to_vec();
                    self.feed(&bytes);
                }
            }
        }
    }

    /// One event block (up to a blank line), without its terminator.
    fn take_block(&mut self) -> Option<String> {
        let lf = self.text.windows(2).position(|w| w == b"\n\n");
        let crlf = self.text.windows(3).position(|w| w == b"\n\r\n");
        let (at, len) = match (lf, crlf) {
            (Some(a), Some(b)) if b < a => (b, 3),
            (Some(a), _) => (a, 2),
            (None, Some(b)) => (b, 3),
            (None, None) => return None,
        };
        let block = String::from_utf8(self.text[..at].to_vec()).unwrap();
        self.text.drain(..at + len);
        Some(block)
    }
}

fn parse_event(block: &str) -> Option<SseEvent> {
    let mut event = None;
    let mut data: Vec<&str> = Vec::new();
    let mut id = None;
    for line in block.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() || line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => event = Some(value.to_owned()),
            "data" => data.push(value),
            "id" => id = Some(value.to_owned()),
            _ => {}
        }
    }
    if event.is_none() && data.is_empty() {
        return None;
    }
    Some(SseEvent {
        event: event.unwrap_or_else(|| "message".into()),
        data: data.join("\n"),
        id,
    })
}

// ---------------------------------------------------------------------------------------
// Login as a browser does it
// ---------------------------------------------------------------------------------------

struct Session {
    token: String,
    user: Value,
}

/// The legacy password step and SRP enrolment with a random x and salt; returns x.
async fn enrol(stack: &Stack, email: &str, password: &str) -> Vec<u8> {
    let r = stack
        .post(
            "/api/auth/login",
            None,
            &json!({"email": email, "password": password}),
        )
        .await;
    assert_eq!(r.status, 200, "legacy login of {email}: {}", r.text());
    let v = r.json();
    assert_eq!(v["status"], "enrolment_required", "{v}");
    let ticket = v["enrolment_ticket"].as_str().unwrap().to_owned();
    let mut x = vec![0u8; 32];
    rand::fill(&mut x[..]);
    let mut salt = vec![0u8; 32];
    rand::fill(&mut salt[..]);
    let verifier = drover_auth::srp::verifier(&x);
    let r = stack
        .post(
            "/api/auth/srp/enrol",
            None,
            &json!({
                "enrolment_ticket": ticket,
                "salt": drover_auth::hex::encode(&salt),
                "verifier": drover_auth::hex::encode(&verifier),
            }),
        )
        .await;
    assert_eq!(r.status, 204, "enrolment of {email}: {}", r.text());
    // Enrolled: the password step is over for this account.
    let r = stack
        .post(
            "/api/auth/login",
            None,
            &json!({"email": email, "password": password}),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(r.error_code(), "srp_required");
    x
}

/// SRP-6a init → (session id, salt, B) and the client; panics unless init answers 200.
async fn srp_init(stack: &Stack, email: &str, x: &[u8]) -> (Value, drover_auth::srp::SrpClient) {
    let client = drover_auth::srp::SrpClient::new(&email.to_lowercase(), x).unwrap();
    let r = stack
        .post(
            "/api/auth/srp/init",
            None,
            &json!({"email": email, "a": drover_auth::hex::encode(client.a_pub())}),
        )
        .await;
    assert_eq!(r.status, 200, "srp init: {}", r.text());
    (r.json(), client)
}

/// SRP-6a login; checks the server's M2 before trusting the session.
async fn srp_login(stack: &Stack, email: &str, x: &[u8]) -> Session {
    let (init, client) = srp_init(stack, email, x).await;
    let salt = drover_auth::hex::decode(init["salt"].as_str().unwrap()).unwrap();
    let b = drover_auth::hex::decode(init["b"].as_str().unwrap()).unwrap();
    let proof = client.respond(&salt, &b).unwrap();
    let r = stack
        .post(
            "/api/auth/srp/verify",
            None,
            &json!({"session_id": init["session_id"], "m1": drover_auth::hex::encode(&proof.m1)}),
        )
        .await;
    assert_eq!(r.status, 200, "srp verify: {}", r.text());
    let v = r.json();
    let m2 = drover_auth::hex::decode(v["m2"].as_str().unwrap()).unwrap();
    assert!(
        proof.verify_m2(&m2),
        "the server's proof M2 does not verify"
    );
    assert_eq!(v["token_type"], "Bearer");
    Session {
        token: v["access_token"].as_str().unwrap().to_owned(),
        user: v["user"].clone(),
    }
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_runs_a_command_on_a_live_device_through_the_api() {
    let stack = Stack::start(5).await;
    stack.wait_ready().await;
    let admin = stack.admin().await;

    // The demo tenant is listed, under the seeded id.
    let r = stack.get("/api/tenants", Some(&admin.token)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let tenants = r.json();
    let t = tenants
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "api-e2e")
        .unwrap_or_else(|| panic!("demo tenant not listed: {tenants}"))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(Some(&t), stack.tenant.as_ref());

    // Every seeded device comes online and the list says so.
    let devices = stack.wait_online(&admin.token, 5).await;
    let seeded: Vec<String> = (0..5).map(|i| stack.fleet().ip(i).to_string()).collect();
    for d in &devices {
        assert!(
            seeded.contains(&d["address"].as_str().unwrap().to_owned()),
            "unexpected device {d}"
        );
        assert_eq!(d["status"], "online");
    }
    let device = &devices[0];
    let d = device["id"].as_str().unwrap().to_owned();
    let address = device["address"].as_str().unwrap().to_owned();
    let commands = format!("/api/tenants/{t}/devices/{d}/commands");

    // The identity the device reports through drover is the one the simulator holds.
    let identity = stack.sim_device(&address).await["identity"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!identity.is_empty());
    let idx = stack.fleet().index_of(address.parse().unwrap()).unwrap();
    let served = |path: &str| {
        let stats = stack.fleet().stats(idx);
        (
            stats.commands_served.get(path).copied().unwrap_or(0),
            stats.logins_ok,
        )
    };
    let (identity_prints, logins) = served("/system/identity/print");
    let print_identity = json!({"path": "/system/identity", "action": "print"});
    let mut names = Vec::new();
    for _ in 0..2 {
        let r = stack
            .post(&commands, Some(&admin.token), &print_identity)
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let rows = r.json()["rows"].as_array().unwrap().clone();
        assert_eq!(rows.len(), 1, "{rows:?}");
        names.push(rows[0]["name"].as_str().unwrap().to_owned());
    }
    assert_eq!(names, vec![identity.clone(), identity.clone()]);
    // They ran on the device, over the actor's existing session (no new login).
    let (after, logins_after) = served("/system/identity/print");
    assert!(after >= identity_prints + 2, "{identity_prints} -> {after}");
    assert_eq!((logins, logins_after), (1, 1));

    // Print filters reach the device: only ether interfaces come back.
    let all = stack
        .post(
            &commands,
            Some(&admin.token),
            &json!({"path": "/interface", "action": "print"}),
        )
        .await;
    assert_eq!(all.status, 200, "{}", all.text());
    let all_rows = all.json()["rows"].as_array().unwrap().clone();
    assert!(
        all_rows.iter().any(|r| r["type"] != "ether"),
        "the device should have non-ether interfaces for the filter to matter: {all_rows:?}"
    );
    let ether = stack
        .post(
            &commands,
            Some(&admin.token),
            &json!({"path": "/interface", "action": "print", "filters": {"type": "ether"}}),
        )
        .await;
    assert_eq!(ether.status, 200, "{}", ether.text());
    let ether_rows = ether.json()["rows"].as_array().unwrap().clone();
    assert!(!ether_rows.is_empty());
    assert!(
        ether_rows.iter().all(|r| r["type"] == "ether"),
        "{ether_rows:?}"
    );
    assert_eq!(
        ether_rows.len(),
        all_rows.iter().filter(|r| r["type"] == "ether").count()
    );

    // A dangerous command is refused before it reaches the device.
    let r = stack
        .post(
            &commands,
            Some(&admin.token),
            &json!({"path": "/system/reboot", "action": "print"}),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.error_code(), "forbidden");
    let stats = stack.fleet().stats(idx);
    assert_eq!(stats.reboots, 0, "the blocked reboot reached the device");
    assert!(
        !stats
            .commands_served
            .keys()
            .any(|k| k.starts_with("/system/reboot")),
        "{:?}",
        stats.commands_served
    );

    // A viewer sees the fleet but cannot run commands.
    let viewer = stack.user(&admin, &t, "viewer").await;
    let r = stack
        .post(&commands, Some(&viewer.token), &print_identity)
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.error_code(), "forbidden");
    let r = stack
        .get(&format!("/api/tenants/{t}/devices"), Some(&viewer.token))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["total"], 5);

    // The audit log has the commands, by the admin, on that device, with outcome ok.
    let r = stack
        .get(
            &format!("/api/tenants/{t}/audit?action=config_print"),
            Some(&admin.token),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let items = r.json()["items"].as_array().unwrap().clone();
    let ours: Vec<&Value> = items
        .iter()
        .filter(|a| a["device_id"] == d.as_str())
        .collect();
    // Two identity prints and two interface prints; the refused ones are not commands run.
    assert_eq!(ours.len(), 4, "{items:?}");
    for a in &ours {
        assert_eq!(a["action"], "config_print");
        assert_eq!(a["actor_id"], admin.user["id"], "{a}");
        assert_eq!(a["details"]["outcome"], "ok", "{a}");
    }
    assert!(
        ours.iter()
            .any(|a| a["details"]["command"] == "/system/identity/print"),
        "{ours:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_streams_live_device_events_from_the_running_node() {
    let stack = Stack::start(5).await;
    stack.wait_ready().await;
    let admin = stack.admin().await;
    let t = stack.tenant.clone().unwrap();
    let devices = stack.wait_online(&admin.token, 5).await;

    let r = stack
        .post(
            "/api/auth/sse-ticket",
            Some(&admin.token),
            &json!({"tenant_id": t}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let ticket = r.json()["ticket"].as_str().unwrap().to_owned();
    let path = format!("/api/sse/subscribe?tenant_id={t}&ticket={ticket}");
    let (status, headers, mut sse) = Sse::open(stack.api, &path).await;
    assert_eq!(status, 200);
    assert!(
        headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("content-type")
                && v.starts_with("text/event-stream")),
        "{headers:?}"
    );
    let mut ids: Vec<String> = Vec::new();
    let mut seen = |e: &SseEvent| {
        if let Some(id) = &e.id {
            ids.push(id.clone());
        }
    };

    // Live events of this tenant arrive.
    let deadline = Instant::now() + Duration::from_secs(20);
    let first = loop {
        let e = sse
            .next(deadline)
            .await
            .expect("no metrics.sample or device.status event within 20 s");
        seen(&e);
        if e.event == "metrics.sample" || e.event == "device.status" {
            break e;
        }
    };
    let data: Value = serde_json::from_str(&first.data).unwrap();
    assert_eq!(data["tenant_id"], t.as_str(), "{data}");
    assert_eq!(data["version"], 1, "{data}");

    // A used ticket does not open a second stream.
    let r = request(stack.api, "GET", &path, None, None).await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.error_code(), "invalid_ticket");

    // Pull one device's plug in the simulator: connections dropped, new ones refused.
    let victim = &devices[0];
    let victim_id = victim["id"].as_str().unwrap().to_owned();
    let address = victim["address"].as_str().unwrap().to_owned();
    let r = request(
        stack.control(),
        "POST",
        "/faults",
        None,
        Some(
            json!({"target": {"device": address}, "fault": {"kind": "drop", "after_replies": 0}})
                .to_string()
                .as_bytes(),
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["affected"], 1);

    // The stream reports it going down, then offline.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut statuses = Vec::new();
    let offline = loop {
        let Some(e) = sse.next(deadline).await else {
            panic!("no offline device.status for {victim_id} within 30 s; saw {statuses:?}");
        };
        seen(&e);
        if e.event != "device.status" {
            continue;
        }
        let v: Value = serde_json::from_str(&e.data).unwrap();
        assert_eq!(v["tenant_id"], t.as_str(), "{v}");
        if v["device_id"] != victim_id.as_str() {
            continue;
        }
        assert!(e.id.is_some(), "device.status without id: {e:?}");
        statuses.push(v["status"].as_str().unwrap().to_owned());
        if v["status"] == "offline" {
            break v;
        }
        assert_eq!(v["status"], "degraded", "{v}");
    };
    assert!(offline["reason"].as_str().is_some_and(|r| !r.is_empty()));
    assert_eq!(offline["previous_status"], "degraded", "{offline}");

    // `id:` lines are the stream sequence: integers, increasing.
    let ids: Vec<u64> = ids
        .iter()
        .map(|i| {
            i.parse()
                .unwrap_or_else(|_| panic!("id {i:?} is no integer"))
        })
        .collect();
    assert!(ids.len() >= 2, "{ids:?}");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    // The fleet list agrees.
    let r = stack
        .get(
            &format!("/api/tenants/{t}/devices/{victim_id}"),
            Some(&admin.token),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let listed = eventually!(Duration::from_secs(10), {
        stack
            .get(
                &format!("/api/tenants/{t}/devices/{victim_id}"),
                Some(&admin.token),
            )
            .await
            .json()["status"]
            == "offline"
    });
    assert!(listed, "the device list never showed the device offline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_login_and_hostile_input_are_refused_by_the_real_server() {
    let stack = Stack::start(0).await;
    stack.wait_ready().await;

    // A wrong proof is refused like a wrong password (the admin's real salt and B).
    let x = enrol(&stack, &stack.admin_email, &stack.admin_password).await;
    let (init, _) = srp_init(&stack, &stack.admin_email, &x).await;
    let r = stack
        .post(
            "/api/auth/srp/verify",
            None,
            &json!({"session_id": init["session_id"], "m1": "ab".repeat(32)}),
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.error_code(), "invalid_credentials");
    // The SRP session was single use: a second try on it is refused the same way.
    let r = stack
        .post(
            "/api/auth/srp/verify",
            None,
            &json!({"session_id": init["session_id"], "m1": "ab".repeat(32)}),
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.error_code(), "invalid_credentials");
    // A wrong x (wrong password or Secret Key) fails the same way.
    let mut wrong_x = x.clone();
    wrong_x[0] ^= 1;
    let (init, client) = srp_init(&stack, &stack.admin_email, &wrong_x).await;
    let salt = drover_auth::hex::decode(init["salt"].as_str().unwrap()).unwrap();
    let b = drover_auth::hex::decode(init["b"].as_str().unwrap()).unwrap();
    let proof = client.respond(&salt, &b).unwrap();
    let r = stack
        .post(
            "/api/auth/srp/verify",
            None,
            &json!({"session_id": init["session_id"], "m1": drover_auth::hex::encode(&proof.m1)}),
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.error_code(), "invalid_credentials");
    let admin = srp_login(&stack, &stack.admin_email, &x).await;

    // 2 MB bodies: declared with Content-Length, and streamed chunked.
    let big = vec![b'a'; 2 * 1024 * 1024];
    let r = request(stack.api, "POST", "/api/auth/login", None, Some(&big)).await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(r.error_code(), "payload_too_large");
    let mut bytes = request_head(
        stack.api,
        "POST",
        "/api/auth/login",
        None,
        "Transfer-Encoding: chunked",
    )
    .into_bytes();
    for piece in big.chunks(64 * 1024) {
        bytes.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        bytes.extend_from_slice(piece);
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"0\r\n\r\n");
    let r = exchange(stack.api, bytes).await.expect("no answer");
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(r.error_code(), "payload_too_large");

    // Malformed JSON: 400 with the documented error body, public and authenticated.
    let r = request(
        stack.api,
        "POST",
        "/api/auth/login",
        None,
        Some(br#"{"email": "a@example.com", "password": "#),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.error_code(), "bad_request");
    let r = request(
        stack.api,
        "POST",
        "/api/tenants",
        Some(&admin.token),
        Some(b"{\"name\": tenant}"),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.error_code(), "bad_request");

    // A tenant of our own, with its admin.
    let r = stack
        .post(
            "/api/tenants",
            Some(&admin.token),
            &json!({"name": format!("hostile-{:x}", rand::random::<u32>())}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let t = r.json()["id"].as_str().unwrap().to_owned();
    let tenant_admin = stack.user(&admin, &t, "tenant_admin").await;
    let r = stack
        .get(
            &format!("/api/tenants/{t}/devices"),
            Some(&tenant_admin.token),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());

    // Another tenant's id: 404, whether or not that tenant exists, never 403.
    let other = uuid::Uuid::new_v4();
    for path in [
        format!("/api/tenants/{other}"),
        format!("/api/tenants/{other}/devices"),
        format!("/api/tenants/{other}/users"),
        format!("/api/tenants/{other}/audit"),
    ] {
        let r = stack.get(&path, Some(&tenant_admin.token)).await;
        assert_eq!(r.status, 404, "{path}: {}", r.text());
        assert_eq!(r.error_code(), "not_found", "{path}");
    }
    let r = stack
        .post(
            &format!(
                "/api/tenants/{other}/devices/{}/commands",
                uuid::Uuid::new_v4()
            ),
            Some(&tenant_admin.token),
            &json!({"path": "/system/identity", "action": "print"}),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.error_code(), "not_found");
    // The super_admin may see every tenant, but one that does not exist is still 404.
    let r = stack
        .get(&format!("/api/tenants/{other}"), Some(&admin.token))
        .await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.error_code(), "not_found");

    // For a tenant id that does not exist, even the super_admin (who may act in every
    // tenant) must get 404 and nothing may be created.
    let r = stack
        .post(
            &format!("/api/tenants/{other}/groups"),
            Some(&admin.token),
            &json!({"name": "ghost"}),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.error_code(), "not_found");
    assert!(!r.text().contains("foreign key"), "no internals in bodies");
    // Reads too: a mistyped tenant id is not an empty tenant.
    for path in ["devices", "users", "audit", "fleet/summary"] {
        let r = stack
            .get(&format!("/api/tenants/{other}/{path}"), Some(&admin.token))
            .await;
        assert_eq!(r.status, 404, "{path}: {}", r.text());
    }
    let r = stack.get("/api/tenants", Some(&admin.token)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let listed = r.json();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["id"], t.as_str());

    // No token, or a forged one: 401.
    let r = stack.get(&format!("/api/tenants/{t}/devices"), None).await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.error_code(), "unauthenticated");
    let mut forged: Vec<char> = admin.token.chars().collect();
    let mid = forged.len() / 2;
    forged[mid] = if forged[mid] == 'A' { 'B' } else { 'A' };
    let forged: String = forged.into_iter().collect();
    let r = stack
        .get(&format!("/api/tenants/{t}/devices"), Some(&forged))
        .await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.error_code(), "unauthenticated");
}

//! One API session on an accepted (and, for API-SSL, TLS-wrapped) connection: framing with
//! [`SentenceDecoder`], login (both flows), concurrent tagged commands, `/cancel`, streams,
//! and the fault behaviours that act on a live connection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use routeros_proto::login::{challenge_response, encode_hex};
use routeros_proto::{
    Attributes, Command, Limits, ProtocolError, Reply, Sentence, SentenceDecoder, TrapCategory,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use crate::commands::{self, MonitorTarget, Outcome, Stream};
use crate::device::{Device, lock};
use crate::fault::{GarbageKind, StallMode};
use crate::menus;
use crate::stats::Counters;
use crate::stop::StopSignal;

/// Pre-login commands other than `/login` and `/quit` answered with a "not logged in" trap
/// before the session is closed with `!fatal not logged in`.
pub(crate) const PRE_LOGIN_STRIKES: u32 = 3;
/// Failed logins on one connection before it is closed.
pub(crate) const MAX_FAILED_LOGINS: u32 = 5;

/// What the writer task is asked to do.
#[derive(Debug)]
enum Out {
    /// One encoded reply sentence.
    Sentence(Vec<u8>),
    /// Flush, close the connection cleanly, and stop the session.
    Close,
}

/// Sends replies for one command, adding its tag to each.
#[derive(Debug, Clone)]
struct Replier {
    tx: mpsc::Sender<Out>,
    tag: Option<String>,
}

impl Replier {
    async fn send(&self, reply: Reply) -> bool {
        let mut bytes = Vec::with_capacity(64);
        reply.with_tag(self.tag.clone()).encode(&mut bytes);
        self.tx.send(Out::Sentence(bytes)).await.is_ok()
    }

    async fn send_all(&self, replies: Vec<Reply>) -> bool {
        for r in replies {
            if !self.send(r).await {
                return false;
            }
        }
        true
    }
}

/// Sent to a running command by `/cancel`: the command stops, acknowledges, and waits for
/// `resume` before sending its final sentences (so the cancel's `!done` comes first).
#[derive(Debug)]
struct CancelRequest {
    ack: oneshot::Sender<()>,
    resume: oneshot::Receiver<()>,
}

#[derive(Debug)]
struct Running {
    tag: Option<String>,
    cancel: oneshot::Sender<CancelRequest>,
}

type Registry = Arc<Mutex<HashMap<u64, Running>>>;

/// Reads and throws away everything until EOF or `stop` (a stalled device).
pub(crate) async fn discard<S: AsyncRead + Unpin>(mut stream: S, stop: &StopSignal) {
    let mut buf = vec![0u8; 4096];
    loop {
        tokio::select! {
            _ = stop.stopped() => return,
            r = stream.read(&mut buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            },
        }
    }
}

/// Serves one connection until it closes, the device drops it, or the fleet stops.
pub(crate) async fn serve<S>(dev: Arc<Device>, stream: S, stop: StopSignal, serial: u64)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if dev.faults().stall == Some(StallMode::AfterTls) {
        discard(stream, &stop).await;
        return;
    }
    let (reader, writer) = tokio::io::split(stream);
    let (tx, rx) = mpsc::channel::<Out>(512);
    let writer_task = tokio::spawn(write_loop(dev.clone(), writer, rx, stop.clone()));
    let rng = SmallRng::seed_from_u64(dev.hash(0x5E55 ^ serial));
    let mut session = Session {
        dev,
        tx,
        stop: stop.clone(),
        logged_in: false,
        challenge: None,
        strikes: 0,
        failed_logins: 0,
        registry: Arc::new(Mutex::new(HashMap::new())),
        next_id: 0,
        rng,
    };
    session.read_loop(reader).await;
    drop(session);
    let _ = writer_task.await;
    stop.stop();
}

struct Session {
    dev: Arc<Device>,
    tx: mpsc::Sender<Out>,
    stop: StopSignal,
    logged_in: bool,
    challenge: Option<[u8; 16]>,
    strikes: u32,
    failed_logins: u32,
    registry: Registry,
    next_id: u64,
    rng: SmallRng,
}

/// Whether the session goes on after a sentence.
enum Flow {
    Continue,
    Close,
}

impl Session {
    async fn read_loop<R: AsyncRead + Unpin>(&mut self, mut reader: R) {
        let mut decoder = SentenceDecoder::new(Limits::PRE_LOGIN);
        let mut buf: Vec<u8> = Vec::with_capacity(1024);
        let mut chunk = vec![0u8; 4 * 1024];
        loop {
            let n = tokio::select! {
                _ = self.stop.stopped() => return,
                r = reader.read(&mut chunk) => match r {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                },
            };
            buf.extend_from_slice(&chunk[..n]);
            loop {
                match decoder.decode(&buf) {
                    Ok(Some((sentence, used))) => {
                        buf.drain(..used);
                        if let Flow::Close = self.on_sentence(&sentence).await {
                            return;
                        }
                        if self.logged_in {
                            decoder.set_limits(Limits::SERVER);
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        self.fatal(&format!("malformed input: {e}")).await;
                        return;
                    }
                }
            }
            // Only one incomplete sentence may be pending; a buffer larger than the sentence
            // limit can only be a flood (e.g. endless empty sentences, which the decoder
            // skips without consuming).
            if buf.len() > decoder.limits().max_sentence_len + chunk.len() {
                self.fatal("sentence too long").await;
                return;
            }
        }
    }

    /// Sends `!fatal <reason>` and asks the writer to close.
    async fn fatal(&self, reason: &str) {
        let mut bytes = Vec::new();
        Reply::fatal(reason).encode(&mut bytes);
        let _ = self.tx.send(Out::Sentence(bytes)).await;
        let _ = self.tx.send(Out::Close).await;
    }

    fn replier(&self, tag: Option<String>) -> Replier {
        Replier {
            tx: self.tx.clone(),
            tag,
        }
    }

    async fn on_sentence(&mut self, sentence: &Sentence) -> Flow {
        match self.dev.faults().stall {
            Some(StallMode::AfterTls) => return Flow::Continue,
            Some(StallMode::AfterLogin) if self.logged_in => return Flow::Continue,
            _ => {}
        }
        let cmd = match Command::parse(sentence) {
            Ok(c) => c,
            Err(ProtocolError::Query(e)) => {
                let r = self.replier(tag_of(sentence));
                r.send_all(vec![
                    Reply::trap(
                        Some(TrapCategory::ArgumentValue),
                        format!("invalid query: {e}"),
                    ),
                    Reply::done(),
                ])
                .await;
                return Flow::Continue;
            }
            Err(e) => {
                self.fatal(&format!("malformed sentence: {e}")).await;
                return Flow::Close;
            }
        };
        self.dev.counters.command(commands::counter_key(&cmd.path));
        match cmd.path.as_str() {
            "/quit" => {
                self.fatal("session terminated on request").await;
                Flow::Close
            }
            "/login" => self.login(&cmd).await,
            _ if !self.logged_in => {
                self.strikes += 1;
                let r = self.replier(cmd.tag.clone());
                r.send_all(vec![Reply::trap(None, "not logged in"), Reply::done()])
                    .await;
                if self.strikes >= PRE_LOGIN_STRIKES {
                    self.fatal("not logged in").await;
                    return Flow::Close;
                }
                Flow::Continue
            }
            "/cancel" => {
                self.cancel(cmd);
                Flow::Continue
            }
            _ => {
                self.spawn_command(cmd);
                Flow::Continue
            }
        }
    }

    async fn delay(&mut self) {
        if let Some(latency) = self.dev.faults().latency {
            let d = latency.sample(&mut self.rng);
            tokio::select! {
                _ = tokio::time::sleep(d) => {}
                _ = self.stop.stopped() => {}
            }
        }
    }

    async fn login(&mut self, cmd: &Command) -> Flow {
        self.delay().await;
        let r = self.replier(cmd.tag.clone());
        if self.logged_in {
            r.send(Reply::done()).await;
            return Flow::Continue;
        }
        let cfg = self.dev.config();
        let name = cmd.attributes.get("name");
        let password = cmd.attributes.get_bytes("password");
        let response = cmd.attributes.get("response");
        let refuse = self.dev.faults().refuse_login;
        let ok = match (name, password, response) {
            // Legacy step 2: the answer to our challenge.
            (Some(name), _, Some(response)) => {
                let expected = self
                    .challenge
                    .take()
                    .and_then(|c| challenge_response(cfg.password.as_bytes(), &encode_hex(&c)));
                let ok = !refuse
                    && name == cfg.username
                    && expected.is_some_and(|e| e.eq_ignore_ascii_case(response));
                if !ok {
                    return self.login_failed(&r, "cannot log in").await;
                }
                true
            }
            // Modern login, or a legacy device answering it with a challenge.
            (Some(name), Some(password), None) => {
                if self.dev.legacy_login() {
                    let challenge = self.new_challenge();
                    r.send(Reply::done_ret(encode_hex(&challenge))).await;
                    return Flow::Continue;
                }
                let ok = !refuse && name == cfg.username && password == cfg.password.as_bytes();
                if !ok {
                    return self
                        .login_failed(&r, "invalid user name or password (6)")
                        .await;
                }
                true
            }
            // Legacy step 1: a bare `/login` asks for a challenge.
            (None, None, None) => {
                let challenge = self.new_challenge();
                r.send(Reply::done_ret(encode_hex(&challenge))).await;
                return Flow::Continue;
            }
            _ => {
                return self
                    .login_failed(&r, "invalid user name or password (6)")
                    .await;
            }
        };
        if ok {
            self.logged_in = true;
            Counters::bump(&self.dev.counters.logins_ok);
            r.send(Reply::done()).await;
        }
        Flow::Continue
    }

    fn new_challenge(&mut self) -> [u8; 16] {
        let mut c = [0u8; 16];
        self.rng.fill(&mut c);
        self.challenge = Some(c);
        c
    }

    async fn login_failed(&mut self, r: &Replier, message: &str) -> Flow {
        Counters::bump(&self.dev.counters.logins_failed);
        self.failed_logins += 1;
        r.send_all(vec![Reply::trap(None, message), Reply::done()])
            .await;
        if self.failed_logins >= MAX_FAILED_LOGINS {
            self.fatal("too many failed logins").await;
            return Flow::Close;
        }
        Flow::Continue
    }

    fn spawn_command(&mut self, cmd: Command) {
        let id = self.next_id;
        self.next_id += 1;
        let (cancel_tx, cancel_rx) = oneshot::channel();
        lock(&self.registry).insert(
            id,
            Running {
                tag: cmd.tag.clone(),
                cancel: cancel_tx,
            },
        );
        let latency = self.dev.faults().latency.map(|l| l.sample(&mut self.rng));
        let task = CommandTask {
            dev: self.dev.clone(),
            replier: self.replier(cmd.tag.clone()),
            stop: self.stop.child(),
            rows_sent: Arc::new(AtomicU64::new(0)),
        };
        let registry = self.registry.clone();
        tokio::spawn(async move {
            task.run(cmd, latency, cancel_rx).await;
            lock(&registry).remove(&id);
        });
    }

    fn cancel(&mut self, cmd: Command) {
        let wanted = cmd.attributes.get("tag").map(str::to_owned);
        let targets: Vec<Running> = {
            let mut reg = lock(&self.registry);
            let ids: Vec<u64> = reg
                .iter()
                .filter(|(_, r)| wanted.is_none() || r.tag == wanted)
                .map(|(id, _)| *id)
                .collect();
            ids.into_iter().filter_map(|id| reg.remove(&id)).collect()
        };
        let replier = self.replier(cmd.tag.clone());
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let mut resumes = Vec::new();
            for target in targets {
                let (ack_tx, ack_rx) = oneshot::channel();
                let (resume_tx, resume_rx) = oneshot::channel();
                let request = CancelRequest {
                    ack: ack_tx,
                    resume: resume_rx,
                };
                if target.cancel.send(request).is_err() || ack_rx.await.is_err() {
                    continue; // it finished on its own meanwhile
                }
                let r = Replier {
                    tx: tx.clone(),
                    tag: target.tag,
                };
                r.send(Reply::trap(Some(TrapCategory::Interrupted), "interrupted"))
                    .await;
                resumes.push(resume_tx);
            }
            replier.send(Reply::done()).await;
            for r in resumes {
                let _ = r.send(());
            }
        });
    }
}

/// The `.tag` of a sentence that could not be parsed as a command, if any.
fn tag_of(sentence: &Sentence) -> Option<String> {
    sentence.words.iter().find_map(|w| {
        let t = w.strip_prefix(b".tag=")?;
        let t = std::str::from_utf8(t).ok()?;
        (!t.is_empty()).then(|| t.to_owned())
    })
}

struct CommandTask {
    dev: Arc<Device>,
    replier: Replier,
    stop: StopSignal,
    rows_sent: Arc<AtomicU64>,
}

impl CommandTask {
    async fn run(
        self,
        cmd: Command,
        latency: Option<Duration>,
        cancel: oneshot::Receiver<CancelRequest>,
    ) {
        let streaming = std::sync::atomic::AtomicBool::new(false);
        let work = self.work(cmd, latency, &streaming);
        tokio::select! {
            _ = work => {}
            _ = self.stop.stopped() => {}
            request = cancel => {
                let Ok(request) = request else { return };
                let _ = request.ack.send(());
                let _ = request.resume.await;
                if streaming.load(Ordering::Relaxed)
                    && self.rows_sent.load(Ordering::Relaxed) == 0
                    && self.dev.fleet.sends_empty
                {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    self.replier.send(Reply::empty()).await;
                }
                self.replier.send(Reply::done()).await;
            }
        }
    }

    async fn row(&self, attributes: Attributes) -> bool {
        self.rows_sent.fetch_add(1, Ordering::Relaxed);
        self.replier.send(Reply::re(attributes)).await
    }

    async fn work(
        &self,
        cmd: Command,
        latency: Option<Duration>,
        streaming: &std::sync::atomic::AtomicBool,
    ) {
        if let Some(d) = latency {
            tokio::time::sleep(d).await;
        }
        match commands::execute(&self.dev, &cmd) {
            Outcome::Replies(replies) => {
                self.replier.send_all(replies).await;
            }
            Outcome::Reboot => {
                self.replier.send(Reply::done()).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                self.dev.reboot();
            }
            Outcome::Stream(stream) => {
                streaming.store(true, Ordering::Relaxed);
                self.stream(stream).await;
            }
        }
    }

    async fn stream(&self, stream: Stream) {
        match stream {
            Stream::Listen {
                menu,
                queries,
                proplist,
            } => {
                let mutable = crate::tables::TableMenu::from_path(menu).is_some()
                    || menu == "/system/identity";
                if !mutable {
                    return std::future::pending().await;
                }
                let mut changes = self.dev.tree().subscribe();
                loop {
                    match changes.recv().await {
                        Ok(change) => {
                            if change.menu != menu {
                                continue;
                            }
                            let dead = change.row.contains(".dead");
                            if !dead && !commands::row_matches(&change.row, &queries) {
                                continue;
                            }
                            let row = if dead {
                                change.row
                            } else {
                                commands::project(change.row, proplist.as_deref())
                            };
                            if !self.row(row).await {
                                return;
                            }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                            return std::future::pending().await;
                        }
                    }
                }
            }
            Stream::Monitor {
                target,
                interval,
                proplist,
            } => {
                let rows = |tick: u64| -> Vec<Attributes> {
                    match &target {
                        MonitorTarget::Traffic(ifaces) => ifaces
                            .iter()
                            .map(|i| menus::monitor_traffic_row(&self.dev, i, tick))
                            .collect(),
                        MonitorTarget::Wifi => vec![menus::wifi_monitor(&self.dev)],
                    }
                };
                if interval.is_zero() {
                    for r in rows(0) {
                        self.row(commands::project(r, proplist.as_deref())).await;
                    }
                    self.replier.send(Reply::done()).await;
                    return;
                }
                let mut ticker = tokio::time::interval(interval);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                for section in 0u64.. {
                    ticker.tick().await;
                    for r in rows(section) {
                        let mut row = Attributes::with_capacity(r.len() + 1);
                        row.push(".section", section.to_string());
                        for (n, v) in r.iter() {
                            row.push(n, v.to_vec());
                        }
                        let row = match &proplist {
                            Some(list) => {
                                let mut keep = list.clone();
                                keep.push(".section".to_owned());
                                commands::project(row, Some(&keep))
                            }
                            None => row,
                        };
                        if !self.row(row).await {
                            return;
                        }
                    }
                }
            }
        }
    }
}

/// Writes replies in order, applying the drop-after-N and garbage faults.
async fn write_loop<W: AsyncWrite + Unpin>(
    dev: Arc<Device>,
    mut writer: W,
    mut rx: mpsc::Receiver<Out>,
    stop: StopSignal,
) {
    let mut sent: u64 = 0;
    loop {
        let msg = tokio::select! {
            _ = stop.stopped() => break,
            m = rx.recv() => m,
        };
        match msg {
            None => {
                let _ = writer.flush().await;
                break;
            }
            Some(Out::Close) => {
                let _ = writer.flush().await;
                let _ = tokio::time::timeout(Duration::from_secs(2), writer.shutdown()).await;
                break;
            }
            Some(Out::Sentence(bytes)) => {
                let faults = dev.faults();
                if let Some(n) = faults.drop_after_replies
                    && sent >= u64::from(n)
                {
                    break;
                }
                if let Some((kind, n)) = faults.garbage
                    && sent >= u64::from(n)
                {
                    let junk: Vec<u8> = match kind {
                        GarbageKind::ControlByte => vec![0xF8, 0xFF, 0xFA, 0xF9],
                        GarbageKind::Random => {
                            let mut rng = SmallRng::seed_from_u64(dev.hash(0x6A4B ^ sent));
                            let mut j = vec![0u8; 64];
                            rng.fill(&mut j[..]);
                            j[0] = 0xF8 | (j[0] & 0x07);
                            j
                        }
                    };
                    let _ = writer.write_all(&junk).await;
                    let _ = writer.flush().await;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    break;
                }
                if writer.write_all(&bytes).await.is_err() {
                    break;
                }
                sent += 1;
                if rx.is_empty() && writer.flush().await.is_err() {
                    break;
                }
            }
        }
    }
    stop.stop();
}

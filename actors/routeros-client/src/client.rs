//! [`Client`]: a logged-in session with many tagged commands in flight and one task that
//! owns the connection: it routes replies by `.tag` and writes outgoing sentences, coalesced.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::sync::{Semaphore, mpsc, oneshot};

use routeros_proto::{Attributes, Command, Reply, ReplyKind, TrapCategory};

use crate::error::Error;
use crate::session::{ConnectOptions, ReadBuffer, SessionInfo, Stream};

/// All the rows and the final `!done` of one command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    /// The `!re` rows in arrival order.
    pub rows: Vec<Attributes>,
    /// Attributes of the `!done` (e.g. `ret`).
    pub done: Attributes,
}

impl Response {
    /// `=ret=` of the `!done`: the new `.id` after `add`, a `:return` value, a count.
    pub fn ret(&self) -> Option<&str> {
        self.done.get("ret")
    }

    pub fn first(&self) -> Option<&Attributes> {
        self.rows.first()
    }
}

/// Counters of one session, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientStats {
    pub commands_sent: u64,
    pub timeouts: u64,
    /// Sentences that matched no command in flight (late, untagged or unknown tags).
    pub sentences_dropped: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct ClientOptions {
    command_timeout: Duration,
    drain_timeout: Duration,
    max_in_flight: usize,
    max_rows: usize,
}

impl ClientOptions {
    pub(crate) fn from_connect_options(o: &ConnectOptions) -> Self {
        Self {
            command_timeout: o.command_timeout,
            drain_timeout: o.drain_timeout,
            max_in_flight: o.max_in_flight.max(1),
            max_rows: o.max_rows.max(1),
        }
    }
}

/// A logged-in RouterOS API session. Cheap to clone; all clones share the session. The
/// connection closes when the last clone is dropped, or on [`Client::close`].
#[derive(Clone)]
pub struct Client {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("peer", &self.handle.info.peer)
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// What the [`Client`] clones share (one allocation per session). When the last clone
/// goes away the session is closed and its task says goodbye to the device and ends.
#[derive(Debug)]
struct Handle {
    shared: Arc<Shared>,
    in_flight: Semaphore,
    info: SessionInfo,
    options: ClientOptions,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.close(Error::Closed);
        self.shared.wake.notify_one();
    }
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Wakes the session task: sentences are waiting in `outgoing`, a command started
    /// draining (it arms the drain timer), or the session was closed (it says goodbye to the
    /// device and ends).
    wake: tokio::sync::Notify,
    next_tag: AtomicU64,
    started: Instant,
    /// Milliseconds since `started` when the last byte arrived.
    last_received_ms: AtomicU64,
    commands_sent: AtomicU64,
    timeouts: AtomicU64,
    sentences_dropped: AtomicU64,
    bytes_received: AtomicU64,
    bytes_sent: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    pending: HashMap<u64, Pending>,
    /// Encoded sentences waiting for the session task to write them (empty, and holding no
    /// memory, between polls).
    outgoing: Vec<u8>,
    closed: Option<Error>,
}

/// A streamed row and the channel of the stream it belongs to.
type StreamRow = (mpsc::Sender<Result<Attributes, Error>>, Attributes);

#[derive(Debug)]
enum Pending {
    Call {
        command: String,
        rows: Vec<Attributes>,
        overflowed: bool,
        trap: Option<(Option<TrapCategory>, String)>,
        reply: oneshot::Sender<Result<Response, Error>>,
    },
    Stream {
        command: String,
        rows: mpsc::Sender<Result<Attributes, Error>>,
        trap: Option<(Option<TrapCategory>, String)>,
    },
    /// Cancelled or abandoned: its trailing sentences are swallowed until its `!done`.
    Draining { since: Instant },
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    fn new() -> Self {
        Self {
            state: Mutex::new(State::default()),
            wake: tokio::sync::Notify::new(),
            next_tag: AtomicU64::new(1),
            started: Instant::now(),
            last_received_ms: AtomicU64::new(0),
            commands_sent: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            sentences_dropped: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
        }
    }

    /// Marks the session closed and fails every command in flight with `error`.
    fn close(&self, error: Error) {
        let pending = {
            let mut state = lock(&self.state);
            if state.closed.is_none() {
                state.closed = Some(error.clone());
            }
            std::mem::take(&mut state.pending)
        };
        for (_, p) in pending {
            match p {
                Pending::Call { reply, .. } => {
                    let _ = reply.send(Err(error.clone()));
                }
                Pending::Stream { rows, .. } => {
                    let _ = rows.try_send(Err(error.clone()));
                }
                Pending::Draining { .. } => {}
            }
        }
    }

    fn closed_error(&self) -> Option<Error> {
        lock(&self.state).closed.clone()
    }

    fn is_closed(&self) -> bool {
        lock(&self.state).closed.is_some()
    }

    fn dropped(&self) {
        self.sentences_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Routes one reply to the command that owns its tag. A streamed row is returned with
    /// its stream's sender, for the caller to deliver.
    fn route(&self, reply: Reply, max_rows: usize) -> Option<StreamRow> {
        if reply.kind == ReplyKind::Fatal {
            let reason = reply
                .fatal_reason
                .unwrap_or_else(|| "session terminated".into());
            self.close(Error::Fatal { reason });
            return None;
        }
        let Some(tag) = reply.tag.as_deref().and_then(|t| t.parse::<u64>().ok()) else {
            self.dropped();
            return None;
        };
        let mut stream_row = None;
        {
            let mut state = lock(&self.state);
            let Some(entry) = state.pending.get_mut(&tag) else {
                drop(state);
                self.dropped();
                return None;
            };
            match (entry, reply.kind) {
                (_, ReplyKind::Empty) => {}
                (Pending::Draining { .. }, ReplyKind::Done) => {
                    state.pending.remove(&tag);
                }
                (Pending::Draining { .. }, _) => {}
                (
                    Pending::Call {
                        rows, overflowed, ..
                    },
                    ReplyKind::Re,
                ) => {
                    if rows.len() < max_rows {
                        rows.push(reply.attributes);
                    } else {
                        *overflowed = true;
                    }
                }
                (Pending::Call { trap, .. } | Pending::Stream { trap, .. }, ReplyKind::Trap) => {
                    let message = reply.message().unwrap_or("trap without message").to_owned();
                    trap.get_or_insert((reply.category(), message));
                }
                (Pending::Stream { rows, .. }, ReplyKind::Re) => {
                    stream_row = Some((rows.clone(), reply.attributes));
                }
                (_, ReplyKind::Done) => {
                    if let Some(entry) = state.pending.remove(&tag) {
                        drop(state);
                        finish(entry, reply.attributes, max_rows);
                    }
                }
                (_, ReplyKind::Fatal) => {} // handled above
            }
        }
        stream_row
    }
}

fn finish(entry: Pending, done: Attributes, max_rows: usize) {
    match entry {
        Pending::Call {
            command,
            rows,
            overflowed,
            trap,
            reply,
        } => {
            let result = match (trap, overflowed) {
                (Some((category, message)), _) => Err(Error::Trap {
                    command,
                    category,
                    message,
                }),
                (None, true) => Err(Error::ReplyTooLarge { command, max_rows }),
                (None, false) => Ok(Response { rows, done }),
            };
            let _ = reply.send(result);
        }
        Pending::Stream {
            command,
            rows,
            trap,
        } => {
            // A stream ended by `/cancel` traps "interrupted": that is completion, not failure.
            if let Some((category, message)) = trap
                && category != Some(TrapCategory::Interrupted)
            {
                let _ = rows.try_send(Err(Error::Trap {
                    command,
                    category,
                    message,
                }));
            }
        }
        Pending::Draining { .. } => {}
    }
}

impl Client {
    pub(crate) fn start(
        stream: Box<dyn Stream>,
        reader: ReadBuffer,
        info: SessionInfo,
        options: ClientOptions,
    ) -> Self {
        let shared = Arc::new(Shared::new());
        // The task ends on its own once the session is closed (by the device, an error,
        // `close`, or the last clone's drop): nothing needs its handle.
        tokio::spawn(run_session(
            shared.clone(),
            stream,
            reader,
            options.max_rows,
            options.drain_timeout,
        ));
        Self {
            handle: Arc::new(Handle {
                shared,
                in_flight: Semaphore::new(options.max_in_flight),
                info,
                options,
            }),
        }
    }

    pub fn info(&self) -> &SessionInfo {
        &self.handle.info
    }

    /// Whether the session has ended (the device closed it, a fatal error, or [`Client::close`]).
    pub fn is_closed(&self) -> bool {
        self.handle.shared.is_closed()
    }

    /// How long since the device last sent anything.
    pub fn idle_for(&self) -> Duration {
        let last =
            Duration::from_millis(self.handle.shared.last_received_ms.load(Ordering::Relaxed));
        self.handle.shared.started.elapsed().saturating_sub(last)
    }

    pub fn stats(&self) -> ClientStats {
        let s = &self.handle.shared;
        ClientStats {
            commands_sent: s.commands_sent.load(Ordering::Relaxed),
            timeouts: s.timeouts.load(Ordering::Relaxed),
            sentences_dropped: s.sentences_dropped.load(Ordering::Relaxed),
            bytes_received: s.bytes_received.load(Ordering::Relaxed),
            bytes_sent: s.bytes_sent.load(Ordering::Relaxed),
        }
    }

    /// Runs one command with the session's default timeout.
    pub async fn execute(&self, command: Command) -> Result<Response, Error> {
        self.execute_with_timeout(command, self.handle.options.command_timeout)
            .await
    }

    /// Runs one command; on timeout it is cancelled on the device and its late replies are
    /// drained, never delivered to another command.
    pub async fn execute_with_timeout(
        &self,
        command: Command,
        timeout: Duration,
    ) -> Result<Response, Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut results = self.execute_all(vec![command], deadline).await;
        results.pop().unwrap_or(Err(Error::Closed))
    }

    /// Sends all `commands` back to back in one write (one round trip) and waits for all of
    /// them, each bounded by the session's default timeout from now.
    pub async fn execute_pipelined(&self, commands: Vec<Command>) -> Vec<Result<Response, Error>> {
        let deadline = tokio::time::Instant::now() + self.handle.options.command_timeout;
        self.execute_all(commands, deadline).await
    }

    /// Like [`Client::execute_pipelined`] with an explicit timeout for the whole batch.
    pub async fn execute_pipelined_with_timeout(
        &self,
        commands: Vec<Command>,
        timeout: Duration,
    ) -> Vec<Result<Response, Error>> {
        self.execute_all(commands, tokio::time::Instant::now() + timeout)
            .await
    }

    async fn execute_all(
        &self,
        commands: Vec<Command>,
        deadline: tokio::time::Instant,
    ) -> Vec<Result<Response, Error>> {
        let n = commands.len();
        let permits = match tokio::time::timeout_at(
            deadline,
            self.handle
                .in_flight
                .acquire_many(n.min(self.handle.options.max_in_flight) as u32),
        )
        .await
        {
            Ok(Ok(p)) => p,
            Ok(Err(_)) => return (0..n).map(|_| Err(Error::Closed)).collect(),
            Err(_) => {
                return commands
                    .iter()
                    .map(|c| {
                        Err(Error::Timeout {
                            command: c.path.clone(),
                            after: Duration::ZERO,
                        })
                    })
                    .collect();
            }
        };
        let mut waiting = Vec::with_capacity(n);
        {
            let mut state = lock(&self.handle.shared.state);
            if let Some(e) = &state.closed {
                return (0..n).map(|_| Err(e.clone())).collect();
            }
            for mut command in commands {
                let tag = self.handle.shared.next_tag.fetch_add(1, Ordering::Relaxed);
                command.tag = Some(tag.to_string());
                command.encode(&mut state.outgoing);
                let (tx, rx) = oneshot::channel();
                state.pending.insert(
                    tag,
                    Pending::Call {
                        command: command.path.clone(),
                        rows: Vec::new(),
                        overflowed: false,
                        trap: None,
                        reply: tx,
                    },
                );
                waiting.push(Waiter {
                    client: self,
                    tag,
                    command: command.path,
                    rx: Some(rx),
                });
            }
        }
        self.handle
            .shared
            .commands_sent
            .fetch_add(n as u64, Ordering::Relaxed);
        self.handle.shared.wake.notify_one();
        let started = Instant::now();
        let mut results = Vec::with_capacity(n);
        for mut w in waiting {
            let result = match w.rx.take() {
                Some(rx) => match tokio::time::timeout_at(deadline, rx).await {
                    Ok(Ok(result)) => result,
                    Ok(Err(_)) => Err(self.handle.shared.closed_error().unwrap_or(Error::Closed)),
                    Err(_) => {
                        self.handle.shared.timeouts.fetch_add(1, Ordering::Relaxed);
                        Err(Error::Timeout {
                            command: w.command.clone(),
                            after: started.elapsed(),
                        })
                    }
                },
                None => Err(Error::Closed),
            };
            results.push(result);
            // Dropping `w` cancels the command if it has not completed.
        }
        drop(permits);
        results
    }

    /// Starts a streaming command (`listen`, `monitor` without `=once=`, `print =follow=`).
    /// Rows arrive on the returned [`RowStream`]; dropping it cancels the command.
    pub async fn stream(&self, mut command: Command) -> Result<RowStream, Error> {
        let tag = self.handle.shared.next_tag.fetch_add(1, Ordering::Relaxed);
        command.tag = Some(tag.to_string());
        let (tx, rx) = mpsc::channel(64);
        {
            let mut state = lock(&self.handle.shared.state);
            if let Some(e) = &state.closed {
                return Err(e.clone());
            }
            state.pending.insert(
                tag,
                Pending::Stream {
                    command: command.path.clone(),
                    rows: tx,
                    trap: None,
                },
            );
            command.encode(&mut state.outgoing);
        }
        self.handle
            .shared
            .commands_sent
            .fetch_add(1, Ordering::Relaxed);
        self.handle.shared.wake.notify_one();
        Ok(RowStream {
            client: self.clone(),
            tag,
            rows: rx,
        })
    }

    /// A cheap command that proves the session is alive.
    pub async fn ping(&self, timeout: Duration) -> Result<(), Error> {
        self.execute_with_timeout(
            Command::new("/system/identity/print").proplist(&["name"]),
            timeout,
        )
        .await
        .map(|_| ())
    }

    /// Ends the session: commands in flight fail with [`Error::Closed`].
    pub fn close(&self) {
        self.handle.shared.close(Error::Closed);
        // The task sees the session closed, ends the TLS session politely and stops.
        self.handle.shared.wake.notify_one();
    }

    /// Stops waiting for `tag`: swallow its remaining replies and ask the device to stop.
    fn abandon(&self, tag: u64) {
        let still_running = {
            let mut state = lock(&self.handle.shared.state);
            match state.pending.get_mut(&tag) {
                Some(entry) => {
                    *entry = Pending::Draining {
                        since: Instant::now(),
                    };
                    true
                }
                None => false,
            }
        };
        if !still_running {
            return;
        }
        let cancel_tag = self.handle.shared.next_tag.fetch_add(1, Ordering::Relaxed);
        {
            let mut state = lock(&self.handle.shared.state);
            state.pending.insert(
                cancel_tag,
                Pending::Draining {
                    since: Instant::now(),
                },
            );
            Command::new("/cancel")
                .attr("tag", tag.to_string())
                .tag(cancel_tag.to_string())
                .encode(&mut state.outgoing);
        }
        // Writes the /cancel and arms the drain timer.
        self.handle.shared.wake.notify_one();
    }
}

/// Waits for one command; dropped before completion, it cancels the command.
struct Waiter<'a> {
    client: &'a Client,
    tag: u64,
    command: String,
    rx: Option<oneshot::Receiver<Result<Response, Error>>>,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let finished = lock(&self.client.handle.shared.state)
            .pending
            .get(&self.tag)
            .is_none_or(|p| matches!(p, Pending::Draining { .. }));
        if !finished {
            self.client.abandon(self.tag);
        }
    }
}

/// Rows of a streaming command. Dropping it sends `/cancel` for the command.
#[derive(Debug)]
pub struct RowStream {
    client: Client,
    tag: u64,
    rows: mpsc::Receiver<Result<Attributes, Error>>,
}

impl RowStream {
    /// The next row; `None` once the command has ended (cancelled, finished or failed after
    /// reporting its error).
    pub async fn next(&mut self) -> Option<Result<Attributes, Error>> {
        self.rows.recv().await
    }
}

impl Drop for RowStream {
    fn drop(&mut self) {
        self.client.abandon(self.tag);
    }
}

/// The session's one task: reads and routes replies, writes what [`Client`]s queue, arms
/// the drain timer while a cancelled command drains, and ends the session when it is closed.
///
/// Reading stops while a write is in progress (the connection has one owner). That write is
/// a few hundred bytes of commands per poll and is bounded by `WRITE_TIMEOUT`, so a device
/// cannot stall the session by refusing to read while it sends.
async fn run_session(
    shared: Arc<Shared>,
    mut stream: Box<dyn Stream>,
    mut buffer: ReadBuffer,
    max_rows: usize,
    drain_timeout: Duration,
) {
    const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
    const GOODBYE_TIMEOUT: Duration = Duration::from_secs(1);
    enum Step {
        Received(Result<Reply, Error>),
        DrainExpired,
        Woken,
    }
    loop {
        let (closed, outgoing, drain_deadline) = {
            let mut state = lock(&shared.state);
            // A timer runs only while a cancelled command drains: an idle session costs no
            // wake-ups (thousands of sessions per node).
            let drain_deadline = state
                .pending
                .values()
                .filter_map(|p| match p {
                    Pending::Draining { since } => Some(*since + drain_timeout),
                    _ => None,
                })
                .min();
            (
                state.closed.is_some(),
                std::mem::take(&mut state.outgoing),
                drain_deadline,
            )
        };
        if closed {
            let _ = tokio::time::timeout(GOODBYE_TIMEOUT, stream.shutdown()).await;
            return;
        }
        if !outgoing.is_empty() {
            let write = async {
                stream.write_all(&outgoing).await?;
                stream.flush().await
            };
            let failure = match tokio::time::timeout(WRITE_TIMEOUT, write).await {
                Ok(Ok(())) => {
                    shared
                        .bytes_sent
                        .fetch_add(outgoing.len() as u64, Ordering::Relaxed);
                    continue;
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("device did not accept data for {WRITE_TIMEOUT:?}"),
            };
            shared.close(Error::ConnectionLost { reason: failure });
            return;
        }
        let drain_timer = async {
            match drain_deadline {
                // Boxed: only a draining session needs the timer's room.
                Some(at) => Box::pin(tokio::time::sleep_until(at.into())).await,
                None => std::future::pending().await,
            }
        };
        let mut source = CountingReader {
            inner: &mut stream,
            shared: &shared,
        };
        // `next_reply` is cancel-safe: bytes read are kept in `buffer` and the decoder
        // remembers its position, so losing the race to a wake-up or a timer loses nothing.
        let step = tokio::select! {
            () = shared.wake.notified() => Step::Woken,
            reply = buffer.next_reply(&mut source) => Step::Received(reply),
            () = drain_timer => Step::DrainExpired,
        };
        match step {
            Step::Received(Ok(reply)) => {
                let ms = shared.started.elapsed().as_millis() as u64;
                shared.last_received_ms.store(ms, Ordering::Relaxed);
                if let Some((tx, row)) = shared.route(reply, max_rows) {
                    // Backpressure: a slow stream consumer slows this session only. Boxed:
                    // a send future inline would widen every session's task for a rare case.
                    let _ = Box::pin(tx.send(Ok(row))).await;
                }
                let mut state = lock(&shared.state);
                if state.pending.is_empty() {
                    // Between polls an idle session keeps no read buffer and no table of
                    // commands in flight (a poll's pipelined commands grew it).
                    state.pending = HashMap::new();
                    drop(state);
                    buffer.release_memory();
                }
            }
            Step::Received(Err(e)) => {
                tracing::debug!(error = %e, "routeros session read failed");
                shared.close(e);
                return;
            }
            Step::DrainExpired => {
                shared.close(Error::ConnectionLost {
                    reason: format!("a cancelled command did not finish within {drain_timeout:?}"),
                });
                return;
            }
            // Sentences to write, a command cancelled (re-arm the timer), or closed.
            Step::Woken => {}
        }
    }
}

/// Counts bytes received as they are read.
struct CountingReader<'a> {
    inner: &'a mut Box<dyn Stream>,
    shared: &'a Shared,
}

impl tokio::io::AsyncRead for CountingReader<'_> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let poll = std::pin::Pin::new(&mut *this.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        this.shared
            .bytes_received
            .fetch_add(n as u64, Ordering::Relaxed);
        poll
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers every command it reads with `!done` and its tag, like an idle device.
    async fn answer_everything(io: tokio::io::DuplexStream) {
        use tokio::io::AsyncReadExt;
        let (mut rd, mut wr) = tokio::io::split(io);
        let mut decoder = routeros_proto::SentenceDecoder::new(routeros_proto::Limits::default());
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            while let Ok(Some((sentence, used))) = decoder.decode(&buf) {
                buf.drain(..used);
                let tag = sentence
                    .words
                    .iter()
                    .find_map(|w| w.strip_prefix(b".tag=".as_slice()).map(<[u8]>::to_vec))
                    .expect("every command is tagged");
                let mut reply = Vec::new();
                for word in [b"!done".to_vec(), [b".tag=".as_slice(), &tag].concat()] {
                    reply.push(word.len() as u8);
                    reply.extend_from_slice(&word);
                }
                reply.push(0);
                if wr.write_all(&reply).await.is_err() {
                    return;
                }
            }
            match rd.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    #[tokio::test]
    async fn an_idle_session_keeps_no_command_table_or_outgoing_buffer() {
        let (ours, device) = tokio::io::duplex(64 * 1024);
        tokio::spawn(answer_everything(device));
        let client = Client::start(
            Box::new(ours),
            ReadBuffer::new(routeros_proto::Limits::default()),
            SessionInfo {
                peer: "127.0.0.1:8729".parse().unwrap(),
                tls: false,
                fingerprint: None,
                legacy_login: false,
            },
            ClientOptions::from_connect_options(&ConnectOptions::new(
                "127.0.0.1",
                crate::Credentials::new("admin", "x"),
            )),
        );
        let batch = (0..12)
            .map(|i| Command::new(format!("/system/resource/print{i}")))
            .collect();
        let results = client.execute_pipelined(batch).await;
        assert_eq!(results.len(), 12);
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        // The task frees the table once the last reply is routed.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let (table, outgoing) = {
                let state = lock(&client.handle.shared.state);
                (state.pending.capacity(), state.outgoing.capacity())
            };
            if table == 0 && outgoing == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "still held: table for {table} commands, {outgoing} bytes to send"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // And it still works afterwards.
        assert!(
            client
                .execute(Command::new("/system/identity/print"))
                .await
                .is_ok()
        );
    }

    /// Every idle session holds its task's future, so its size is memory per device: a
    /// rare path (a streamed row's send, the drain timer) is boxed rather than inline.
    #[tokio::test]
    async fn the_session_task_stays_small() {
        let (io, _peer) = tokio::io::duplex(64);
        let shared = Arc::new(Shared::new());
        let task = run_session(
            shared,
            Box::new(io),
            ReadBuffer::new(routeros_proto::Limits::default()),
            10,
            Duration::from_secs(1),
        );
        // 1,000 bytes before the boxing (debug build), 608 after.
        let size = std::mem::size_of_val(&task);
        assert!(size <= 700, "the session task's future is {size} bytes");
    }
}

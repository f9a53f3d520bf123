//! [`Client`]: a logged-in session with many tagged commands in flight, one reader task that
//! routes replies by `.tag`, and one writer task that coalesces outgoing sentences.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;

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
    shared: Arc<Shared>,
    outbox: mpsc::Sender<Vec<u8>>,
    in_flight: Arc<Semaphore>,
    info: Arc<SessionInfo>,
    options: Arc<ClientOptions>,
    _tasks: Arc<Tasks>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("peer", &self.info.peer)
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// Aborts the session's tasks when the last [`Client`] clone goes away.
#[derive(Debug)]
struct Tasks {
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl Drop for Tasks {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
    }
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Wakes the reader when a command starts draining, so it arms the drain timer.
    draining: tokio::sync::Notify,
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
    closed: Option<Error>,
}

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

    fn dropped(&self) {
        self.sentences_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Routes one reply to the command that owns its tag.
    async fn route(&self, reply: Reply, max_rows: usize) {
        if reply.kind == ReplyKind::Fatal {
            let reason = reply
                .fatal_reason
                .unwrap_or_else(|| "session terminated".into());
            self.close(Error::Fatal { reason });
            return;
        }
        let Some(tag) = reply.tag.as_deref().and_then(|t| t.parse::<u64>().ok()) else {
            self.dropped();
            return;
        };
        let mut stream_row = None;
        {
            let mut state = lock(&self.state);
            let Some(entry) = state.pending.get_mut(&tag) else {
                drop(state);
                self.dropped();
                return;
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
        if let Some((tx, row)) = stream_row {
            // Backpressure: a slow stream consumer slows this session only.
            let _ = tx.send(Ok(row)).await;
        }
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
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            draining: tokio::sync::Notify::new(),
            next_tag: AtomicU64::new(1),
            started: Instant::now(),
            last_received_ms: AtomicU64::new(0),
            commands_sent: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            sentences_dropped: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
        });
        let (read_half, write_half) = tokio::io::split(stream);
        let (outbox, inbox) = mpsc::channel(options.max_in_flight * 2);
        let reader = tokio::spawn(read_loop(
            shared.clone(),
            read_half,
            reader,
            options.max_rows,
            options.drain_timeout,
        ));
        let writer = tokio::spawn(write_loop(shared.clone(), write_half, inbox));
        Self {
            in_flight: Arc::new(Semaphore::new(options.max_in_flight)),
            shared,
            outbox,
            info: Arc::new(info),
            options: Arc::new(options),
            _tasks: Arc::new(Tasks { reader, writer }),
        }
    }

    pub fn info(&self) -> &SessionInfo {
        &self.info
    }

    /// Whether the session has ended (the device closed it, a fatal error, or [`Client::close`]).
    pub fn is_closed(&self) -> bool {
        self.shared.closed_error().is_some()
    }

    /// How long since the device last sent anything.
    pub fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.shared.last_received_ms.load(Ordering::Relaxed));
        self.shared.started.elapsed().saturating_sub(last)
    }

    pub fn stats(&self) -> ClientStats {
        let s = &self.shared;
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
        self.execute_with_timeout(command, self.options.command_timeout)
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
        let deadline = tokio::time::Instant::now() + self.options.command_timeout;
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
            self.in_flight
                .clone()
                .acquire_many_owned(n.min(self.options.max_in_flight) as u32),
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
        let mut bytes = Vec::new();
        let mut waiting = Vec::with_capacity(n);
        {
            let mut state = lock(&self.shared.state);
            if let Some(e) = &state.closed {
                return (0..n).map(|_| Err(e.clone())).collect();
            }
            for mut command in commands {
                let tag = self.shared.next_tag.fetch_add(1, Ordering::Relaxed);
                command.tag = Some(tag.to_string());
                command.encode(&mut bytes);
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
        self.shared
            .commands_sent
            .fetch_add(n as u64, Ordering::Relaxed);
        if self.outbox.send(bytes).await.is_err() {
            let e = self.shared.closed_error().unwrap_or(Error::Closed);
            return (0..n).map(|_| Err(e.clone())).collect();
        }
        let started = Instant::now();
        let mut results = Vec::with_capacity(n);
        for mut w in waiting {
            let result = match w.rx.take() {
                Some(rx) => match tokio::time::timeout_at(deadline, rx).await {
                    Ok(Ok(result)) => result,
                    Ok(Err(_)) => Err(self.shared.closed_error().unwrap_or(Error::Closed)),
                    Err(_) => {
                        self.shared.timeouts.fetch_add(1, Ordering::Relaxed);
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
        let tag = self.shared.next_tag.fetch_add(1, Ordering::Relaxed);
        command.tag = Some(tag.to_string());
        let (tx, rx) = mpsc::channel(64);
        {
            let mut state = lock(&self.shared.state);
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
        }
        let mut bytes = Vec::new();
        command.encode(&mut bytes);
        self.shared.commands_sent.fetch_add(1, Ordering::Relaxed);
        self.outbox
            .send(bytes)
            .await
            .map_err(|_| self.shared.closed_error().unwrap_or(Error::Closed))?;
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
        self.shared.close(Error::Closed);
        self._tasks.reader.abort();
    }

    /// Stops waiting for `tag`: swallow its remaining replies and ask the device to stop.
    fn abandon(&self, tag: u64) {
        let still_running = {
            let mut state = lock(&self.shared.state);
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
        let cancel_tag = self.shared.next_tag.fetch_add(1, Ordering::Relaxed);
        lock(&self.shared.state).pending.insert(
            cancel_tag,
            Pending::Draining {
                since: Instant::now(),
            },
        );
        self.shared.draining.notify_one();
        let mut bytes = Vec::new();
        Command::new("/cancel")
            .attr("tag", tag.to_string())
            .tag(cancel_tag.to_string())
            .encode(&mut bytes);
        if self.outbox.try_send(bytes).is_err() {
            // The writer is gone or hopelessly behind: the session cannot recover.
            self.shared.close(Error::ConnectionLost {
                reason: "could not send /cancel for a timed-out command".into(),
            });
        }
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
        let finished = lock(&self.client.shared.state)
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

async fn read_loop(
    shared: Arc<Shared>,
    mut read_half: ReadHalf<Box<dyn Stream>>,
    mut buffer: ReadBuffer,
    max_rows: usize,
    drain_timeout: Duration,
) {
    let mut source = CountingReader {
        inner: &mut read_half,
        shared: &shared,
    };
    loop {
        // A timer runs only while a cancelled command drains: an idle session costs no
        // wake-ups (thousands of sessions per node).
        let drain_deadline = lock(&shared.state)
            .pending
            .values()
            .filter_map(|p| match p {
                Pending::Draining { since } => Some(*since + drain_timeout),
                _ => None,
            })
            .min();
        let drain_timer = async {
            match drain_deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        // `next_reply` is cancel-safe: bytes read are kept in `buffer` and the decoder
        // remembers its position, so losing the race to a timer loses nothing.
        tokio::select! {
            reply = buffer.next_reply(&mut source) => {
                match reply {
                    Ok(reply) => {
                        let ms = shared.started.elapsed().as_millis() as u64;
                        shared.last_received_ms.store(ms, Ordering::Relaxed);
                        shared.route(reply, max_rows).await;
                        if shared.closed_error().is_some() {
                            return;
                        }
                        if lock(&shared.state).pending.is_empty() {
                            // Between polls an idle session keeps no read buffer.
                            buffer.release_memory();
                        }
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "routeros session read failed");
                        shared.close(e);
                        return;
                    }
                }
            }
            () = drain_timer => {
                shared.close(Error::ConnectionLost {
                    reason: format!("a cancelled command did not finish within {drain_timeout:?}"),
                });
                return;
            }
            () = shared.draining.notified() => {} // a command was cancelled: re-arm the timer
        }
    }
}

/// Counts bytes received as they are read.
struct CountingReader<'a> {
    inner: &'a mut ReadHalf<Box<dyn Stream>>,
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

async fn write_loop(
    shared: Arc<Shared>,
    mut write_half: WriteHalf<Box<dyn Stream>>,
    mut inbox: mpsc::Receiver<Vec<u8>>,
) {
    const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
    while let Some(mut batch) = inbox.recv().await {
        // Coalesce whatever else is queued into one write.
        while batch.len() < 64 * 1024 {
            match inbox.try_recv() {
                Ok(more) => batch.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        let write = async {
            write_half.write_all(&batch).await?;
            write_half.flush().await
        };
        match tokio::time::timeout(WRITE_TIMEOUT, write).await {
            Ok(Ok(())) => {
                shared
                    .bytes_sent
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
            Ok(Err(e)) => {
                shared.close(Error::ConnectionLost {
                    reason: e.to_string(),
                });
                return;
            }
            Err(_) => {
                shared.close(Error::ConnectionLost {
                    reason: format!("device did not accept data for {WRITE_TIMEOUT:?}"),
                });
                return;
            }
        }
    }
    let _ = write_half.shutdown().await;
}

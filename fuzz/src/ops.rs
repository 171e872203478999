//! The operation model of the client: a reference model and a harness that
//! drives the real [`Client`] over the in-memory transport.
//!
//! Shared, as the very same file, by the property test
//! (`tests/proptest_ops.rs`, which includes it with `#[path]`) and by the
//! `op_model` fuzz target (through this crate's library). Both generate a
//! sequence of [`Op`]s, feed each one to [`Model::step`] (what must happen)
//! and to [`Harness::apply`] (what does happen, checked against the
//! prediction), and call [`Harness::check`] after every step. Neither uses
//! anything but the public API of `wsdrain`.
//!
//! # The reference model
//!
//! Per client: `closed`, the current stream, and every stream it started.
//! Per stream a [`Phase`]:
//!
//! - `Open`: connected, not closed. Always the client's current stream.
//!   Every frame the server sends is delivered, in order; every input is
//!   accepted and reaches the server, in order.
//! - `Closing`: shutdown was requested (by this side); its tasks may still be
//!   unwinding. Input fails with `StreamClosed`; a frame the server sends may
//!   or may not be delivered, but what is delivered is a prefix of what was
//!   sent.
//! - `Ended`: both tasks have exited (the harness has seen `wait()` return).
//!
//! Whatever depends on timing is settled by the operation itself (a server
//! close or disconnect waits for the stream's end) or accepted as a set of
//! outcomes (e.g. `close_workspace_stream` on a `Closing` current stream may
//! or may not still find it), so the model's *state* is always exact.
//!
//! # The invariants ([`Harness::check`])
//!
//! `is_closed()`, `spawned_tasks()`, the connection count, bounds on
//! `live_tasks()` and `open_connections()` (exact once nothing is
//! `Closing`), `workspace_stream()`, each handle's `is_closed()`, each
//! connection's `is_open()`, the events of each stream (exactly what was
//! sent while `Open`; a prefix of what was sent otherwise), and no stray
//! frame at the server. After every `Client::close` (and the handler's
//! close): `live_tasks() == 0`, `open_connections() == 0`, every stream's
//! `wait()` ready.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::{join, join3};
use serde_json::{Map, json};
use tokio::sync::watch;
use wsdrain::protocol::{
    Envelope, FileChange, FileOperation, GitStatus, Message, ProcessKind, ProcessOutput,
    ProcessState, ProcessStatus, ProcessStream,
};
use wsdrain::transport::{DialGate, MemoryTransport, ServerConn};
use wsdrain::{Client, ClientConfig, Error, Event, Skipped, StreamEnd, WorkspaceStream};

/// At most this many clients in one sequence.
pub const MAX_CLIENTS: usize = 3;
/// At most this many streams per client.
pub const MAX_STREAMS: usize = 8;
/// At most this many frames sent down one connection (its queue holds 64).
pub const MAX_FRAMES: usize = 48;
/// The bound on every single await of the harness: a hang is a failure.
/// (On a paused current-thread runtime, tokio's clock jumps ahead as soon as
/// every task is idle, so a deadlock is reported at once.)
pub const STEP: Duration = Duration::from_secs(5);

/// One operation, on client `client` (index into the clients created so far)
/// and stream `stream` (index into the streams that client started).
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Create a client (input queue capacity `queue`); `gated`: its
    /// transport holds dials at a gate, for [`Op::DialRace`].
    NewClient { queue: usize, gated: bool },
    /// `Client::stream_workspace` with a recording handler.
    Stream { client: usize },
    /// `write_shell_input` / `resize_shell` / `ping` on a stream handle.
    Input {
        client: usize,
        stream: usize,
        input: Input,
    },
    /// The server sends a frame down a stream's connection.
    Send {
        client: usize,
        stream: usize,
        frame: Down,
    },
    /// The server closes the stream normally; then wait for its end.
    ServerClose { client: usize, stream: usize },
    /// The server drops the connection abruptly; then wait for its end.
    ServerDisconnect { client: usize, stream: usize },
    /// `Client::close_workspace_stream`.
    CloseWorkspaceStream { client: usize },
    /// `WorkspaceStream::close`, then `wait()` if `wait`.
    StreamClose {
        client: usize,
        stream: usize,
        wait: bool,
    },
    /// `Client::close`: the drain barrier.
    ClientClose { client: usize },
    /// The current stream's handler calls `Client::close` (on the reader task).
    HandlerClose { client: usize },
    /// A race with a dial in flight (gated clients only).
    DialRace { client: usize, race: Race },
    /// Wait for every `Closing` stream to end.
    Settle,
    /// Let the runtime run other tasks for a moment.
    Yield,
}

/// Client input.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// `write_shell_input`.
    Shell(String),
    /// `resize_shell`.
    Resize { cols: u16, rows: u16 },
    /// `ping`.
    Ping,
}

/// A frame from the server.
#[derive(Debug, Clone, PartialEq)]
pub enum Down {
    /// `ServerConn::send`: a protocol message (encoded with the current time).
    Message(Message),
    /// `ServerConn::send_text`: any text (malformed, unknown type, valid...).
    Text(String),
    /// `ServerConn::send_binary`.
    Binary(usize),
}

/// Races with a dial held at the transport's gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Race {
    /// `Client::close` runs while a `stream_workspace` is dialing: the dial
    /// must fail with `ClosedDuringDial` and start nothing (H2).
    CloseDuringDial,
    /// Two `stream_workspace` calls dial at once: exactly one wins (H3).
    TwoDials,
}

/// What a stream handler saw, without the parts the model cannot predict
/// (timestamps, decoder messages).
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    /// `Event::Message`.
    Message(Message),
    /// `Event::Skipped(Skipped::Malformed)`.
    Malformed { len: usize },
    /// `Event::Skipped(Skipped::Binary)`.
    Binary { len: usize },
    /// An event kind this harness does not know.
    Other(String),
}

impl Seen {
    fn of(event: Event) -> Seen {
        match event {
            Event::Message(envelope) => Seen::Message(envelope.message),
            Event::Skipped(Skipped::Malformed { len, .. }) => Seen::Malformed { len },
            Event::Skipped(Skipped::Binary { len }) => Seen::Binary { len },
            other => Seen::Other(format!("{other:?}")),
        }
    }

    /// What the handler must see for `frame`.
    pub fn expected(frame: &Down) -> Seen {
        match frame {
            Down::Message(message) => Seen::Message(message.clone()),
            Down::Text(text) => match Envelope::decode(text) {
                Ok(envelope) => Seen::Message(envelope.message),
                Err(_) => Seen::Malformed { len: text.len() },
            },
            Down::Binary(len) => Seen::Binary { len: *len },
        }
    }
}

/// A protocol message built from a few generated values (`kind` picks the
/// type). Every message built here survives encode/decode unchanged.
pub fn message(kind: u8, s: &str, n: i64) -> Message {
    const OPS: [&str; 7] = [
        "create", "write", "remove", "rename", "chmod", "refresh", "symlink",
    ];
    const KINDS: [&str; 6] = ["setup", "cleanup", "dev", "custom", "agent_passthrough", ""];
    let pick = |list: &[&'static str]| list[n.unsigned_abs() as usize % list.len()];
    match kind % 13 {
        0 => Message::ShellOutput { data: s.into() },
        1 => Message::ShellExit { code: n },
        2 => Message::Pong,
        3 => Message::Error { error: s.into() },
        4 => Message::FileChange(Box::new(FileChange {
            timestamp: "2026-11-24T03:00:00Z".into(),
            path: s.into(),
            operation: FileOperation::from(pick(&OPS)),
            ..Default::default()
        })),
        5 => {
            let mut commit = Map::new();
            commit.insert("commit_sha".into(), json!(s));
            commit.insert("insertions".into(), json!(n));
            commit.insert("files".into(), json!([s, null, true]));
            Message::GitCommit(commit)
        }
        6 => Message::ProcessOutput(Box::new(ProcessOutput {
            session_id: "session".into(),
            process_id: s.into(),
            kind: ProcessKind::from(pick(&KINDS)),
            stream: if n % 2 == 0 {
                ProcessStream::Stdout
            } else {
                ProcessStream::Stderr
            },
            data: s.into(),
            ..Default::default()
        })),
        7 => Message::GitStatus(Box::new(GitStatus {
            branch: s.into(),
            modified: vec![s.into()],
            ahead: n,
            ..Default::default()
        })),
        8 => Message::Connected,
        9 => Message::ProcessStatus(Box::new(ProcessStatus {
            process_id: s.into(),
            status: ProcessState::from(pick(&["starting", "exited", "zombie"])),
            exit_code: (n % 3 != 0).then_some(n),
            ..Default::default()
        })),
        10 => Message::ShellResize {
            cols: i64::from(n as u16),
            rows: i64::from((n >> 16) as u16),
        },
        11 => Message::ShellInput { data: s.into() },
        _ => Message::BranchSwitch(Map::from_iter([("branch".to_owned(), json!(s))])),
    }
}

/// A text frame built from generated values (`kind` picks the shape):
/// malformed JSON, non-objects, unknown types, wrong field types, missing
/// payloads, duplicate fields, deep nesting, valid messages with unknown
/// fields, big messages.
pub fn text_frame(kind: u8, s: &str, n: i64) -> String {
    match kind % 12 {
        0 => s.to_owned(),
        1 => json!({ "type": s, "timestamp": n }).to_string(),
        2 => json!({
            "type": format!("x_{s}"), "timestamp": n, "code": s, "data": { "nested": [s, n] }
        })
        .to_string(),
        3 => {
            let full = Envelope {
                timestamp: n,
                message: message(n as u8, s, n),
            }
            .encode();
            let mut cut = n.unsigned_abs() as usize % full.len().max(1);
            while !full.is_char_boundary(cut) {
                cut -= 1;
            }
            full[..cut].to_owned()
        }
        4 => json!({ "type": "git_status", "timestamp": n }).to_string(),
        5 => json!({ "type": "shell_exit", "timestamp": n, "code": s }).to_string(),
        6 => json!([s, n]).to_string(),
        7 => json!({
            "type": "shell_output", "timestamp": n, "data": s, "from_the_future": { "k": n }
        })
        .to_string(),
        8 => format!(
            r#"{{"type":"shell_output","data":"a","data":{}}}"#,
            json!(s)
        ),
        9 => json!({ "timestamp": n, "data": s }).to_string(),
        10 => "[".repeat(n.unsigned_abs() as usize % 300),
        _ => json!({
            "type": "shell_output", "timestamp": n,
            "data": s.repeat(1 + n.unsigned_abs() as usize % 2048)
        })
        .to_string(),
    }
}

// ---------------------------------------------------------------------------
// The reference model
// ---------------------------------------------------------------------------

/// Where a stream is in its life (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Connected and not closed.
    Open,
    /// Shutdown requested; tasks may still run.
    Closing,
    /// Both tasks have exited.
    Ended,
}

/// `StreamEnd::Closed`.
pub const END_CLOSED: u8 = 1;
/// `StreamEnd::ServerClosed`.
pub const END_SERVER: u8 = 2;
/// `StreamEnd::Failed`.
pub const END_FAILED: u8 = 4;

/// The model of one stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamModel {
    /// Where it is.
    pub phase: Phase,
    /// The ends `wait()` may report (a set of `END_*` bits).
    pub ends: u8,
    /// Frames that must have been delivered (sent while `Open`, plus `connected`).
    pub certain: usize,
    /// Frames sent down its connection so far (delivered or not).
    pub frames: usize,
}

/// The model of one client.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientModel {
    /// `Client::close` has run.
    pub closed: bool,
    /// Index of the current stream.
    pub current: Option<usize>,
    /// Every stream it started.
    pub streams: Vec<StreamModel>,
    /// Successful dials (connections accepted by the server).
    pub dials: usize,
    /// Its input queue capacity.
    pub queue: usize,
    /// Its dial gate is still closed.
    pub gated: bool,
}

impl ClientModel {
    fn new(queue: usize, gated: bool) -> Self {
        Self {
            closed: false,
            current: None,
            streams: Vec::new(),
            dials: 0,
            queue,
            gated,
        }
    }

    fn count(&self, phase: Phase) -> usize {
        self.streams.iter().filter(|s| s.phase == phase).count()
    }

    /// A `Closing` stream's tasks have exited.
    fn settle(&mut self, index: usize) {
        let stream = &mut self.streams[index];
        if stream.phase == Phase::Closing {
            stream.phase = Phase::Ended;
            if self.current == Some(index) {
                self.current = None;
            }
        }
    }

    /// Request shutdown of a stream from this side.
    fn close_stream(&mut self, index: usize) {
        let stream = &mut self.streams[index];
        if stream.phase == Phase::Open {
            stream.phase = Phase::Closing;
            stream.ends = END_CLOSED;
        }
    }

    /// `Client::close` has returned.
    fn drained(&mut self) {
        self.closed = true;
        self.current = None;
        for stream in &mut self.streams {
            if stream.phase == Phase::Open {
                stream.ends = END_CLOSED;
            }
            stream.phase = Phase::Ended;
        }
    }

    fn open_stream(&mut self) -> usize {
        self.dials += 1;
        self.streams.push(StreamModel {
            phase: Phase::Open,
            ends: 0,
            certain: 1, // `connected`
            frames: 1,
        });
        self.current = Some(self.streams.len() - 1);
        self.streams.len() - 1
    }
}

/// The reference model: every client of the sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// The clients, in creation order.
    pub clients: Vec<ClientModel>,
}

impl Default for Model {
    fn default() -> Self {
        Self::new()
    }
}

/// What the harness must observe for one operation (computed by [`Model::step`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    /// The operation is not valid in this state: nothing is done.
    Skip,
    /// Create a client.
    NewClient,
    /// `stream_workspace`: release the gate and settle a `Closing` current
    /// stream first if said so, then expect `result`.
    Stream {
        release_gate: bool,
        settle: Option<usize>,
        result: StreamResult,
    },
    /// Input is accepted (and reaches the server) or fails with `StreamClosed`.
    Input { ok: bool },
    /// Whether the server's send is accepted.
    Send { accept: Accept },
    /// Whether the server's close is accepted; then the stream ends.
    ServerClose { accept: Accept },
    /// The stream ends.
    ServerDisconnect,
    /// What `close_workspace_stream` returns.
    CloseWorkspaceStream(Taken),
    /// `close()`, then `wait()` if `settle`.
    StreamClose { settle: bool },
    /// The drain barrier.
    ClientClose,
    /// The handler's close (on the reader of stream `stream`).
    HandlerClose { stream: usize },
    /// The race's outcome.
    DialRace(Race),
    /// These `(client, stream)`s end.
    Settle(Vec<(usize, usize)>),
    /// Nothing to check.
    Yield,
}

/// The result `stream_workspace` must give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamResult {
    /// A new stream (this index).
    Ok(usize),
    /// `Error::ClientClosed`.
    ClientClosed,
    /// `Error::AlreadyConnected`.
    AlreadyConnected,
}

/// Whether a server-side send must succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// It must (and the frame must be delivered).
    Yes,
    /// It must fail (the client's read half is gone).
    No,
    /// Either (the stream is closing).
    Maybe,
}

/// What `close_workspace_stream` must return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// `None`.
    None,
    /// That stream.
    Some(usize),
    /// That stream or `None` (its reader may have unpublished it already).
    Maybe(usize),
}

impl Model {
    /// One client with the default configuration.
    pub fn new() -> Self {
        Self {
            clients: vec![ClientModel::new(64, false)],
        }
    }

    /// Whether `op` can run in this state (indices in range, bounds kept).
    pub fn valid(&self, op: &Op) -> bool {
        let client = |c: usize| self.clients.get(c);
        let stream = |c: usize, s: usize| client(c).and_then(|m| m.streams.get(s));
        match *op {
            Op::NewClient { queue, .. } => self.clients.len() < MAX_CLIENTS && queue >= 1,
            Op::Stream { client: c } => client(c).is_some_and(|m| m.streams.len() < MAX_STREAMS),
            Op::Input {
                client: c,
                stream: s,
                ..
            }
            | Op::StreamClose {
                client: c,
                stream: s,
                ..
            }
            | Op::ServerClose {
                client: c,
                stream: s,
            }
            | Op::ServerDisconnect {
                client: c,
                stream: s,
            } => stream(c, s).is_some(),
            Op::Send {
                client: c,
                stream: s,
                ..
            } => stream(c, s).is_some_and(|m| m.frames < MAX_FRAMES),
            Op::CloseWorkspaceStream { client: c } | Op::ClientClose { client: c } => {
                client(c).is_some()
            }
            Op::HandlerClose { client: c } => client(c).is_some_and(|m| {
                m.current.is_some_and(|s| {
                    m.streams[s].phase == Phase::Open && m.streams[s].frames < MAX_FRAMES
                })
            }),
            Op::DialRace { client: c, .. } => client(c).is_some_and(|m| {
                m.gated && !m.closed && m.current.is_none() && m.streams.len() < MAX_STREAMS
            }),
            Op::Settle | Op::Yield => true,
        }
    }

    /// Apply `op` to the model; returns what the harness must observe.
    pub fn step(&mut self, op: &Op) -> Expect {
        if !self.valid(op) {
            return Expect::Skip;
        }
        match *op {
            Op::NewClient { queue, gated } => {
                self.clients.push(ClientModel::new(queue, gated));
                Expect::NewClient
            }
            Op::Stream { client } => {
                let m = &mut self.clients[client];
                let release_gate = std::mem::take(&mut m.gated);
                if m.closed {
                    return Expect::Stream {
                        release_gate,
                        settle: None,
                        result: StreamResult::ClientClosed,
                    };
                }
                let mut settle = None;
                if let Some(current) = m.current {
                    if m.streams[current].phase == Phase::Open {
                        return Expect::Stream {
                            release_gate,
                            settle: None,
                            result: StreamResult::AlreadyConnected,
                        };
                    }
                    // Closing: wait for its reader to unpublish it first.
                    m.settle(current);
                    settle = Some(current);
                }
                let index = m.open_stream();
                Expect::Stream {
                    release_gate,
                    settle,
                    result: StreamResult::Ok(index),
                }
            }
            Op::Input { client, stream, .. } => Expect::Input {
                ok: self.clients[client].streams[stream].phase == Phase::Open,
            },
            Op::Send { client, stream, .. } => {
                let s = &mut self.clients[client].streams[stream];
                s.frames += 1;
                let accept = match s.phase {
                    Phase::Open => {
                        s.certain += 1;
                        Accept::Yes
                    }
                    Phase::Closing => Accept::Maybe,
                    Phase::Ended => Accept::No,
                };
                Expect::Send { accept }
            }
            Op::ServerClose { client, stream } => {
                let m = &mut self.clients[client];
                let s = &mut m.streams[stream];
                let accept = match s.phase {
                    Phase::Open => {
                        s.ends = END_SERVER;
                        s.phase = Phase::Closing;
                        Accept::Yes
                    }
                    // Closed by this side first: it ends `Closed` whatever
                    // the reader reads last.
                    Phase::Closing => Accept::Maybe,
                    Phase::Ended => Accept::No,
                };
                m.settle(stream);
                Expect::ServerClose { accept }
            }
            Op::ServerDisconnect { client, stream } => {
                let m = &mut self.clients[client];
                let s = &mut m.streams[stream];
                match s.phase {
                    Phase::Open => {
                        s.ends = END_FAILED;
                        s.phase = Phase::Closing;
                    }
                    Phase::Closing | Phase::Ended => {}
                }
                m.settle(stream);
                Expect::ServerDisconnect
            }
            Op::CloseWorkspaceStream { client } => {
                let m = &mut self.clients[client];
                let Some(current) = m.current.take() else {
                    return Expect::CloseWorkspaceStream(Taken::None);
                };
                if m.streams[current].phase == Phase::Open {
                    m.close_stream(current);
                    Expect::CloseWorkspaceStream(Taken::Some(current))
                } else {
                    Expect::CloseWorkspaceStream(Taken::Maybe(current))
                }
            }
            Op::StreamClose {
                client,
                stream,
                wait,
            } => {
                let m = &mut self.clients[client];
                m.close_stream(stream);
                if wait {
                    m.settle(stream);
                }
                Expect::StreamClose { settle: wait }
            }
            Op::ClientClose { client } => {
                self.clients[client].drained();
                Expect::ClientClose
            }
            Op::HandlerClose { client } => {
                let m = &mut self.clients[client];
                let stream = m.current.expect("checked by valid()");
                m.streams[stream].frames += 1;
                m.streams[stream].certain += 1;
                m.drained();
                Expect::HandlerClose { stream }
            }
            Op::DialRace { client, race } => {
                let m = &mut self.clients[client];
                m.gated = false;
                match race {
                    Race::CloseDuringDial => {
                        m.dials += 1;
                        m.drained();
                    }
                    Race::TwoDials => {
                        m.dials += 1;
                        m.open_stream();
                    }
                }
                Expect::DialRace(race)
            }
            Op::Settle => {
                let mut settled = Vec::new();
                for (c, m) in self.clients.iter_mut().enumerate() {
                    for s in 0..m.streams.len() {
                        if m.streams[s].phase == Phase::Closing {
                            m.settle(s);
                            settled.push((c, s));
                        }
                    }
                }
                Expect::Settle(settled)
            }
            Op::Yield => Expect::Yield,
        }
    }
}

// ---------------------------------------------------------------------------
// The harness
// ---------------------------------------------------------------------------

/// The events one handler saw, and a way to wait for more.
#[derive(Clone)]
struct Recorder {
    seen: Arc<Mutex<Vec<Seen>>>,
    count: watch::Sender<usize>,
    /// Set by the harness: the next event makes the handler call `Client::close`.
    close_next: Arc<AtomicBool>,
    /// Bumped when the handler's `Client::close` returned.
    closes: watch::Sender<usize>,
}

impl Recorder {
    fn new() -> Self {
        Self {
            seen: Arc::default(),
            count: watch::Sender::new(0),
            close_next: Arc::default(),
            closes: watch::Sender::new(0),
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// A handler that records into this recorder.
    fn handler(&self, client: Client<MemoryTransport>) -> impl wsdrain::Handler + use<> {
        let rec = self.clone();
        move |event: Event| {
            let rec = rec.clone();
            let client = client.clone();
            async move {
                rec.seen.lock().unwrap().push(Seen::of(event));
                // Take the flag before announcing the event: once the
                // harness sees the count, this call no longer looks at it.
                let close = rec.close_next.swap(false, SeqCst);
                rec.count.send_modify(|n| *n += 1);
                if close {
                    client.close().await;
                    rec.closes.send_modify(|n| *n += 1);
                }
            }
        }
    }
}

struct StreamH {
    handle: WorkspaceStream,
    conn: ServerConn,
    rec: Recorder,
    /// Frames the server's side accepted, in order.
    sent: Vec<Seen>,
}

struct ClientH {
    client: Client<MemoryTransport>,
    gate: Option<DialGate>,
    streams: Vec<StreamH>,
}

impl ClientH {
    fn transport(&self) -> &MemoryTransport {
        self.client.transport()
    }
}

/// Await `fut`, panicking if it takes longer than [`STEP`].
pub async fn within<F: Future>(what: impl std::fmt::Display, fut: F) -> F::Output {
    match tokio::time::timeout(STEP, fut).await {
        Ok(output) => output,
        Err(_) => panic!("hang: {what} did not complete within {STEP:?}"),
    }
}

/// The real clients, driven by the operations, checked against the model.
pub struct Harness {
    base: ClientConfig,
    clients: Vec<ClientH>,
    /// The model, stepped by [`apply`](Self::apply).
    pub model: Model,
}

impl Harness {
    /// A harness whose clients start from `base` (e.g. with bugs switched
    /// on), with the clients of `Model::new()`. Must run inside a tokio
    /// runtime with time enabled.
    pub fn new(base: ClientConfig) -> Self {
        let model = Model::new();
        let mut harness = Self {
            base,
            clients: Vec::new(),
            model: Model {
                clients: Vec::new(),
            },
        };
        for m in &model.clients {
            harness.add_client(m.queue, m.gated);
        }
        harness.model = model;
        harness
    }

    fn add_client(&mut self, queue: usize, gated: bool) {
        let (transport, gate) = if gated {
            let (transport, gate) = MemoryTransport::new().with_dial_gate();
            (transport, Some(gate))
        } else {
            (MemoryTransport::new(), None)
        };
        let config = self.base.clone().with_input_queue_capacity(queue);
        let client =
            Client::with_transport(transport, "ws://memory/api/v1/workspace/stream", config);
        self.clients.push(ClientH {
            client,
            gate,
            streams: Vec::new(),
        });
    }

    /// Run `op` on the real clients and check its outcome against the model.
    pub async fn apply(&mut self, op: &Op) {
        let expect = self.model.step(op);
        match (op, expect) {
            (_, Expect::Skip) => {}
            (&Op::NewClient { queue, gated }, Expect::NewClient) => self.add_client(queue, gated),
            (
                &Op::Stream { client },
                Expect::Stream {
                    release_gate,
                    settle,
                    result,
                },
            ) => {
                if release_gate {
                    self.clients[client].gate.as_ref().unwrap().release();
                }
                if let Some(stream) = settle {
                    self.settle(client, stream).await;
                }
                let c = &self.clients[client];
                let rec = Recorder::new();
                let got = within(
                    "stream_workspace",
                    c.client.stream_workspace(rec.handler(c.client.clone())),
                )
                .await;
                match (result, got) {
                    (StreamResult::Ok(index), Ok(handle)) => {
                        let conn = c.transport().connections().pop().expect("a connection");
                        assert!(conn.is_open(), "the new stream's connection is open");
                        self.add_stream(client, index, handle, conn, rec).await;
                    }
                    (StreamResult::ClientClosed, Err(Error::ClientClosed))
                    | (StreamResult::AlreadyConnected, Err(Error::AlreadyConnected)) => {}
                    (want, got) => panic!("stream_workspace: expected {want:?}, got {got:?}"),
                }
            }
            (
                Op::Input {
                    client,
                    stream,
                    input,
                },
                Expect::Input { ok },
            ) => {
                let s = &self.clients[*client].streams[*stream];
                let (got, sent) = match input {
                    Input::Shell(data) => (
                        within(
                            "write_shell_input",
                            s.handle.write_shell_input(data.clone()),
                        )
                        .await,
                        Message::ShellInput { data: data.clone() },
                    ),
                    Input::Resize { cols, rows } => (
                        within("resize_shell", s.handle.resize_shell(*cols, *rows)).await,
                        Message::ShellResize {
                            cols: i64::from(*cols),
                            rows: i64::from(*rows),
                        },
                    ),
                    Input::Ping => (within("ping", s.handle.ping()).await, Message::Ping),
                };
                if ok {
                    if let Err(error) = got {
                        panic!("{input:?} on an open stream failed: {error}");
                    }
                    let text = within("the input to reach the server", s.conn.recv())
                        .await
                        .unwrap_or_else(|| panic!("{input:?} was accepted but never sent"));
                    let envelope = Envelope::decode(&text).unwrap_or_else(|e| {
                        panic!("the client sent an undecodable frame {text:?}: {e}")
                    });
                    assert_eq!(
                        envelope.message, sent,
                        "the server received another message"
                    );
                } else {
                    assert!(
                        matches!(got, Err(Error::StreamClosed)),
                        "{input:?} on a closed stream: expected StreamClosed, got {got:?}"
                    );
                }
            }
            (
                Op::Send {
                    client,
                    stream,
                    frame,
                },
                Expect::Send { accept },
            ) => {
                let s = &mut self.clients[*client].streams[*stream];
                let accepted = match frame {
                    Down::Message(message) => s.conn.send(message.clone()),
                    Down::Text(text) => s.conn.send_text(text.clone()),
                    Down::Binary(len) => s.conn.send_binary(*len),
                };
                check_accept("send", accept, accepted);
                if accepted {
                    s.sent.push(Seen::expected(frame));
                }
                if accept == Accept::Yes {
                    self.sync_open(*client, *stream).await;
                }
            }
            (&Op::ServerClose { client, stream }, Expect::ServerClose { accept }) => {
                let accepted = self.clients[client].streams[stream].conn.close();
                check_accept("server close", accept, accepted);
                self.settle(client, stream).await;
            }
            (&Op::ServerDisconnect { client, stream }, Expect::ServerDisconnect) => {
                self.clients[client].streams[stream].conn.disconnect();
                self.settle(client, stream).await;
            }
            (&Op::CloseWorkspaceStream { client }, Expect::CloseWorkspaceStream(taken)) => {
                let c = &self.clients[client];
                let got = c.client.close_workspace_stream().map(|s| s.id());
                let id = |s: usize| c.streams[s].handle.id();
                let ok = match taken {
                    Taken::None => got.is_none(),
                    Taken::Some(s) => got == Some(id(s)),
                    Taken::Maybe(s) => got.is_none() || got == Some(id(s)),
                };
                assert!(
                    ok,
                    "close_workspace_stream: expected {taken:?}, got stream id {got:?}"
                );
            }
            (
                &Op::StreamClose {
                    client,
                    stream,
                    wait,
                },
                Expect::StreamClose { settle },
            ) => {
                self.clients[client].streams[stream].handle.close();
                assert!(self.clients[client].streams[stream].handle.is_closed());
                debug_assert_eq!(wait, settle);
                if settle {
                    self.settle(client, stream).await;
                }
            }
            (&Op::ClientClose { client }, Expect::ClientClose) => {
                within("Client::close", self.clients[client].client.close()).await;
                self.check_drained(client, "Client::close");
            }
            (&Op::HandlerClose { client }, Expect::HandlerClose { stream }) => {
                let s = &mut self.clients[client].streams[stream];
                let mut closes = s.rec.closes.subscribe();
                s.rec.close_next.store(true, SeqCst);
                let message = Message::ShellOutput {
                    data: "close from the handler".into(),
                };
                assert!(s.conn.send(message.clone()), "send to an open stream");
                s.sent.push(Seen::Message(message));
                within(
                    "Client::close called from the handler",
                    closes.wait_for(|n| *n >= 1),
                )
                .await
                .expect("recorder alive");
                // The calling reader exits right after its handler returns.
                for s in 0..self.clients[client].streams.len() {
                    self.settle(client, s).await;
                }
                self.check_drained(client, "Client::close from the handler");
            }
            (&Op::DialRace { client, race }, Expect::DialRace(_)) => self.race(client, race).await,
            (Op::Settle, Expect::Settle(streams)) => {
                for (client, stream) in streams {
                    self.settle(client, stream).await;
                }
            }
            (Op::Yield, Expect::Yield) => {
                for _ in 0..4 {
                    tokio::task::yield_now().await;
                }
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
            (op, expect) => unreachable!("model gave {expect:?} for {op:?}"),
        }
    }

    async fn add_stream(
        &mut self,
        client: usize,
        index: usize,
        handle: WorkspaceStream,
        conn: ServerConn,
        rec: Recorder,
    ) {
        let c = &mut self.clients[client];
        assert_eq!(c.streams.len(), index, "stream numbering");
        c.streams.push(StreamH {
            handle,
            conn,
            rec,
            sent: vec![Seen::Message(Message::Connected)],
        });
        self.sync_open(client, index).await;
    }

    async fn race(&mut self, client: usize, race: Race) {
        let c = &self.clients[client];
        let gate = c.gate.clone().expect("a gated client");
        match race {
            Race::CloseDuringDial => {
                let rec = Recorder::new();
                let (got, ()) = within(
                    "Client::close during a dial",
                    join(
                        c.client.stream_workspace(rec.handler(c.client.clone())),
                        async {
                            gate.entered().await;
                            c.client.close().await;
                            gate.release();
                        },
                    ),
                )
                .await;
                assert!(
                    matches!(got, Err(Error::ClosedDuringDial)),
                    "a dial in flight during close() must fail with ClosedDuringDial, got {got:?}"
                );
                self.check_drained(client, "Client::close during a dial");
            }
            Race::TwoDials => {
                let (rec_a, rec_b) = (Recorder::new(), Recorder::new());
                // join3 polls in order: both dials are held at the gate
                // before the third future releases it.
                let (a, b, ()) = within(
                    "two concurrent dials",
                    join3(
                        c.client.stream_workspace(rec_a.handler(c.client.clone())),
                        c.client.stream_workspace(rec_b.handler(c.client.clone())),
                        async {
                            gate.entered().await;
                            tokio::task::yield_now().await;
                            gate.release();
                        },
                    ),
                )
                .await;
                let conns = c.transport().connections();
                assert!(conns.len() >= 2, "both dials reached the server");
                let fresh = &conns[conns.len() - 2..];
                let open: Vec<&ServerConn> = fresh.iter().filter(|c| c.is_open()).collect();
                let (handle, rec) = match (a, b) {
                    (Ok(handle), Err(Error::AlreadyConnected)) => (handle, rec_a),
                    (Err(Error::AlreadyConnected), Ok(handle)) => (handle, rec_b),
                    (a, b) => panic!(
                        "two concurrent dials: expected one stream and one AlreadyConnected, got {a:?} and {b:?}"
                    ),
                };
                assert_eq!(open.len(), 1, "the loser's connection must be closed");
                let conn = open[0].clone();
                let index = self.clients[client].streams.len();
                self.add_stream(client, index, handle, conn, rec).await;
            }
        }
    }

    /// Wait for the stream's tasks to exit; check how it ended.
    async fn settle(&self, client: usize, stream: usize) {
        let s = &self.clients[client].streams[stream];
        let end = within(
            format!("WorkspaceStream::wait (client {client}, stream {stream})"),
            s.handle.wait(),
        )
        .await;
        self.check_end(client, stream, &end);
    }

    fn check_end(&self, client: usize, stream: usize, end: &StreamEnd) {
        let ends = self.model.clients[client].streams[stream].ends;
        let bit = match end {
            StreamEnd::Closed => END_CLOSED,
            StreamEnd::ServerClosed { .. } | StreamEnd::ServerDisconnected => END_SERVER,
            StreamEnd::Failed(_) => END_FAILED,
            _ => 0,
        };
        assert!(
            ends & bit != 0,
            "client {client} stream {stream} ended {end:?}, expected one of {}",
            end_names(ends)
        );
    }

    /// Wait until an open stream's handler has seen everything sent, and
    /// compare.
    async fn sync_open(&self, client: usize, stream: usize) {
        let s = &self.clients[client].streams[stream];
        let want = s.sent.len();
        let mut count = s.rec.count.subscribe();
        within(
            format!("{want} events to reach the handler (client {client}, stream {stream})"),
            count.wait_for(|n| *n >= want),
        )
        .await
        .expect("recorder alive");
        assert_eq!(
            s.rec.seen(),
            s.sent,
            "client {client} stream {stream}: the handler saw other events than the server sent"
        );
    }

    /// After a drain barrier returned: nothing of the client is left.
    fn check_drained(&self, client: usize, what: &str) {
        let c = &self.clients[client];
        assert!(c.client.is_closed(), "{what}: is_closed()");
        assert_eq!(c.client.live_tasks(), 0, "{what} returned with live tasks");
        assert_eq!(
            c.transport().open_connections(),
            0,
            "{what} returned with open connections"
        );
        for (i, s) in c.streams.iter().enumerate() {
            let end = s
                .handle
                .wait()
                .now_or_never()
                .unwrap_or_else(|| panic!("{what} returned before stream {i}'s tasks exited"));
            self.check_end(client, i, &end);
        }
    }

    /// The invariants, after every operation.
    pub fn check(&self) {
        assert_eq!(self.clients.len(), self.model.clients.len(), "client count");
        for (ci, (c, m)) in self.clients.iter().zip(&self.model.clients).enumerate() {
            let at = |what: &str| format!("client {ci}: {what}");
            assert_eq!(c.client.is_closed(), m.closed, "{}", at("is_closed()"));
            assert_eq!(
                c.client.spawned_tasks(),
                2 * m.streams.len() as u64,
                "{}",
                at("spawned_tasks() must be 2 per stream")
            );
            assert_eq!(
                c.transport().connections().len(),
                m.dials,
                "{}",
                at("connections accepted")
            );
            let (open, closing) = (m.count(Phase::Open), m.count(Phase::Closing));
            let live = c.client.live_tasks();
            assert!(
                (2 * open..=2 * (open + closing)).contains(&live),
                "{}",
                at(&format!(
                    "live_tasks() = {live} with {open} open and {closing} closing streams"
                ))
            );
            let conns = c.transport().open_connections();
            assert!(
                (open..=open + closing).contains(&conns),
                "{}",
                at(&format!(
                    "open_connections() = {conns} with {open} open and {closing} closing streams"
                ))
            );
            let current = c.client.workspace_stream().map(|s| s.id());
            let ok = match m.current {
                None => current.is_none(),
                Some(s) if m.streams[s].phase == Phase::Open => {
                    current == Some(c.streams[s].handle.id())
                }
                Some(s) => current.is_none() || current == Some(c.streams[s].handle.id()),
            };
            assert!(
                ok,
                "{}",
                at(&format!(
                    "workspace_stream() is stream id {current:?}, model says index {:?}",
                    m.current
                ))
            );
            assert_eq!(c.streams.len(), m.streams.len(), "{}", at("stream count"));
            for (si, (s, sm)) in c.streams.iter().zip(&m.streams).enumerate() {
                let at = |what: &str| format!("client {ci} stream {si} ({:?}): {what}", sm.phase);
                assert_eq!(
                    s.handle.is_closed(),
                    sm.phase != Phase::Open,
                    "{}",
                    at("is_closed()")
                );
                let seen = s.rec.seen();
                match sm.phase {
                    Phase::Open => {
                        assert!(s.conn.is_open(), "{}", at("connection closed"));
                        assert_eq!(seen, s.sent, "{}", at("events"));
                        assert!(
                            s.conn.recv().now_or_never().is_none(),
                            "{}",
                            at("the server has a frame nobody sent")
                        );
                    }
                    Phase::Closing | Phase::Ended => {
                        assert!(
                            seen.len() >= sm.certain && s.sent.starts_with(&seen),
                            "{}",
                            at(&format!(
                                "the handler saw {seen:?}; the server sent {:?}, of which the first {} must arrive",
                                s.sent, sm.certain
                            ))
                        );
                    }
                }
                if sm.phase == Phase::Ended {
                    assert!(!s.conn.is_open(), "{}", at("connection still open"));
                    assert_eq!(
                        s.conn.recv().now_or_never(),
                        Some(None),
                        "{}",
                        at("the write side is not closed")
                    );
                    assert!(
                        s.handle.wait().now_or_never().is_some(),
                        "{}",
                        at("wait() not ready")
                    );
                }
            }
        }
    }

    /// Close every client and check the drain. Call at the end of a sequence.
    pub async fn finish(&mut self) {
        for client in 0..self.clients.len() {
            self.apply(&Op::ClientClose { client }).await;
            self.check();
        }
    }
}

fn check_accept(what: &str, accept: Accept, accepted: bool) {
    match accept {
        Accept::Yes => assert!(accepted, "{what} on an open stream was refused"),
        Accept::No => assert!(!accepted, "{what} on an ended stream was accepted"),
        Accept::Maybe => {}
    }
}

fn end_names(ends: u8) -> String {
    [
        (END_CLOSED, "Closed"),
        (END_SERVER, "ServerClosed"),
        (END_FAILED, "Failed"),
    ]
    .iter()
    .filter(|(bit, _)| ends & bit != 0)
    .map(|(_, name)| *name)
    .collect::<Vec<_>>()
    .join("/")
}

//! An in-process agentctl workspace-stream server for the integration tests,
//! plus small helpers (bounded awaits, a recording handler, dead addresses).
//!
//! The server speaks the protocol of `docs/protocol.md` over real
//! TCP and real WebSockets (tokio-tungstenite `accept_hdr_async`): it sends
//! `connected` first, answers `ping` with `pong`, and records every message
//! the client sends. Tests drive each accepted connection through a
//! [`ServerConn`] handle: send arbitrary text or binary frames, close
//! normally, or drop the TCP stream abruptly.
//!
//! The server runs on its **own runtime, on its own thread**: its tasks never
//! show up in the test runtime's `num_alive_tasks()`, so a test can compare
//! that metric with a baseline to see that the client left nothing behind,
//! and a test runtime that is stuck cannot stall the server (or vice versa).
//!
//! Every wait in here is bounded: a helper that waits panics with a message
//! after [`STEP`] rather than hanging the test.

// Each test crate uses a different subset of the helpers.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{StatusCode, header};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use wsdrain::protocol::Message;
use wsdrain::{Event, STREAM_PATH};

/// The bound on any single step a test waits for.
pub const STEP: Duration = Duration::from_secs(5);

/// Await `fut`, panicking with `what` if it takes longer than `limit`.
pub async fn within<F: Future>(limit: Duration, what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(limit, fut).await {
        Ok(output) => output,
        Err(_) => panic!("timed out after {limit:?}: {what}"),
    }
}

/// Poll `cond` every millisecond until it holds; panic after `limit`.
pub async fn eventually(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !cond() {
        if tokio::time::Instant::now() >= deadline {
            panic!("condition not reached within {limit:?}: {what}");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Alive tasks of the current runtime (the test's), per tokio's metrics.
pub fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Wait until the runtime's alive-task count is back to `baseline`. The
/// metric is updated when tokio releases a finished task, a moment after the
/// task's future (and its wait-group guard) has been dropped, so it is
/// polled rather than read once.
pub async fn alive_tasks_back_to(baseline: usize) {
    let mut last = alive_tasks();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while last != baseline {
        if tokio::time::Instant::now() >= deadline {
            panic!("runtime alive tasks stuck at {last}, baseline {baseline}");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        last = alive_tasks();
    }
}

/// A JSON protocol message `{"type": kind, "timestamp": now, ...fields}`.
pub fn msg(kind: &str, fields: Value) -> String {
    let mut object = serde_json::Map::new();
    object.insert("type".into(), json!(kind));
    object.insert("timestamp".into(), json!(now_millis()));
    if let Value::Object(fields) = fields {
        object.extend(fields);
    }
    Value::Object(object).to_string()
}

/// A `shell_output` message carrying `data`.
pub fn shell_output(data: &str) -> String {
    msg("shell_output", json!({ "data": data }))
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------
// Recording handler
// ---------------------------------------------------------------------------

/// The receiving end of a [`recorder`] handler.
pub struct Events {
    rx: mpsc::UnboundedReceiver<Event>,
}

/// A handler that forwards every event to the returned [`Events`].
pub fn recorder() -> (impl wsdrain::Handler + Clone, Events) {
    let (tx, rx) = mpsc::unbounded_channel();
    let handler = move |event: Event| {
        let _ = tx.send(event);
        std::future::ready(())
    };
    (handler, Events { rx })
}

impl Events {
    /// The next event (panics after [`STEP`]).
    pub async fn next(&mut self) -> Event {
        within(STEP, "the next handler event", self.rx.recv())
            .await
            .expect("the handler was dropped: the stream's reader is gone")
    }

    /// The next event, which must be a decoded message.
    pub async fn next_message(&mut self) -> Message {
        match self.next().await {
            Event::Message(envelope) => envelope.message,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    /// The next event must be `connected`.
    pub async fn expect_connected(&mut self) {
        let first = self.next_message().await;
        assert_eq!(
            first,
            Message::Connected,
            "the server sends `connected` first"
        );
    }

    /// An event that is already there, if any.
    pub fn try_next(&mut self) -> Option<Event> {
        self.rx.try_recv().ok()
    }
}

// ---------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------

/// Called synchronously, on the server's thread, when an upgrade request
/// arrives (before the server answers it).
pub type UpgradeHook = Arc<dyn Fn(&UpgradeInfo) + Send + Sync>;

/// How the test server behaves.
#[derive(Clone, Default)]
pub struct ServerConfig {
    token: Option<String>,
    silent: bool,
    no_pong: bool,
    hold_handshakes: bool,
    on_upgrade: Option<UpgradeHook>,
    instance_id: Option<String>,
    refuse_with: Option<u16>,
}

impl ServerConfig {
    /// Require `Authorization: Bearer <token>`; answer 401 otherwise.
    pub fn with_token(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }

    /// Do not send `connected` on upgrade.
    pub fn without_connected(mut self) -> Self {
        self.silent = true;
        self
    }

    /// Do not answer `ping` with `pong`.
    pub fn without_pong(mut self) -> Self {
        self.no_pong = true;
        self
    }

    /// Accept TCP connections but do not read the upgrade request until
    /// [`TestServer::release_handshakes`] lets them through.
    pub fn hold_handshakes(mut self) -> Self {
        self.hold_handshakes = true;
        self
    }

    /// Answer an upgrade whose `X-Instance-ID` is present and differs from
    /// `id` with 404, as kandev's Go server does.
    pub fn with_instance_id(mut self, id: &str) -> Self {
        self.instance_id = Some(id.to_owned());
        self
    }

    /// Answer every upgrade on the stream path with this HTTP status.
    pub fn refuse_with(mut self, status: u16) -> Self {
        self.refuse_with = Some(status);
        self
    }

    /// Run `hook` when an upgrade request arrives.
    pub fn on_upgrade(mut self, hook: impl Fn(&UpgradeInfo) + Send + Sync + 'static) -> Self {
        self.on_upgrade = Some(Arc::new(hook));
        self
    }
}

/// One upgrade request the server saw.
#[derive(Debug, Clone)]
pub struct UpgradeInfo {
    /// Connection number (from 1), shared with its [`ServerConn`].
    pub id: usize,
    /// The request path.
    pub path: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The `X-Instance-ID` header, if any.
    pub instance_id: Option<String>,
    /// Whether the server upgraded it (false: answered 401 or 404).
    pub accepted: bool,
}

/// How a server-side connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnEnd {
    /// The socket reached its end (after a close handshake, or plain EOF).
    Eof,
    /// The socket failed; e.g. the client vanished without a Close frame.
    Error(String),
    /// The test dropped it with [`ServerConn::drop_abruptly`].
    Dropped,
}

enum Command {
    Frames(Vec<WsMessage>),
    StopReading,
    Close(CloseCode, String),
    Drop,
}

struct ServerShared {
    config: ServerConfig,
    /// Upgraded connections whose server-side socket is still open.
    open: watch::Sender<usize>,
    /// TCP connections accepted so far.
    tcp_accepted: watch::Sender<usize>,
    next_id: AtomicUsize,
    gate: Semaphore,
    upgrades_log: Mutex<Vec<UpgradeInfo>>,
    upgrade_tx: mpsc::UnboundedSender<UpgradeInfo>,
    conn_tx: mpsc::UnboundedSender<ServerConn>,
}

/// A scriptable workspace-stream server on `127.0.0.1:<random port>`.
pub struct TestServer {
    addr: SocketAddr,
    shared: Arc<ServerShared>,
    conns: tokio::sync::Mutex<mpsc::UnboundedReceiver<ServerConn>>,
    upgrades: tokio::sync::Mutex<mpsc::UnboundedReceiver<UpgradeInfo>>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl TestServer {
    /// A server with the default behaviour (no token required).
    pub fn start() -> Self {
        Self::start_with(ServerConfig::default())
    }

    /// A server configured by `config`.
    pub fn start_with(config: ServerConfig) -> Self {
        let (conn_tx, conns) = mpsc::unbounded_channel();
        let (upgrade_tx, upgrades) = mpsc::unbounded_channel();
        let shared = Arc::new(ServerShared {
            config,
            open: watch::Sender::new(0),
            tcp_accepted: watch::Sender::new(0),
            next_id: AtomicUsize::new(1),
            gate: Semaphore::new(0),
            upgrades_log: Mutex::new(Vec::new()),
            upgrade_tx,
            conn_tx,
        });
        let (shutdown, shutdown_rx) = oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let server = shared.clone();
        std::thread::Builder::new()
            .name("test-server".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("server runtime");
                runtime.block_on(async move {
                    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
                    addr_tx.send(listener.local_addr().expect("addr")).unwrap();
                    tokio::select! {
                        _ = shutdown_rx => {}
                        () = accept_loop(server, listener) => {}
                    }
                });
                // Drop every connection task (and its socket) right away.
                runtime.shutdown_background();
            })
            .expect("server thread");
        let addr = addr_rx
            .recv_timeout(STEP)
            .expect("the test server did not start");
        Self {
            addr,
            shared,
            conns: tokio::sync::Mutex::new(conns),
            upgrades: tokio::sync::Mutex::new(upgrades),
            shutdown: Some(shutdown),
        }
    }

    /// `http://127.0.0.1:PORT`, what `Client::new` takes.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The next upgraded connection (panics after [`STEP`]).
    pub async fn next_conn(&self) -> ServerConn {
        let mut conns = self.conns.lock().await;
        within(STEP, "the next server connection", conns.recv())
            .await
            .expect("server gone")
    }

    /// The next upgrade request the server saw (panics after [`STEP`]).
    /// Fires when the request is read, before the server answers it.
    pub async fn next_upgrade(&self) -> UpgradeInfo {
        let mut upgrades = self.upgrades.lock().await;
        within(STEP, "the next upgrade request", upgrades.recv())
            .await
            .expect("server gone")
    }

    /// Every upgrade request seen so far.
    pub fn upgrades(&self) -> Vec<UpgradeInfo> {
        self.shared.upgrades_log.lock().unwrap().clone()
    }

    /// Upgraded connections whose server-side socket is still open.
    pub fn open_connections(&self) -> usize {
        *self.shared.open.borrow()
    }

    /// Wait until exactly `n` server-side connections are open.
    pub async fn wait_open(&self, n: usize) {
        let mut rx = self.shared.open.subscribe();
        let what = format!(
            "server-side open connections to reach {n} (now {})",
            self.open_connections()
        );
        within(STEP, &what, rx.wait_for(|open| *open == n))
            .await
            .expect("server gone");
    }

    /// TCP connections accepted so far.
    pub fn tcp_accepted(&self) -> usize {
        *self.shared.tcp_accepted.borrow()
    }

    /// Wait until at least `n` TCP connections have been accepted.
    pub async fn wait_tcp_accepted(&self, n: usize) {
        let mut rx = self.shared.tcp_accepted.subscribe();
        within(
            STEP,
            "TCP connections to be accepted",
            rx.wait_for(|k| *k >= n),
        )
        .await
        .expect("server gone");
    }

    /// Let `n` held handshakes proceed (see [`ServerConfig::hold_handshakes`]).
    pub fn release_handshakes(&self, n: usize) {
        self.shared.gate.add_permits(n);
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

async fn accept_loop(shared: Arc<ServerShared>, listener: TcpListener) {
    loop {
        let Ok((tcp, _peer)) = listener.accept().await else {
            continue;
        };
        shared.tcp_accepted.send_modify(|n| *n += 1);
        tokio::spawn(serve(shared.clone(), tcp));
    }
}

/// Decrements the open count when the server-side socket is gone.
struct OpenGuard(Arc<ServerShared>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.send_modify(|n| *n -= 1);
    }
}

async fn serve(shared: Arc<ServerShared>, tcp: TcpStream) {
    if shared.config.hold_handshakes {
        match shared.gate.acquire().await {
            Ok(permit) => permit.forget(),
            Err(_) => return,
        }
    }
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let seen: Arc<Mutex<Option<UpgradeInfo>>> = Arc::default();
    // tungstenite fixes the callback's signature, large error type included.
    #[allow(clippy::result_large_err)]
    let callback = {
        let shared = shared.clone();
        let seen = seen.clone();
        move |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
            let path = request.uri().path().to_owned();
            let authorization = request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let instance_id = request
                .headers()
                .get("x-instance-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let wrong_instance = shared
                .config
                .instance_id
                .as_ref()
                .is_some_and(|ours| instance_id.as_ref().is_some_and(|theirs| theirs != ours));
            let status = if path != STREAM_PATH || wrong_instance {
                Some(StatusCode::NOT_FOUND)
            } else if let Some(status) = shared.config.refuse_with {
                Some(StatusCode::from_u16(status).expect("a valid HTTP status"))
            } else if let Some(token) = &shared.config.token
                && authorization.as_deref() != Some(format!("Bearer {token}").as_str())
            {
                Some(StatusCode::UNAUTHORIZED)
            } else {
                None
            };
            let info = UpgradeInfo {
                id,
                path,
                authorization,
                instance_id,
                accepted: status.is_none(),
            };
            shared.upgrades_log.lock().unwrap().push(info.clone());
            *seen.lock().unwrap() = Some(info.clone());
            let _ = shared.upgrade_tx.send(info.clone());
            if let Some(hook) = &shared.config.on_upgrade {
                hook(&info);
            }
            match status {
                None => Ok(response),
                Some(status) => {
                    let mut refusal = ErrorResponse::new(Some(status.to_string()));
                    *refusal.status_mut() = status;
                    Err(refusal)
                }
            }
        }
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
        return; // refused (401/404) or a broken handshake
    };
    shared.open.send_modify(|n| *n += 1);
    let _open = OpenGuard(shared.clone());

    let info = seen.lock().unwrap().take().expect("upgrade info");
    let (cmd_tx, mut cmd_rx) = mpsc::unbounded_channel();
    let (msg_tx, msg_rx) = mpsc::unbounded_channel();
    let state = Arc::new(ConnState {
        id,
        authorization: info.authorization,
        log: Mutex::new(Vec::new()),
        sent: AtomicUsize::new(0),
        saw_close_frame: AtomicBool::new(false),
        end: watch::Sender::new(None),
    });

    if !shared.config.silent
        && ws
            .send(WsMessage::text(msg("connected", json!({}))))
            .await
            .is_err()
    {
        state
            .end
            .send_replace(Some(ConnEnd::Error("sending connected".into())));
        return;
    }
    let _ = shared.conn_tx.send(ServerConn {
        state: state.clone(),
        cmds: cmd_tx,
        messages: tokio::sync::Mutex::new(msg_rx),
    });

    let (mut sink, mut stream) = ws.split();
    let mut commands_open = true;
    let mut reading = true;
    let end = loop {
        tokio::select! {
            command = cmd_rx.recv(), if commands_open => match command {
                None => commands_open = false,
                Some(Command::Frames(frames)) => {
                    let mut failed = None;
                    for frame in frames {
                        if let Err(e) = sink.send(frame).await {
                            failed = Some(e.to_string());
                            break;
                        }
                        state.sent.fetch_add(1, Ordering::SeqCst);
                    }
                    if let Some(e) = failed {
                        break ConnEnd::Error(e);
                    }
                }
                Some(Command::Close(code, reason)) => {
                    let frame = CloseFrame { code, reason: reason.into() };
                    if let Err(e) = sink.send(WsMessage::Close(Some(frame))).await {
                        break ConnEnd::Error(e.to_string());
                    }
                    // Keep reading: the client's reply ends the socket.
                }
                Some(Command::Drop) => break ConnEnd::Dropped,
                Some(Command::StopReading) => reading = false,
            },
            frame = stream.next(), if reading => match frame {
                None => break ConnEnd::Eof,
                Some(Err(e)) => break ConnEnd::Error(e.to_string()),
                Some(Ok(WsMessage::Text(text))) => {
                    let value = serde_json::from_str::<Value>(text.as_str())
                        .unwrap_or_else(|_| Value::String(text.to_string()));
                    let is_ping = value.get("type").and_then(Value::as_str) == Some("ping");
                    state.log.lock().unwrap().push(value.clone());
                    let _ = msg_tx.send(value);
                    if is_ping && !shared.config.no_pong {
                        let pong = WsMessage::text(msg("pong", json!({})));
                        if let Err(e) = sink.send(pong).await {
                            break ConnEnd::Error(e.to_string());
                        }
                    }
                }
                Some(Ok(WsMessage::Binary(bytes))) => {
                    let value = json!({ "binary": bytes.len() });
                    state.log.lock().unwrap().push(value.clone());
                    let _ = msg_tx.send(value);
                }
                Some(Ok(WsMessage::Close(_))) => {
                    // tungstenite queues the reply; reading on flushes it.
                    state.saw_close_frame.store(true, Ordering::SeqCst);
                }
                Some(Ok(WsMessage::Pong(payload))) => {
                    let value = json!({
                        "control": "pong",
                        "payload": String::from_utf8_lossy(&payload),
                    });
                    state.log.lock().unwrap().push(value.clone());
                    let _ = msg_tx.send(value);
                }
                Some(Ok(_)) => {} // pings (tungstenite answers them) and raw frames
            },
            // Not reading and no handle left: hold the socket, like a stalled
            // peer, until the server shuts down.
            else => std::future::pending::<()>().await,
        }
    };
    // Close the socket before reporting the end, so that a test woken by
    // the report finds the socket gone.
    drop((sink, stream));
    state.end.send_replace(Some(end));
}

struct ConnState {
    id: usize,
    authorization: Option<String>,
    /// Everything the client sent (text parsed as JSON; non-JSON text as a
    /// JSON string; binary as `{"binary": len}`; a WebSocket Pong control
    /// frame as `{"control": "pong", "payload": ..}`).
    log: Mutex<Vec<Value>>,
    /// Frames sent by [`ServerConn`] commands (not `connected`/`pong`).
    sent: AtomicUsize,
    saw_close_frame: AtomicBool,
    end: watch::Sender<Option<ConnEnd>>,
}

/// The test's handle on one upgraded server-side connection. Dropping it
/// does not close the connection.
pub struct ServerConn {
    state: Arc<ConnState>,
    cmds: mpsc::UnboundedSender<Command>,
    messages: tokio::sync::Mutex<mpsc::UnboundedReceiver<Value>>,
}

impl ServerConn {
    /// The connection number (matches [`UpgradeInfo::id`]).
    pub fn id(&self) -> usize {
        self.state.id
    }

    /// The `Authorization` header of its upgrade request.
    pub fn authorization(&self) -> Option<&str> {
        self.state.authorization.as_deref()
    }

    fn command(&self, command: Command) {
        // The connection may be gone already; tests check that separately.
        let _ = self.cmds.send(command);
    }

    /// Send one text frame, verbatim.
    pub fn send_text(&self, text: impl Into<String>) {
        self.command(Command::Frames(vec![WsMessage::text(text.into())]));
    }

    /// Send many text frames back to back.
    pub fn send_texts(&self, texts: impl IntoIterator<Item = String>) {
        let frames = texts.into_iter().map(WsMessage::text).collect();
        self.command(Command::Frames(frames));
    }

    /// Send one binary frame.
    pub fn send_binary(&self, bytes: Vec<u8>) {
        self.command(Command::Frames(vec![WsMessage::binary(bytes)]));
    }

    /// Send a WebSocket Ping control frame (not the protocol's `ping`).
    pub fn send_ping_frame(&self, payload: &str) {
        let frame = WsMessage::Ping(payload.as_bytes().to_vec().into());
        self.command(Command::Frames(vec![frame]));
    }

    /// Send `n` WebSocket Ping frames in one go.
    pub fn send_ping_frames(&self, n: usize) {
        let frame = WsMessage::Ping(b"flood".to_vec().into());
        self.command(Command::Frames(vec![frame; n]));
    }

    /// Start a normal close handshake (code 1000).
    pub fn close(&self) {
        self.command(Command::Close(CloseCode::Normal, "server closing".into()));
    }

    /// Start a close handshake with this code and reason.
    pub fn close_with(&self, code: u16, reason: &str) {
        self.command(Command::Close(CloseCode::from(code), reason.into()));
    }

    /// Stop reading from the socket (until the connection is dropped): what
    /// the client writes piles up in the TCP buffers, then blocks.
    pub fn stop_reading(&self) {
        self.command(Command::StopReading);
    }

    /// Drop the TCP stream without a Close frame.
    pub fn drop_abruptly(&self) {
        self.command(Command::Drop);
    }

    /// Frames sent so far by the commands above.
    pub fn sent(&self) -> usize {
        self.state.sent.load(Ordering::SeqCst)
    }

    /// The next message the client sent (panics after [`STEP`]).
    pub async fn next_message(&self) -> Value {
        let mut messages = self.messages.lock().await;
        within(STEP, "the next client message", messages.recv())
            .await
            .expect("connection task gone before the client sent anything more")
    }

    /// The next message of `kind`, skipping others.
    pub async fn next_of_type(&self, kind: &str) -> Value {
        loop {
            let message = self.next_message().await;
            if message.get("type").and_then(Value::as_str) == Some(kind) {
                return message;
            }
        }
    }

    /// Everything the client has sent so far.
    pub fn received(&self) -> Vec<Value> {
        self.state.log.lock().unwrap().clone()
    }

    /// Whether the client sent a Close frame.
    pub fn saw_close_frame(&self) -> bool {
        self.state.saw_close_frame.load(Ordering::SeqCst)
    }

    /// Wait until the server-side socket is closed; how it ended.
    pub async fn wait_closed(&self) -> ConnEnd {
        let mut rx = self.state.end.subscribe();
        let end = within(
            STEP,
            "the server-side connection to close",
            rx.wait_for(Option::is_some),
        )
        .await
        .expect("connection state gone");
        end.clone().expect("checked")
    }

    /// Wait until the client has closed the connection, and check it did so
    /// with a Close frame. The socket itself may end in a clean EOF or, when
    /// the client closed with server data still unread (its kernel then
    /// answers with RST), in an I/O error: both are the client going away.
    pub async fn wait_closed_by_client(&self) -> ConnEnd {
        let end = self.wait_closed().await;
        assert_ne!(
            end,
            ConnEnd::Dropped,
            "the server dropped it, not the client"
        );
        assert!(
            self.saw_close_frame(),
            "the client went away without a Close frame ({end:?})"
        );
        end
    }

    /// Whether the server-side socket is closed.
    pub fn is_closed(&self) -> bool {
        self.state.end.borrow().is_some()
    }
}

// ---------------------------------------------------------------------------
// Dead ends
// ---------------------------------------------------------------------------

/// An address nothing listens on: bind a port, then let it go.
pub fn refused_base_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}")
}

/// A TCP listener that accepts connections and never answers (holds them
/// open until dropped), on the test's runtime.
pub struct SilentListener {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl SilentListener {
    /// Bind on `127.0.0.1:0` and start accepting.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((tcp, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                held.push(tcp);
            }
        });
        Self {
            addr,
            accepted,
            task,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for SilentListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

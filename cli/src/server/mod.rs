//! A workspace-stream server: what `wsdrain serve` runs, as a library, so
//! tests and benchmarks can run it in-process.
//!
//! It serves `GET /api/v1/workspace/stream` (see [`STREAM_PATH`](wsdrain::STREAM_PATH))
//! the way the agentctl server does (protocol.md, section 3), for one
//! workspace directory:
//!
//! * **Who may upgrade**, checked in this order on every request to the
//!   stream path (any other path is `404`, another method `405`):
//!   - `Host` must name this server: `localhost`, a loopback address, the
//!     bound address (any IP literal when bound to `0.0.0.0`/`::`), or a name
//!     in [`ServerConfig::allowed_hosts`]; else `403` (a DNS-rebinding page
//!     sends its own name).
//!   - `Origin` must be absent (not a browser) or in
//!     [`ServerConfig::allowed_origins`] (none by default); else `403`,
//!     `null` included. Browsers do not apply CORS to WebSockets: this is
//!     what keeps a web page the user visits away from the shell.
//!   - With a token configured, `Authorization: Bearer <token>` (compared
//!     in constant time), else `401`. [`Server::bind`] refuses a
//!     non-loopback address without a token. (The library has no token by
//!     default; `wsdrain serve` generates one.)
//!   - With [`ServerConfig::instance_id`], an `X-Instance-ID` header naming
//!     another instance gets `404` (as agentctl answers).
//!   - Not a WebSocket upgrade: `426`. More than 64 headers or 16 KiB of
//!     head: `431`. [`ServerConfig::max_connections`] (128) open: `503`.
//! * **Messages.** `connected` first, then the current `git_status` (when the
//!   workspace is in a git repository), then `file_change` and `git_status`
//!   events as they happen, and the connection's own shell's `shell_output`
//!   and `shell_exit`. The server answers `ping` with `pong`, writes
//!   `shell_input` to the shell and honours `shell_resize` (the shell runs on
//!   a pty). A malformed message from the client is answered with an `error`
//!   message; the connection goes on.
//! * **One shell per connection**, started in the workspace on a new pty
//!   (`$TERM` defaults to `xterm-256color`) when the connection first needs
//!   it: its first `shell_input` or `shell_resize` (so a connection that
//!   only watches files costs no process, and many open fast; the shell's
//!   prompt arrives after that first message). It lives as long as the
//!   connection; when it exits by itself the connection stays open (file and
//!   git events go on) and later `shell_input` is answered with an `error`.
//!   `shell_input` goes through a queue (64 messages) to a task that writes
//!   the pty, so the connection's reader never waits on the shell: a client
//!   that goes away is noticed whatever the shell is doing. A shell that
//!   reads none of a full queue for [`ServerConfig::write_timeout`] ends the
//!   connection (close 1008).
//!   When the connection ends, every process group of the shell's
//!   **session** (the shell's, the foreground job's, background and `nohup`
//!   jobs: every process whose session id is the shell's) gets `SIGHUP`;
//!   after [`ServerConfig::shell_grace`], or as soon as the session is
//!   empty, what is left gets `SIGKILL`, and the shell is reaped. Jobs a
//!   shell that exited by itself left behind end the same way when the
//!   connection does. Processes that left the session (`setsid`) are not
//!   found.
//! * **Protocol errors** end the connection with a close frame: `1002`
//!   (protocol error, e.g. an unmasked frame), `1007` (a text frame that is
//!   not UTF-8), `1009` (over [`ServerConfig::max_message_size`]), `1011`
//!   (internal error).
//!
//! # File events and their coalescing rule
//!
//! One recursive watcher (`notify`: inotify on Linux) serves every
//! connection. Raw events are collected in **batches**: a batch opens with
//! the first event after a quiet moment and is published
//! [`ServerConfig::coalesce_window`] (50 ms) later. Within a batch, each
//! path's events reduce to at most one `file_change` (paths relative to the
//! workspace, `/`-separated, in the order they were first touched):
//!
//! | the path's events in the batch | published |
//! |---|---|
//! | `create`, then any `write`/`chmod` | `create` |
//! | `write`/`chmod` in any mix | `write` if there was a write, else `chmod` |
//! | anything, then `remove` | `remove` |
//! | anything, then renamed away | `rename` (the old path) |
//! | `remove`/rename away, then `create`/`write` (a replace, e.g. an editor's atomic save) | `write` |
//! | `create`, then `remove`/rename away (a temporary file) | nothing |
//!
//! A rename shows up as `rename` for the old path and `create` for the new
//! one (as Go's fsnotify reports it). So a burst of writes to one file is one
//! `write` per window, and an event is published at most 50 ms after it
//! happened. Events under `.git/` are not published (they only schedule a
//! git status refresh). If the kernel's or the watcher's queue overflows, a
//! `file_change` with operation `refresh` and an empty path tells clients to
//! rescan the whole workspace. Symbolic links are not followed (nothing
//! outside the workspace is watched or published). If the workspace
//! directory is deleted, clients get an `error` message saying so and it is
//! logged at `warn`; when a directory appears at the same path again, it is
//! watched again and clients get a `refresh`.
//!
//! # Git status
//!
//! When the workspace is inside a git repository, `git status
//! --porcelain=v2 --branch -z` (with `GIT_OPTIONAL_LOCKS=0`, so it never
//! writes the index and retriggers itself) runs at start, after file changes
//! (at most once per [`ServerConfig::git_interval`], 500 ms) and every
//! [`ServerConfig::git_poll_interval`] (10 s). A `git_status` is published
//! only when the status changed. Paths are relative to the repository root
//! (as git prints them); `ahead`/`behind` (like `remote_ahead`/`remote_behind`)
//! count commits against the upstream branch, as there is no base branch here.
//!
//! # Slow clients: the overflow policy
//!
//! Nothing a client does can block another connection or make memory grow
//! without bound:
//!
//! * Workspace events (`file_change`, `git_status`) go through one shared
//!   ring of [`ServerConfig::event_buffer`] (1024) events, encoded once.
//!   Each connection has a bounded outbound queue of
//!   [`ServerConfig::queue_capacity`] (256) messages. A connection that
//!   falls more than the ring's size behind **loses its oldest events**
//!   (counted in [`ServerStats::events_dropped`], logged at `warn`) and is
//!   then sent a `file_change` with operation `refresh` and an empty path
//!   (rescan the workspace), followed by the current `git_status`.
//! * The shell's output is backpressured instead: the connection's shell is
//!   not read while its queue is full, so a slow client only slows its own
//!   shell.
//! * A connection whose socket accepts no data for
//!   [`ServerConfig::write_timeout`] (30 s), or whose unsent data reaches
//!   [`ServerConfig::max_write_buffer`] (2 MiB; a peer that floods pings and
//!   reads nothing gets there), is dropped (logged at `warn`, counted in
//!   [`ServerStats::clients_dropped`]); it cannot be sent a close frame, as
//!   it reads nothing. The server sends a WebSocket ping every
//!   [`ServerConfig::keepalive_interval`] (5 s) without other traffic, so
//!   such a peer, or one that went away, is found even when all is quiet.
//!
//! # Shutdown
//!
//! [`Server::run_until`] (and [`RunningServer::shutdown`]) stop accepting,
//! send every connection a close frame (1001, "server shutting down"), kill
//! and reap every shell, stop the watcher and the git task, and return once
//! every task the server started has ended (they are all tracked).
//!
//! # Example
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use wsdrain_cli::server::{Server, ServerConfig};
//!
//! let server = Server::bind(ServerConfig::new("/tmp/ws")).await?.start();
//! let client = wsdrain::Client::new(&server.url())?;
//! // ... stream ...
//! client.close().await;
//! server.shutdown().await;
//! # Ok(()) }
//! ```

mod conn;
mod git;
mod handshake;
mod shell;
mod watch;

use std::ffi::OsString;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch as tokio_watch};
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;

use wsdrain::protocol::{Envelope, Message};

/// Server settings. Start from [`ServerConfig::new`] and chain `with_*`.
#[derive(Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Address to listen on (default `127.0.0.1:0`: loopback, any free port).
    pub addr: SocketAddr,
    /// Bearer token clients must send; required on a non-loopback address.
    pub token: Option<String>,
    /// The workspace directory to watch and to start shells in.
    pub workspace: PathBuf,
    /// The shell program (default `$SHELL`, else `/bin/sh`).
    pub shell: OsString,
    /// Capacity of each connection's outbound queue, in messages (default 256).
    pub queue_capacity: usize,
    /// Capacity of the shared workspace-event ring (default 1024): how far a
    /// connection may fall behind before it loses its oldest events.
    pub event_buffer: usize,
    /// A connection whose socket takes no data for this long is dropped (default 30 s).
    pub write_timeout: Duration,
    /// Bound on reading the upgrade request (default 10 s).
    pub handshake_timeout: Duration,
    /// Largest message accepted from a client (default 1 MiB).
    pub max_message_size: usize,
    /// The file-event batch window (default 50 ms).
    pub coalesce_window: Duration,
    /// Least time between two `git status` runs triggered by changes (default 500 ms).
    pub git_interval: Duration,
    /// `git status` also runs this often without a trigger (default 10 s; zero: never).
    pub git_poll_interval: Duration,
    /// Time between `SIGHUP` and `SIGKILL` when a shell is stopped (default 500 ms).
    pub shell_grace: Duration,
    /// Browser origins allowed to upgrade (`Origin` header, e.g.
    /// `https://app.example`); a request without `Origin` (not a browser) always
    /// passes. Default: none.
    pub allowed_origins: Vec<String>,
    /// Host names, besides the loopback names and the bound address, that the
    /// `Host` header may carry (a DNS-rebinding guard). Default: none.
    pub allowed_hosts: Vec<String>,
    /// Connections open at once; the next upgrade is answered 503 (default 128).
    pub max_connections: usize,
    /// When set, an upgrade carrying a different `X-Instance-ID` header is
    /// answered 404, as agentctl does (a request without the header passes).
    pub instance_id: Option<String>,
    /// Bound on a connection's unsent WebSocket data, in bytes (default 2 MiB);
    /// also the largest message the server can send. A peer that lets it fill
    /// (it does not read, e.g. while flooding pings) is dropped.
    pub max_write_buffer: usize,
    /// The server sends a WebSocket ping this often, so a client that went
    /// away is noticed even when nothing else is sent (default 5 s).
    pub keepalive_interval: Duration,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("addr", &self.addr)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("workspace", &self.workspace)
            .field("shell", &self.shell)
            .field("queue_capacity", &self.queue_capacity)
            .field("event_buffer", &self.event_buffer)
            .field("write_timeout", &self.write_timeout)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("max_message_size", &self.max_message_size)
            .field("coalesce_window", &self.coalesce_window)
            .field("git_interval", &self.git_interval)
            .field("git_poll_interval", &self.git_poll_interval)
            .field("shell_grace", &self.shell_grace)
            .field("allowed_origins", &self.allowed_origins)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("max_connections", &self.max_connections)
            .field("instance_id", &self.instance_id)
            .field("max_write_buffer", &self.max_write_buffer)
            .field("keepalive_interval", &self.keepalive_interval)
            .finish()
    }
}

impl ServerConfig {
    /// Defaults for serving `workspace`.
    pub fn new(workspace: impl Into<PathBuf>) -> Self {
        Self {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            token: None,
            workspace: workspace.into(),
            shell: std::env::var_os("SHELL")
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "/bin/sh".into()),
            queue_capacity: 256,
            event_buffer: 1024,
            write_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(10),
            max_message_size: 1 << 20,
            coalesce_window: Duration::from_millis(50),
            git_interval: Duration::from_millis(500),
            git_poll_interval: Duration::from_secs(10),
            shell_grace: Duration::from_millis(500),
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            max_connections: 128,
            instance_id: None,
            max_write_buffer: 2 << 20,
            keepalive_interval: Duration::from_secs(5),
        }
    }

    /// Listen on `addr`.
    pub fn with_addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Require `Authorization: Bearer <token>` (an empty token means none).
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token.filter(|t| !t.is_empty());
        self
    }

    /// Run `shell` for each connection.
    pub fn with_shell(mut self, shell: impl Into<OsString>) -> Self {
        self.shell = shell.into();
        self
    }

    /// Set each connection's outbound queue capacity (at least 1).
    pub fn with_queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity.max(1);
        self
    }

    /// Set the shared event ring's capacity (at least 1).
    pub fn with_event_buffer(mut self, capacity: usize) -> Self {
        self.event_buffer = capacity.max(1);
        self
    }

    /// Set the write timeout after which a stuck connection is dropped.
    pub fn with_write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// Set the file-event batch window.
    pub fn with_coalesce_window(mut self, window: Duration) -> Self {
        self.coalesce_window = window;
        self
    }

    /// Set the least time between two triggered `git status` runs.
    pub fn with_git_interval(mut self, interval: Duration) -> Self {
        self.git_interval = interval;
        self
    }

    /// Set the untriggered `git status` period (zero: never).
    pub fn with_git_poll_interval(mut self, interval: Duration) -> Self {
        self.git_poll_interval = interval;
        self
    }

    /// Set the grace time between `SIGHUP` and `SIGKILL` for shells.
    pub fn with_shell_grace(mut self, grace: Duration) -> Self {
        self.shell_grace = grace;
        self
    }

    /// Allow upgrades from these browser origins (`scheme://host[:port]`).
    pub fn with_allowed_origins(mut self, origins: impl IntoIterator<Item = String>) -> Self {
        self.allowed_origins = origins
            .into_iter()
            .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
            .collect();
        self
    }

    /// Accept these names in the `Host` header too (no port).
    pub fn with_allowed_hosts(mut self, hosts: impl IntoIterator<Item = String>) -> Self {
        self.allowed_hosts = hosts
            .into_iter()
            .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
            .collect();
        self
    }

    /// Set how many connections may be open at once (at least 1).
    pub fn with_max_connections(mut self, max: usize) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// Answer an upgrade with another `X-Instance-ID` with 404 (empty: no check).
    pub fn with_instance_id(mut self, id: Option<String>) -> Self {
        self.instance_id = id.filter(|i| !i.is_empty());
        self
    }

    /// Set the bound on a connection's unsent data (at least 256 KiB).
    pub fn with_max_write_buffer(mut self, bytes: usize) -> Self {
        self.max_write_buffer = bytes.max(256 << 10);
        self
    }

    /// Set the keepalive ping period (zero: no pings).
    pub fn with_keepalive_interval(mut self, interval: Duration) -> Self {
        self.keepalive_interval = interval;
        self
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// A non-loopback address was asked for without a token.
    #[error(
        "refusing to listen on non-loopback address {addr} without a token (set --token or WSDRAIN_TOKEN)"
    )]
    NonLoopbackWithoutToken {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// The workspace is missing or not a directory.
    #[error("workspace {path:?}: {reason}")]
    Workspace {
        /// The path given.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file watcher could not be started.
    #[error("cannot watch the workspace: {0}")]
    Watch(#[from] notify::Error),
}

impl ServerError {
    /// Whether this is a configuration mistake (as opposed to a runtime failure).
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            ServerError::NonLoopbackWithoutToken { .. } | ServerError::Workspace { .. }
        )
    }
}

/// Counters of a running server (a snapshot; see [`Server::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStats {
    /// Connections upgraded so far.
    pub connections_total: u64,
    /// Connections open now.
    pub connections_open: u64,
    /// Shells running now (started and not yet reaped).
    pub shells_running: u64,
    /// Workspace events published (file changes and git statuses).
    pub events_published: u64,
    /// Workspace events a slow connection lost (summed over connections).
    pub events_dropped: u64,
    /// Connections dropped because their socket took no data in time.
    pub clients_dropped: u64,
    /// Upgrade requests refused with 401.
    pub unauthorized: u64,
    /// Upgrade requests refused with 403 (foreign `Origin` or `Host`).
    pub forbidden: u64,
    /// Upgrade requests refused with 503 (`max_connections` reached).
    pub over_capacity: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    connections_total: AtomicU64,
    connections_open: AtomicU64,
    shells_running: AtomicU64,
    events_published: AtomicU64,
    events_dropped: AtomicU64,
    clients_dropped: AtomicU64,
    unauthorized: AtomicU64,
    forbidden: AtomicU64,
    over_capacity: AtomicU64,
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

fn drop_one(counter: &AtomicU64) {
    counter.fetch_sub(1, Ordering::Relaxed);
}

impl Counters {
    fn snapshot(&self) -> ServerStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ServerStats {
            connections_total: get(&self.connections_total),
            connections_open: get(&self.connections_open),
            shells_running: get(&self.shells_running),
            events_published: get(&self.events_published),
            events_dropped: get(&self.events_dropped),
            clients_dropped: get(&self.clients_dropped),
            unauthorized: get(&self.unauthorized),
            forbidden: get(&self.forbidden),
            over_capacity: get(&self.over_capacity),
        }
    }
}

/// What every connection shares.
pub(crate) struct Shared {
    pub(crate) config: ServerConfig,
    /// The canonical workspace path.
    pub(crate) root: PathBuf,
    /// Workspace events, encoded once for everyone.
    pub(crate) events: broadcast::Sender<Utf8Bytes>,
    /// The latest `git_status` message, for new and lagging connections.
    pub(crate) git_latest: tokio_watch::Receiver<Option<Utf8Bytes>>,
    pub(crate) counters: Counters,
    /// The address the server listens on (the `Host` check accepts its IP).
    pub(crate) local_addr: SocketAddr,
    /// One permit per open connection (`max_connections`).
    pub(crate) slots: Arc<tokio::sync::Semaphore>,
}

impl Shared {
    /// Publish a workspace event to every connection.
    pub(crate) fn publish(&self, text: Utf8Bytes) {
        bump(&self.counters.events_published, 1);
        // No receiver is fine: nobody is connected.
        let _ = self.events.send(text);
    }
}

/// Encode a message with the current time.
pub(crate) fn encode(message: Message) -> Utf8Bytes {
    Envelope::new(message).encode().into()
}

/// An RFC 3339 UTC timestamp with milliseconds, for nested payloads.
pub(crate) fn rfc3339_now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// Pause after a failed `accept` (EMFILE and friends), instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Logs failed `accept`s at most once a second.
#[derive(Default)]
struct AcceptErrors {
    last_logged: Option<std::time::Instant>,
    suppressed: u64,
}

impl AcceptErrors {
    fn failed(&mut self, error: &std::io::Error) {
        let now = std::time::Instant::now();
        if self
            .last_logged
            .is_some_and(|at| now.duration_since(at) < Duration::from_secs(1))
        {
            self.suppressed += 1;
            return;
        }
        tracing::warn!(%error, not_logged = self.suppressed, "accept failed; backing off");
        self.last_logged = Some(now);
        self.suppressed = 0;
    }
}

/// A bound server, not yet accepting. See the [module docs](self).
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    /// Kept alive while the server runs; dropping it stops the watcher thread.
    watcher: watch::SharedWatcher,
    /// A server dropped without running stops its watcher and git tasks.
    _stop_on_drop: DropGuard,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("root", &self.shared.root)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Check the configuration, bind the address, and start the workspace
    /// watcher and the git task. Must run inside a tokio runtime.
    pub async fn bind(config: ServerConfig) -> Result<Server, ServerError> {
        if !config.addr.ip().is_loopback() && config.token.is_none() {
            return Err(ServerError::NonLoopbackWithoutToken { addr: config.addr });
        }
        let workspace_error = |reason: String| ServerError::Workspace {
            path: config.workspace.clone(),
            reason,
        };
        let root =
            std::fs::canonicalize(&config.workspace).map_err(|e| workspace_error(e.to_string()))?;
        if !root.is_dir() {
            return Err(workspace_error("not a directory".into()));
        }
        let listener =
            TcpListener::bind(config.addr)
                .await
                .map_err(|source| ServerError::Bind {
                    addr: config.addr,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: config.addr,
            source,
        })?;

        let config_max = config.max_connections;
        let (events, _) = broadcast::channel(config.event_buffer);
        let (git_tx, git_latest) = tokio_watch::channel(None);
        let shared = Arc::new(Shared {
            config,
            root,
            events,
            git_latest,
            counters: Counters::default(),
            local_addr,
            slots: Arc::new(tokio::sync::Semaphore::new(config_max)),
        });
        let tracker = TaskTracker::new();
        let shutdown = CancellationToken::new();

        let git_trigger = Arc::new(tokio::sync::Notify::new());
        let watcher = watch::start(&shared, &tracker, &shutdown, git_trigger.clone())?;
        tracker.spawn(git::run(
            shared.clone(),
            git_tx,
            git_trigger,
            shutdown.clone(),
        ));

        tracing::info!(addr = %local_addr, workspace = %shared.root.display(), auth = shared.config.token.is_some(), "workspace server listening");
        Ok(Server {
            listener,
            local_addr,
            shared,
            tracker,
            _stop_on_drop: shutdown.clone().drop_guard(),
            shutdown,
            watcher,
        })
    }

    /// The address the server listens on (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The base URL clients use: `http://HOST:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// The canonical workspace path.
    pub fn workspace(&self) -> &Path {
        &self.shared.root
    }

    /// Current counters.
    pub fn stats(&self) -> ServerStats {
        self.shared.counters.snapshot()
    }

    /// Serve until `signal` resolves, then shut down and drain (see the
    /// [module docs](self#shutdown)).
    pub async fn run_until(self, signal: impl Future<Output = ()>) {
        let Server {
            listener,
            shared,
            tracker,
            shutdown,
            watcher,
            _stop_on_drop,
            ..
        } = self;
        let mut signal = std::pin::pin!(signal);
        let mut accept_errors = AcceptErrors::default();
        loop {
            tokio::select! {
                () = &mut signal => break,
                () = shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        let _ = tcp.set_nodelay(true);
                        tracker.spawn(conn::serve(
                            shared.clone(),
                            tcp,
                            peer,
                            shutdown.child_token(),
                            tracker.clone(),
                        ));
                    }
                    Err(error) => {
                        // EMFILE and friends: log at most once a second (with
                        // how many were not logged), back off instead of spinning.
                        accept_errors.failed(&error);
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                },
            }
        }
        drop(listener);
        tracing::info!(
            connections = shared.counters.connections_open.load(Ordering::Relaxed),
            "shutting down: closing connections and stopping shells"
        );
        shutdown.cancel();
        drop(watcher);
        tracker.close();
        tracker.wait().await;
        drop(_stop_on_drop);
        tracing::info!("server drained");
    }

    /// Run in the background; [`RunningServer::shutdown`] stops and drains it.
    pub fn start(self) -> RunningServer {
        let local_addr = self.local_addr;
        let shared = self.shared.clone();
        let stop = self.shutdown.clone();
        let task = tokio::spawn(self.run_until(std::future::pending()));
        RunningServer {
            local_addr,
            shared,
            stop,
            task,
        }
    }
}

/// A server running in the background (see [`Server::start`]).
#[derive(Debug)]
pub struct RunningServer {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl RunningServer {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The base URL clients use: `http://HOST:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// Current counters.
    pub fn stats(&self) -> ServerStats {
        self.shared.counters.snapshot()
    }

    /// Stop accepting, close every connection, stop every shell, and wait
    /// until every task of the server has ended; the final counters.
    pub async fn shutdown(self) -> ServerStats {
        self.stop.cancel();
        if let Err(error) = self.task.await {
            tracing::error!(%error, "server task failed");
        }
        self.shared.counters.snapshot()
    }
}

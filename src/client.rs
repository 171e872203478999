//! The workspace-stream client and its drain barrier.

use std::fmt;
use std::time::Duration;

#[cfg(wsdrain_bugs)]
use crate::bugs::Bugs;
use crate::handler::Handler;
use crate::probe::Probe;
use crate::stream::{StreamInner, WorkspaceStream, start_tasks};
use crate::sync::unchecked::IdCounter;
use crate::sync::{Arc, Mutex, WaitGroup, current_task};
use crate::transport::{FrameWriter, Target, Transport, WsTransport};
use crate::{Error, Result};

/// The path of the workspace stream on an agentctl server.
pub const STREAM_PATH: &str = "/api/v1/workspace/stream";

/// Client settings. Start from [`ClientConfig::default`] and chain `with_*`.
#[derive(Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Bearer token sent on the upgrade request, if any.
    pub token: Option<String>,
    /// Bound on TCP connect plus handshake (default 10 s).
    pub connect_timeout: Duration,
    /// Largest message accepted from the server (default 16 MiB); a larger
    /// one ends the stream with [`Error::MessageTooLarge`].
    pub max_message_size: usize,
    /// Capacity of each stream's input queue (default 64, as in Go).
    pub input_queue_capacity: usize,
    /// Bound on sending the Close frame when a stream shuts down (default 1 s).
    pub close_timeout: Duration,
    /// Read buffer of each connection, in bytes (default 128 KiB, as
    /// tungstenite). It dominates the memory of an idle stream: 4 KiB brings
    /// 10,000 idle streams from about 140 KiB to about 12 KiB each
    /// (docs/performance.md); larger messages still arrive, in more reads.
    pub read_buffer_size: usize,
    /// Sent as `X-Instance-ID: <id>` on the upgrade request when set and not
    /// empty, as kandev's Go client sends its execution id. A Go server whose
    /// instance id differs answers 404 ([`Error::UpgradeRejected`]), so a
    /// client does not attach to a different agent that reuses the port.
    pub instance_id: Option<String>,
    #[cfg(wsdrain_bugs)]
    pub(crate) bugs: Bugs,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            token: None,
            connect_timeout: Duration::from_secs(10),
            max_message_size: 16 << 20,
            input_queue_capacity: 64,
            close_timeout: Duration::from_secs(1),
            read_buffer_size: 128 * 1024,
            instance_id: None,
            #[cfg(wsdrain_bugs)]
            bugs: Bugs::NONE,
        }
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("connect_timeout", &self.connect_timeout)
            .field("max_message_size", &self.max_message_size)
            .field("input_queue_capacity", &self.input_queue_capacity)
            .field("close_timeout", &self.close_timeout)
            .field("read_buffer_size", &self.read_buffer_size)
            .field("instance_id", &self.instance_id)
            .finish_non_exhaustive()
    }
}

impl ClientConfig {
    /// Send `Authorization: Bearer <token>`.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Set the connect + handshake timeout.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Set the largest accepted message, in bytes.
    pub fn with_max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// Set the input queue capacity (at least 1).
    pub fn with_input_queue_capacity(mut self, capacity: usize) -> Self {
        self.input_queue_capacity = capacity.max(1);
        self
    }

    /// Set the bound on the graceful close of the write side.
    pub fn with_close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Set each connection's read buffer, in bytes (at least 1 KiB).
    pub fn with_read_buffer_size(mut self, bytes: usize) -> Self {
        self.read_buffer_size = bytes.max(1024);
        self
    }

    /// Send `X-Instance-ID: <id>` on the upgrade (an empty id sends nothing).
    pub fn with_instance_id(mut self, id: impl Into<String>) -> Self {
        self.instance_id = Some(id.into());
        self
    }

    /// Switch historical bugs back on (builds with `--cfg wsdrain_bugs` only).
    #[cfg(wsdrain_bugs)]
    pub fn with_bugs(mut self, bugs: Bugs) -> Self {
        self.bugs = bugs;
        self
    }
}

/// Turn `http://HOST:PORT` (or `https://`) into the stream's `ws(s)://` URL.
pub fn stream_url(base_url: &str) -> Result<String> {
    let invalid = |reason: &str| Error::InvalidUrl {
        url: base_url.to_owned(),
        reason: reason.to_owned(),
    };
    let trimmed = base_url.trim_end_matches('/');
    let (scheme, rest) = if let Some(rest) = trimmed.strip_prefix("http://") {
        ("ws", rest)
    } else if let Some(rest) = trimmed.strip_prefix("https://") {
        ("wss", rest)
    } else {
        return Err(invalid("expected http://HOST:PORT or https://HOST:PORT"));
    };
    if rest.is_empty() || rest.starts_with(':') {
        return Err(invalid("missing host"));
    }
    if rest.contains(['?', '#', ' ']) {
        return Err(invalid("a base URL has no query, fragment or spaces"));
    }
    Ok(format!("{scheme}://{rest}{STREAM_PATH}"))
}

/// A client of one agent's workspace stream.
///
/// At most one stream is connected at a time. [`close`](Client::close) is a
/// drain barrier: when it returns, every task of every stream this client
/// started has exited, and none can start later (later
/// [`stream_workspace`](Client::stream_workspace) calls fail with
/// [`Error::ClientClosed`]).
///
/// Clones share the client. Dropping the handles does not stop a stream:
/// it runs until either side closes it; call `close()` to stop it.
///
/// The transport is a type parameter so the very same code runs over real
/// WebSockets ([`WsTransport`], the default) and over the in-memory transport
/// the model checkers use.
pub struct Client<T: Transport = WsTransport> {
    shared: Arc<Shared<T>>,
}

impl<T: Transport> Clone for Client<T> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<T: Transport> fmt::Debug for Client<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.shared.target.url)
            .field("live_tasks", &self.live_tasks())
            .finish_non_exhaustive()
    }
}

pub(crate) struct Shared<T> {
    transport: T,
    target: Target,
    config: ClientConfig,
    pub(crate) state: Mutex<State>,
    /// Every task of every stream this client started (the drain barrier).
    /// A reader is counted out when it exits, or earlier by a `close()` that
    /// runs on it (from its handler); see `close()`.
    pub(crate) tasks: WaitGroup,
    pub(crate) probe: Probe,
    /// Stream ids, for logs and the probe.
    next_stream: IdCounter,
}

#[cfg(wsdrain_bugs)]
impl<T> Shared<T> {
    pub(crate) fn bugs(&self) -> Bugs {
        self.config.bugs
    }
}

#[derive(Default)]
pub(crate) struct State {
    closed: bool,
    /// The connected stream, published with its tasks already counted.
    pub(crate) current: Option<Arc<StreamInner>>,
    /// Streams taken out by `close_workspace_stream` whose tasks may still
    /// be unwinding (pruned once drained).
    retired: Vec<Arc<StreamInner>>,
}

impl Client<WsTransport> {
    /// A client of the agent at `base_url` (`http://HOST:PORT`), no token.
    pub fn new(base_url: &str) -> Result<Self> {
        Self::with_config(base_url, ClientConfig::default())
    }

    /// A client of the agent at `base_url` with `config`.
    pub fn with_config(base_url: &str, config: ClientConfig) -> Result<Self> {
        let url = stream_url(base_url)?;
        Ok(Self::with_transport(WsTransport, url, config))
    }
}

impl<T: Transport> Client<T> {
    /// A client that dials `url` through `transport`.
    pub fn with_transport(transport: T, url: impl Into<String>, config: ClientConfig) -> Self {
        let target = Target {
            url: url.into(),
            token: config.token.clone(),
            connect_timeout: config.connect_timeout,
            max_message_size: config.max_message_size,
            close_timeout: config.close_timeout,
            read_buffer_size: config.read_buffer_size,
            instance_id: config.instance_id.clone(),
        };
        Self {
            shared: Arc::new(Shared {
                transport,
                target,
                config,
                state: Mutex::named(
                    State::default(),
                    crate::sync::trace::name(|| "client.state"),
                ),
                tasks: WaitGroup::named(crate::sync::trace::name(|| "tasks")),
                probe: Probe::new("client"),
                next_stream: IdCounter::new(),
            }),
        }
    }

    /// The transport (e.g. to reach the in-memory server in tests).
    pub fn transport(&self) -> &T {
        &self.shared.transport
    }

    /// Open the workspace stream and start its reader and writer tasks.
    /// Events go to `handler`, one at a time, on the reader task.
    ///
    /// Fails with [`Error::ClientClosed`] after [`close`](Self::close),
    /// [`Error::AlreadyConnected`] while another stream is connected,
    /// [`Error::ClosedDuringDial`] if `close` ran during the dial, or the
    /// transport's error.
    pub async fn stream_workspace<H: Handler>(&self, handler: H) -> Result<WorkspaceStream> {
        let shared = &self.shared;
        {
            let state = shared.state.lock();
            crate::trace_point!("stream_workspace: pre-dial check");
            if state.closed && !bug!(shared, DialVsClose) {
                return Err(Error::ClientClosed);
            }
            if state.current.is_some() {
                return Err(Error::AlreadyConnected);
            }
        }

        // Dial with no lock held: it may take long, and close() must not wait for it.
        crate::trace_point!("stream_workspace: dial");
        let (reader, writer) = shared.transport.dial(&shared.target).await?;
        let id = shared.next_stream.next();
        let stream = Arc::new(StreamInner::new(id, shared.config.input_queue_capacity));

        let refused = {
            let mut state = shared.state.lock();
            if state.closed && !bug!(shared, DialVsClose) {
                // close() ran during the dial: it must not find tasks later.
                Some(Error::ClosedDuringDial)
            } else if state.current.is_some() && !bug!(shared, ConcurrentDialOrphan) {
                // Another caller passed the pre-dial check too and won.
                Some(Error::AlreadyConnected)
            } else {
                if !bug!(shared, AddAfterPublish) {
                    // Count the tasks before anyone can see the stream: a
                    // close() that captures it must find the count at 2.
                    stream.wg.add(2);
                    shared.tasks.add(2);
                }
                state.retired.retain(|s| s.wg.count() > 0);
                crate::trace_point!("stream_workspace: publish stream {id}");
                let replaced = state.current.replace(stream.clone());
                shared.probe.published(id, replaced.map(|s| s.id));
                None
            }
        };
        if let Some(error) = refused {
            crate::trace_point!("stream_workspace: refuse stream {id}: {error}");
            drop(reader);
            writer.close().await;
            return Err(error);
        }
        if bug!(shared, AddAfterPublish) {
            // H5: the stream is already visible to close() here.
            stream.wg.add(2);
            shared.tasks.add(2);
        }
        tracing::info!(stream = id, url = %shared.target.url, "connected to workspace stream");
        start_tasks(shared, &stream, reader, writer, handler);
        Ok(WorkspaceStream { inner: stream })
    }

    /// The connected stream, if any.
    pub fn workspace_stream(&self) -> Option<WorkspaceStream> {
        let state = self.shared.state.lock();
        state.current.clone().map(|inner| WorkspaceStream { inner })
    }

    /// Close the connected stream (if any) without closing the client, so a
    /// new stream can be opened. Returns at once with the closed stream; its
    /// tasks may still be unwinding ([`WorkspaceStream::wait`]), and
    /// [`close`](Self::close) still waits for them.
    pub fn close_workspace_stream(&self) -> Option<WorkspaceStream> {
        let stream = {
            let mut state = self.shared.state.lock();
            let stream = state.current.take()?;
            state.retired.push(stream.clone());
            stream
        };
        stream.close_as(&self.shared);
        Some(WorkspaceStream { inner: stream })
    }

    /// Close the client: the drain barrier.
    ///
    /// Marks the client closed (later `stream_workspace` calls fail), closes
    /// every stream it started, and waits until all their tasks have exited:
    /// each exit happens before `close` returns, so what a handler wrote is
    /// visible to the caller afterwards, as after joining a thread.
    /// Idempotent: every caller, concurrent or later, returns only after the
    /// drain. A `stream_workspace` whose dial is in flight fails with
    /// [`Error::ClosedDuringDial`] and starts nothing.
    ///
    /// **From a handler** (on a stream's reader task), `close` cannot wait
    /// for the task it runs on: it closes everything and waits for every
    /// *other* task, except other readers whose handlers are in `close()`
    /// at the same time (two such calls would wait for each other: each
    /// returns after the rest of the drain, and a `close()` from outside
    /// waits for them all); the calling reader exits as soon as the handler
    /// returns, without delivering another event. This holds for the
    /// handler of a stream taken out by
    /// [`close_workspace_stream`](Self::close_workspace_stream) too.
    pub async fn close(&self) {
        let shared = &*self.shared;
        let streams: Vec<Arc<StreamInner>> = {
            let mut state = shared.state.lock();
            state.closed = true;
            crate::trace_point!("close(): client closed, streams captured");
            state
                .current
                .iter()
                .chain(&state.retired)
                .cloned()
                .collect()
        };
        for stream in &streams {
            stream.close_as(shared);
        }
        if !bug!(shared, CloseNoDrain) {
            let me = current_task();
            if !bug!(shared, CloseFromCallback)
                && let Some(own) = streams.iter().find(|s| s.is_reader(me))
            {
                // We run on this stream's reader: count it out now (it exits
                // right after the handler returns) so we do not wait for it.
                // Park the stream in `retired` first, so that a close() from
                // outside still finds it and waits for the reader's real exit.
                shared.state.lock().retired.push(own.clone());
                shared.probe.closing_from_handler();
                own.release_reader(&shared.tasks);
                shared.tasks.wait().await;
            } else {
                shared.tasks.wait().await;
                // A reader counted out early by a close() from its own
                // handler may still be running that handler, for any time
                // after its close() returned: it is a task of this client
                // all the same, so wait for its real exit (its stream's `wg`).
                // Without this, a close() from outside returned while the
                // handler still ran (the probe's drain-barrier oracle fired,
                // over real sockets and in loom's S7). Such a stream was put
                // in `retired` before it was counted out of `tasks`, so it is
                // seen here; nothing else is still running at this point.
                let unwinding: Vec<Arc<StreamInner>> = shared.state.lock().retired.clone();
                for stream in &unwinding {
                    stream.wg.wait().await;
                }
            }
        }
        crate::trace_point!("close() returns");
        tracing::debug!("client closed and drained");
        shared.probe.barrier_returned("close()");
    }

    /// Whether [`close`](Self::close) has been called.
    pub fn is_closed(&self) -> bool {
        self.shared.state.lock().closed
    }

    /// Tasks this client started that have not exited yet.
    pub fn live_tasks(&self) -> usize {
        self.shared.probe.live_tasks()
    }

    #[cfg(wsdrain_bugs)]
    pub(crate) fn bugs(&self) -> Bugs {
        self.shared.bugs()
    }

    /// Tasks this client has started in all.
    pub fn spawned_tasks(&self) -> u64 {
        self.shared.probe.spawned_tasks()
    }
}

#[cfg(all(test, not(any(wsdrain_loom, wsdrain_shuttle))))]
mod tests {
    use super::*;

    #[test]
    fn stream_urls() {
        assert_eq!(
            stream_url("http://127.0.0.1:8080").unwrap(),
            "ws://127.0.0.1:8080/api/v1/workspace/stream"
        );
        assert_eq!(
            stream_url("https://agent.example:443/").unwrap(),
            "wss://agent.example:443/api/v1/workspace/stream"
        );
        for bad in [
            "",
            "ftp://x",
            "http://",
            "http://:80",
            "127.0.0.1:80",
            "http://h?x=1",
        ] {
            assert!(
                matches!(stream_url(bad), Err(Error::InvalidUrl { .. })),
                "{bad:?} should be rejected"
            );
        }
    }

    /// Streams taken out by `close_workspace_stream` are kept only while
    /// their tasks unwind: a client that opens and retires streams for
    /// ever does not grow. (Found by the mutation run: a prune that kept
    /// every stream survived the models, which open two streams at most.)
    #[tokio::test(flavor = "current_thread")]
    async fn retired_streams_are_pruned_once_drained() {
        let transport = crate::transport::MemoryTransport::new();
        let client = Client::with_transport(transport, "mem://w", ClientConfig::default());
        for _ in 0..3 {
            let stream = client.stream_workspace(|_| async {}).await.unwrap();
            client
                .close_workspace_stream()
                .expect("the stream just opened");
            stream.wait().await;
        }
        // The publish of the last stream pruned the drained ones before it.
        assert_eq!(client.shared.state.lock().retired.len(), 1);
        client.close().await;
    }

    /// Each builder sets what it names, with its stated floor. (Found by
    /// the mutation run: a builder that returned the defaults survived the
    /// models, which set only the queue's capacity.)
    #[test]
    fn config_builders_set_what_they_name() {
        let config = ClientConfig::default()
            .with_token("t")
            .with_connect_timeout(Duration::from_millis(7))
            .with_max_message_size(77)
            .with_input_queue_capacity(3)
            .with_close_timeout(Duration::from_millis(9))
            .with_read_buffer_size(4096)
            .with_instance_id("i");
        assert_eq!(config.token.as_deref(), Some("t"));
        assert_eq!(config.connect_timeout, Duration::from_millis(7));
        assert_eq!(config.max_message_size, 77);
        assert_eq!(config.input_queue_capacity, 3);
        assert_eq!(config.close_timeout, Duration::from_millis(9));
        assert_eq!(config.read_buffer_size, 4096);
        assert_eq!(config.instance_id.as_deref(), Some("i"));
        let floors = ClientConfig::default()
            .with_input_queue_capacity(0)
            .with_read_buffer_size(1);
        assert_eq!(
            (floors.input_queue_capacity, floors.read_buffer_size),
            (1, 1024)
        );
    }

    #[test]
    fn config_debug_redacts_the_token() {
        let config = ClientConfig::default().with_token("s3cret");
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }
}

//! An in-memory transport whose every step is a facade operation.
//!
//! [`MemoryTransport`] plays the server: each successful dial creates a
//! connection made of two facade [`Queue`]s and hands the server side to
//! the test as a [`ServerConn`], through which it can send frames, close
//! the stream normally, or drop it abruptly. Under loom and shuttle, these
//! are exactly the points the checkers interleave with the client.
//!
//! Only what the client can observe is made of facade primitives: the frames
//! it reads (`down`) and, unless the server is a sink, the frames it writes
//! (`up`). The server's own bookkeeping (accept list, accept limit, open
//! connections, whether the read half is gone) is plain `std`: the model
//! checkers would otherwise explore every interleaving of it with the
//! client, which multiplies executions and proves nothing about the client.
//! No facade operation ever runs while a `std` lock here is held (under
//! loom and shuttle every task runs on one OS thread: a switch inside a
//! `std` critical section would deadlock it).

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool as StdAtomicBool, AtomicUsize as StdAtomicUsize};
use std::sync::{Mutex as StdMutex, MutexGuard as StdMutexGuard};

use futures_util::future::{Either, select};

use super::{Frame, FrameReader, FrameWriter, Received, ServerEnd, Target, Transport, Utf8Bytes};
use crate::handler::{Event, Handler};
use crate::protocol::{Envelope, Message};
use crate::sync::{Arc, CloseSignal, Queue};
use crate::{Error, Result};

/// What the server sends down one connection.
#[derive(Debug)]
enum Down {
    Frame(Frame),
    /// A close: the reader sees the end of the stream, with this end.
    Close(ServerEnd),
}

/// The payload of every panic a [`Fault::HandlerPanic`] causes, so that a
/// harness can tell an injected panic from a failure.
pub const INJECTED_PANIC: &str = "wsdrain injected fault: the handler panics";

/// A fault the in-memory world can inject, each one a step the model
/// checkers interleave with the client's own (no timers). Inject with
/// [`MemoryTransport::inject`]. Each variant states the outcome the client
/// promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Fault {
    /// The next dial is refused. Expected: that `stream_workspace` fails
    /// `ConnectionRefused`, starts no task, and a later one can succeed.
    DialError,
    /// The next dial never completes on its own: it hangs until
    /// [`Fault::ConnectTimeout`] fires, then fails `HandshakeTimeout`.
    /// Expected: `close()` meanwhile does not wait for it; the dial then
    /// fails (or is refused `ClosedDuringDial`) and starts no task.
    DialHang,
    /// The connect timeout fires (for a dial held by [`Fault::DialHang`],
    /// now or when it comes).
    ConnectTimeout,
    /// The client's sends on the newest connection fail from now on.
    /// Expected: the stream ends `Failed(Transport)` and is forgotten; input
    /// not sent is discarded.
    SendError,
    /// The client's receive on the newest connection fails (the write side
    /// stays up). Expected: the stream ends `Failed(Transport)`, forgotten.
    RecvError,
    /// The server stops reading the newest connection (a full window): the
    /// client's sends block. Expected: the stream stays up; `close()` still
    /// returns (the writer abandons the blocked send).
    StopReading,
    /// The server closes its sending side normally and keeps reading.
    /// Expected: the stream ends `ServerClosed`, forgotten.
    HalfClose,
    /// The next event reaches a handler made by
    /// [`MemoryTransport::faulty_handler`] as a panic. Expected: the stream
    /// ends `Failed(HandlerPanicked)` and is forgotten; a manager reconnects.
    HandlerPanic,
    /// The futures run through [`MemoryTransport::cancellable`] are dropped
    /// at the await point they are parked at. Expected: a cancelled
    /// `stream_workspace` leaves no task and no open connection behind; a
    /// cancelled `close()` leaves the stream closing, and a later `close()`
    /// still drains.
    Cancel,
}

#[derive(Debug)]
struct Conn {
    id: u64,
    down: Queue<Down>,
    /// `None` for a sink server: what the client writes is discarded.
    up: Option<Queue<String>>,
    /// Set before `down` is closed by [`ServerConn::disconnect`].
    reset: StdAtomicBool,
    /// The client dropped its read half: the server's sends fail from now on.
    reader_gone: StdAtomicBool,
    /// Client halves still alive; the connection is open while > 0. Plain
    /// std atomics: this is bookkeeping for oracles, not client sync.
    client_halves: StdAtomicUsize,
    /// [`Fault::SendError`]: the client's sends fail.
    send_fails: StdAtomicBool,
    /// [`Fault::StopReading`]: the client's sends block until the
    /// connection is dropped (`stall` fires then).
    stalled: StdAtomicBool,
    stall: CloseSignal,
    /// Answer the client's close with a Close frame (see
    /// [`MemoryTransport::with_close_answer`]).
    answers_close: bool,
}

/// The server side of one in-memory connection.
#[derive(Debug, Clone)]
pub struct ServerConn {
    conn: Arc<Conn>,
}

#[derive(Debug)]
struct Server {
    token: Option<String>,
    /// How many more dials succeed (`None`: unlimited).
    accepts_left: Option<usize>,
    send_connected: bool,
    capacity: usize,
    /// Discard what the client writes instead of queueing it for `recv`.
    sink: bool,
    answers_close: bool,
    conns: Vec<ServerConn>,
    /// [`Fault::DialError`]s and [`Fault::DialHang`]s armed for the next dials.
    dial_faults: std::collections::VecDeque<Fault>,
    /// [`Fault::HandlerPanic`]s armed for the next events.
    panics_armed: usize,
}

/// Holds dials in flight until released, so a test can act while a
/// `stream_workspace` is between its pre-dial check and its dial's end.
#[derive(Debug, Clone, Default)]
pub struct DialGate {
    entered: CloseSignal,
    release: CloseSignal,
}

impl DialGate {
    /// Resolves once a dial has reached the gate.
    pub async fn entered(&self) {
        self.entered.closed().await
    }

    /// Let every held dial (and every later one) through.
    pub fn release(&self) {
        self.release.close();
    }
}

/// The in-memory transport and its server. Clones share the server.
#[derive(Debug, Clone)]
pub struct MemoryTransport {
    server: Arc<StdMutex<Server>>,
    /// Fired on the first accept, if someone asked to wait for it (opt-in:
    /// every facade step costs the model checkers state space).
    accepted: Option<CloseSignal>,
    gate: Option<DialGate>,
    /// [`Fault::ConnectTimeout`] and [`Fault::Cancel`] (shared by clones).
    timers: Arc<FaultSignals>,
}

#[derive(Debug, Default)]
struct FaultSignals {
    connect_timeout: CloseSignal,
    cancel: CloseSignal,
}

impl Default for MemoryTransport {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryTransport {
    /// A server that accepts every dial and sends `connected` first.
    pub fn new() -> Self {
        Self {
            server: Arc::new(StdMutex::new(Server {
                token: None,
                accepts_left: None,
                send_connected: true,
                capacity: 64,
                sink: false,
                answers_close: false,
                conns: Vec::new(),
                dial_faults: Default::default(),
                panics_armed: 0,
            })),
            accepted: None,
            gate: None,
            timers: Arc::default(),
        }
    }

    /// The server's bookkeeping (never held across a facade operation).
    fn server(&self) -> StdMutexGuard<'_, Server> {
        self.server.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hold every dial at a gate until [`DialGate::release`].
    pub fn with_dial_gate(mut self) -> (Self, DialGate) {
        let gate = DialGate::default();
        self.gate = Some(gate.clone());
        (self, gate)
    }

    /// Make [`first_accept`](Self::first_accept) available.
    pub fn with_accept_signal(mut self) -> Self {
        self.accepted = Some(CloseSignal::new());
        self
    }

    /// Resolves once the server has accepted its first connection.
    ///
    /// # Panics
    /// Without [`with_accept_signal`](Self::with_accept_signal).
    pub async fn first_accept(&self) {
        let accepted = self.accepted.as_ref();
        accepted
            .expect("MemoryTransport::with_accept_signal was not called")
            .closed()
            .await
    }

    /// Require this bearer token (a dial without it fails `Unauthorized`).
    pub fn with_token(self, token: impl Into<String>) -> Self {
        self.server().token = Some(token.into());
        self
    }

    /// Accept only the next `n` dials; later ones are refused.
    pub fn with_accept_limit(self, n: usize) -> Self {
        self.server().accepts_left = Some(n);
        self
    }

    /// Whether to send `connected` as the first message (default: yes).
    /// Models switch it off to keep their state space small.
    pub fn with_connected_message(self, send: bool) -> Self {
        self.server().send_connected = send;
        self
    }

    /// Capacity of each direction's queue (default 64).
    pub fn with_capacity(self, capacity: usize) -> Self {
        self.server().capacity = capacity;
        self
    }

    /// A server that never reads: what the client writes is discarded at
    /// once ([`ServerConn::recv`] then returns `None`). The client's sends
    /// and the close of its write side are then no scheduling points of the
    /// model checkers, which scenarios that never read from the server
    /// have no use for.
    pub fn with_sink_server(self) -> Self {
        self.server().sink = true;
        self
    }

    /// A server that answers the client's close (its writer's
    /// [`FrameWriter::close`]) with a Close frame (1000), as a WebSocket
    /// server does: the reader of a stream closed by this side can then
    /// read the server's answer before it sees its own close signal.
    /// Off by default: one more facade step per connection.
    pub fn with_close_answer(self) -> Self {
        self.server().answers_close = true;
        self
    }

    /// Every connection accepted so far, oldest first.
    pub fn connections(&self) -> Vec<ServerConn> {
        self.server().conns.clone()
    }

    /// Inject `fault` (see [`Fault`] for what each does and the outcome the
    /// client promises). Connection faults apply to the newest connection
    /// and do nothing when there is none.
    pub fn inject(&self, fault: Fault) {
        match fault {
            Fault::DialError | Fault::DialHang => {
                self.server().dial_faults.push_back(fault);
            }
            Fault::ConnectTimeout => {
                self.timers.connect_timeout.close();
            }
            Fault::Cancel => {
                self.timers.cancel.close();
            }
            Fault::HandlerPanic => self.server().panics_armed += 1,
            Fault::SendError | Fault::RecvError | Fault::StopReading | Fault::HalfClose => {
                let newest = self.server().conns.last().cloned();
                if let Some(conn) = newest {
                    conn.inject(fault);
                }
            }
        }
    }

    /// `inner`, made to panic (with [`INJECTED_PANIC`]) on an event that
    /// arrives while a [`Fault::HandlerPanic`] is armed.
    pub fn faulty_handler<H: Handler>(&self, inner: H) -> FaultyHandler<H> {
        FaultyHandler {
            server: self.server.clone(),
            inner,
        }
    }

    /// Run `future` unless [`Fault::Cancel`] fires first, in which case it
    /// is dropped where it is parked and `None` is returned.
    pub async fn cancellable<F: Future>(&self, future: F) -> Option<F::Output> {
        match select(pin!(future), pin!(self.timers.cancel.closed())).await {
            Either::Left((output, _)) => Some(output),
            Either::Right(((), _)) => None,
        }
    }

    /// How many accepted connections the client still holds open.
    pub fn open_connections(&self) -> usize {
        self.server().conns.iter().filter(|c| c.is_open()).count()
    }
}

/// A handler that panics when a [`Fault::HandlerPanic`] is armed
/// ([`MemoryTransport::faulty_handler`]).
#[derive(Debug)]
pub struct FaultyHandler<H> {
    server: Arc<StdMutex<Server>>,
    inner: H,
}

impl<H: Handler> Handler for FaultyHandler<H> {
    async fn handle(&mut self, event: Event) {
        let armed = {
            let mut server = self.server.lock().unwrap_or_else(|p| p.into_inner());
            let armed = server.panics_armed > 0;
            server.panics_armed = server.panics_armed.saturating_sub(1);
            armed
        };
        if armed {
            panic!("{INJECTED_PANIC}");
        }
        self.inner.handle(event).await;
    }
}

impl ServerConn {
    /// Inject a connection fault ([`Fault::SendError`],
    /// [`Fault::RecvError`], [`Fault::StopReading`], [`Fault::HalfClose`]);
    /// other faults are the transport's ([`MemoryTransport::inject`]).
    pub fn inject(&self, fault: Fault) {
        match fault {
            Fault::SendError => self.conn.send_fails.store(true, SeqCst),
            Fault::RecvError => {
                // Only the read side fails: the reader sees a reset.
                self.conn.reset.store(true, SeqCst);
                self.conn.down.close();
            }
            Fault::StopReading => self.conn.stalled.store(true, SeqCst),
            Fault::HalfClose => {
                self.close();
            }
            _ => {}
        }
    }

    /// Accept-order number of this connection, from 1.
    pub fn id(&self) -> u64 {
        self.conn.id
    }

    /// Send a text frame; `false` if the client side is gone or the queue
    /// is full (a model server never blocks).
    pub fn send_text(&self, text: impl Into<String>) -> bool {
        let text = Utf8Bytes::from(text.into());
        self.send_down(Down::Frame(Frame::Text(text)))
    }

    fn send_down(&self, down: Down) -> bool {
        !self.conn.reader_gone.load(SeqCst) && self.conn.down.try_send(down).is_ok()
    }

    /// Send a protocol message.
    pub fn send(&self, message: Message) -> bool {
        self.send_text(Envelope::new(message).encode())
    }

    /// Send a binary frame of `len` bytes.
    pub fn send_binary(&self, len: usize) -> bool {
        self.send_down(Down::Frame(Frame::Binary(len)))
    }

    /// Close the stream normally (code 1000), after the frames already sent.
    pub fn close(&self) -> bool {
        self.close_with(ServerEnd::Close {
            code: Some(1000),
            reason: String::new(),
        })
    }

    /// End the stream the way `end` says, after the frames already sent.
    pub fn close_with(&self, end: ServerEnd) -> bool {
        self.send_down(Down::Close(end))
    }

    /// Drop the connection abruptly: frames not yet read are lost and the
    /// client's reader sees a transport error.
    pub fn disconnect(&self) {
        self.conn.reset.store(true, SeqCst);
        self.conn.down.close();
        if let Some(up) = &self.conn.up {
            // Dropped: what the server had not read is lost with it.
            up.close();
        }
        self.conn.stall.close();
    }

    /// The next text frame the client wrote, waiting for it; `None` once the
    /// client closed its write side and every frame written before was
    /// read (at once for a sink server).
    pub async fn recv(&self) -> Option<String> {
        match &self.conn.up {
            Some(up) => up.recv().await,
            None => None,
        }
    }

    /// Whether the client still holds either half of the connection.
    pub fn is_open(&self) -> bool {
        self.conn.client_halves.load(SeqCst) > 0
    }
}

/// Read half of a [`MemoryTransport`] connection.
#[derive(Debug)]
pub struct MemoryReader {
    conn: Arc<Conn>,
    ended: Option<ServerEnd>,
}

/// Write half of a [`MemoryTransport`] connection.
#[derive(Debug)]
pub struct MemoryWriter {
    conn: Arc<Conn>,
}

impl Transport for MemoryTransport {
    type Reader = MemoryReader;
    type Writer = MemoryWriter;

    async fn dial(&self, target: &Target) -> Result<(MemoryReader, MemoryWriter)> {
        if let Some(gate) = &self.gate {
            gate.entered.close();
            gate.release.closed().await;
        }
        let fault = self.server().dial_faults.pop_front();
        match fault {
            Some(Fault::DialError) => {
                return Err(Error::ConnectionRefused {
                    addr: target.url.clone(),
                });
            }
            Some(Fault::DialHang) => {
                // The timer is a choice the checkers explore: whoever fires
                // `ConnectTimeout` decides when this dial gives up.
                self.timers.connect_timeout.closed().await;
                return Err(Error::HandshakeTimeout(target.connect_timeout));
            }
            _ => {}
        }
        let mut server = self.server();
        if server.token.is_some() && server.token != target.token {
            return Err(Error::Unauthorized);
        }
        match &mut server.accepts_left {
            Some(0) => {
                return Err(Error::ConnectionRefused {
                    addr: target.url.clone(),
                });
            }
            Some(n) => *n -= 1,
            None => {}
        }
        // `connected` is in the queue from the start: no facade step under
        // the std lock.
        let first = server.send_connected.then(|| {
            Down::Frame(Frame::Text(
                Envelope::new(Message::Connected).encode().into(),
            ))
        });
        let conn = Arc::new(Conn {
            id: server.conns.len() as u64 + 1,
            down: Queue::with_items(server.capacity, first),
            up: (!server.sink).then(|| Queue::new(server.capacity)),
            reset: StdAtomicBool::new(false),
            reader_gone: StdAtomicBool::new(false),
            client_halves: StdAtomicUsize::new(2),
            send_fails: StdAtomicBool::new(false),
            stalled: StdAtomicBool::new(false),
            stall: CloseSignal::new(),
            answers_close: server.answers_close,
        });
        server.conns.push(ServerConn { conn: conn.clone() });
        drop(server);
        if let Some(accepted) = &self.accepted {
            accepted.close();
        }
        Ok((
            MemoryReader {
                conn: conn.clone(),
                ended: None,
            },
            MemoryWriter { conn },
        ))
    }
}

impl FrameReader for MemoryReader {
    async fn recv(&mut self) -> Result<Received> {
        if let Some(end) = &self.ended {
            return Ok(Received::End(end.clone()));
        }
        match self.conn.down.recv().await {
            Some(Down::Frame(frame)) => Ok(Received::Frame(frame)),
            Some(Down::Close(end)) => {
                self.ended = Some(end.clone());
                Ok(Received::End(end))
            }
            None if self.conn.reset.load(SeqCst) => {
                Err(Error::Transport("connection reset by peer".into()))
            }
            None => Ok(Received::End(ServerEnd::NoCloseFrame)),
        }
    }
}

impl Drop for MemoryReader {
    fn drop(&mut self) {
        // The read side is gone: the server's sends now fail. Bookkeeping
        // only: nobody else waits on `down`, so no facade step is needed.
        self.conn.reader_gone.store(true, SeqCst);
        self.conn.client_halves.fetch_sub(1, SeqCst);
    }
}

impl FrameWriter for MemoryWriter {
    /// Straight into the upward queue (the server sees it at once): the
    /// queue is the connection, there is no buffer to flush.
    async fn feed(&mut self, text: String) -> Result<()> {
        if self.conn.send_fails.load(SeqCst) {
            return Err(Error::Transport("injected send error".into()));
        }
        if self.conn.stalled.load(SeqCst) {
            // The peer reads nothing: the send completes never, or fails
            // when the connection is dropped.
            self.conn.stall.closed().await;
            return Err(Error::Transport("connection reset by peer".into()));
        }
        match &self.conn.up {
            Some(up) => up
                .send(text)
                .await
                .map_err(|_| Error::Transport("connection closed".into())),
            None if self.conn.reset.load(SeqCst) => {
                Err(Error::Transport("connection closed".into()))
            }
            None => Ok(()),
        }
    }

    async fn flush(&mut self) -> Result<()> {
        Ok(())
    }

    async fn close(self) {
        // Dropping closes the upward queue.
        if self.conn.answers_close && !self.conn.reader_gone.load(SeqCst) {
            let _ = self.conn.down.try_send(Down::Close(ServerEnd::Close {
                code: Some(1000),
                reason: String::new(),
            }));
        }
    }
}

impl Drop for MemoryWriter {
    fn drop(&mut self) {
        if let Some(up) = &self.conn.up {
            // The write side closes; what was written stays the server's
            // to read (a disconnect discards it).
            up.close_sending();
        }
        self.conn.client_halves.fetch_sub(1, SeqCst);
    }
}

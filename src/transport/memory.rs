//! An in-memory transport whose every step is a facade operation.
//!
//! [`MemoryTransport`] plays the server: each successful dial creates a
//! connection made of two facade [`Queue`]s and hands the server side to
//! the test as a [`ServerConn`], through which it can send frames, close
//! the stream normally, or drop it abruptly. Under loom and shuttle, these
//! are exactly the points the checkers interleave with the client.

use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool as StdAtomicBool, AtomicUsize as StdAtomicUsize};

use super::{Frame, FrameReader, FrameWriter, Received, ServerEnd, Target, Transport, Utf8Bytes};
use crate::protocol::{Envelope, Message};
use crate::sync::{Arc, CloseSignal, Mutex, Queue};
use crate::{Error, Result};

/// What the server sends down one connection.
#[derive(Debug)]
enum Down {
    Frame(Frame),
    /// A close: the reader sees the end of the stream, with this end.
    Close(ServerEnd),
}

#[derive(Debug)]
struct Conn {
    id: u64,
    down: Queue<Down>,
    up: Queue<String>,
    /// Set before `down` is closed by [`ServerConn::disconnect`].
    reset: StdAtomicBool,
    /// Client halves still alive; the connection is open while > 0. Plain
    /// std atomics: this is bookkeeping for oracles, not client sync.
    client_halves: StdAtomicUsize,
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
    conns: Vec<ServerConn>,
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
    server: Arc<Mutex<Server>>,
    /// Fired on the first accept, if someone asked to wait for it (opt-in:
    /// every facade step costs the model checkers state space).
    accepted: Option<CloseSignal>,
    gate: Option<DialGate>,
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
            server: Arc::new(Mutex::new(Server {
                token: None,
                accepts_left: None,
                send_connected: true,
                capacity: 64,
                conns: Vec::new(),
            })),
            accepted: None,
            gate: None,
        }
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
        self.server.lock().token = Some(token.into());
        self
    }

    /// Accept only the next `n` dials; later ones are refused.
    pub fn with_accept_limit(self, n: usize) -> Self {
        self.server.lock().accepts_left = Some(n);
        self
    }

    /// Whether to send `connected` as the first message (default: yes).
    /// Models switch it off to keep their state space small.
    pub fn with_connected_message(self, send: bool) -> Self {
        self.server.lock().send_connected = send;
        self
    }

    /// Capacity of each direction's queue (default 64).
    pub fn with_capacity(self, capacity: usize) -> Self {
        self.server.lock().capacity = capacity;
        self
    }

    /// Every connection accepted so far, oldest first.
    pub fn connections(&self) -> Vec<ServerConn> {
        self.server.lock().conns.clone()
    }

    /// How many accepted connections the client still holds open.
    pub fn open_connections(&self) -> usize {
        self.server
            .lock()
            .conns
            .iter()
            .filter(|c| c.is_open())
            .count()
    }
}

impl ServerConn {
    /// Accept-order number of this connection, from 1.
    pub fn id(&self) -> u64 {
        self.conn.id
    }

    /// Send a text frame; `false` if the client side is gone or the queue
    /// is full (a model server never blocks).
    pub fn send_text(&self, text: impl Into<String>) -> bool {
        let text = Utf8Bytes::from(text.into());
        self.conn
            .down
            .try_send(Down::Frame(Frame::Text(text)))
            .is_ok()
    }

    /// Send a protocol message.
    pub fn send(&self, message: Message) -> bool {
        self.send_text(Envelope::new(message).encode())
    }

    /// Send a binary frame of `len` bytes.
    pub fn send_binary(&self, len: usize) -> bool {
        self.conn
            .down
            .try_send(Down::Frame(Frame::Binary(len)))
            .is_ok()
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
        self.conn.down.try_send(Down::Close(end)).is_ok()
    }

    /// Drop the connection abruptly: frames not yet read are lost and the
    /// client's reader sees a transport error.
    pub fn disconnect(&self) {
        self.conn.reset.store(true, SeqCst);
        self.conn.down.close();
        self.conn.up.close();
    }

    /// The next text frame the client wrote, waiting for it; `None` once the
    /// client closed its write side.
    pub async fn recv(&self) -> Option<String> {
        self.conn.up.recv().await
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
        let mut server = self.server.lock();
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
        let conn = Arc::new(Conn {
            id: server.conns.len() as u64 + 1,
            down: Queue::new(server.capacity),
            up: Queue::new(server.capacity),
            reset: StdAtomicBool::new(false),
            client_halves: StdAtomicUsize::new(2),
        });
        let handle = ServerConn { conn: conn.clone() };
        if server.send_connected {
            handle.send(Message::Connected);
        }
        server.conns.push(handle);
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
        // The read side is gone: the server's sends now fail.
        self.conn.down.close();
        self.conn.client_halves.fetch_sub(1, SeqCst);
    }
}

impl FrameWriter for MemoryWriter {
    /// Straight into the upward queue (the server sees it at once): the
    /// queue is the connection, there is no buffer to flush.
    async fn feed(&mut self, text: String) -> Result<()> {
        self.conn
            .up
            .send(text)
            .await
            .map_err(|_| Error::Transport("connection closed".into()))
    }

    async fn flush(&mut self) -> Result<()> {
        Ok(())
    }

    async fn close(self) {
        // Dropping closes the upward queue.
    }
}

impl Drop for MemoryWriter {
    fn drop(&mut self) {
        self.conn.up.close();
        self.conn.client_halves.fetch_sub(1, SeqCst);
    }
}

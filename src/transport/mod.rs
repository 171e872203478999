//! How the client reaches a server: the [`Transport`] seam.
//!
//! The client's code is the same whatever carries the frames. The real build
//! dials WebSockets with tokio-tungstenite ([`WsTransport`]); the model
//! checkers (and fast unit tests) use the in-memory [`MemoryTransport`],
//! whose send, receive, server-side close and abrupt disconnect are made of
//! [`sync`](crate::sync) facade primitives, so loom and shuttle can
//! interleave every one of them with the client's own steps (the server's
//! bookkeeping is plain `std`: see the `memory` module).

// The in-memory transport is for the harness, the property tests and the
// fuzz targets (`#[doc(hidden)]`, no stability promise), not for users.
#[doc(hidden)]
pub mod memory;
mod ws;

use std::future::Future;
use std::time::Duration;

#[doc(hidden)]
pub use memory::{DialGate, Fault, FaultyHandler, INJECTED_PANIC, MemoryTransport, ServerConn};
pub use tokio_tungstenite::tungstenite::Utf8Bytes;
pub use ws::WsTransport;

use crate::Result;

/// Where and how to dial, derived from the client's configuration.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Target {
    /// `ws://HOST:PORT/api/v1/workspace/stream` (or `wss://`).
    pub url: String,
    /// Sent as `Authorization: Bearer <token>` on the upgrade request.
    pub token: Option<String>,
    /// Bound on TCP connect plus the WebSocket handshake.
    pub connect_timeout: Duration,
    /// Largest message (and frame) accepted from the server, in bytes.
    pub max_message_size: usize,
    /// Bound on the graceful close of the write side.
    pub close_timeout: Duration,
    /// Read buffer of the connection, in bytes.
    pub read_buffer_size: usize,
    /// Sent as `X-Instance-ID: <id>` on the upgrade request.
    pub instance_id: Option<String>,
}

/// One frame from the server, as the reader sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// A text frame: one JSON message of the protocol.
    Text(Utf8Bytes),
    /// A binary frame (not part of the protocol): its length.
    Binary(usize),
}

/// How the server ended a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerEnd {
    /// The server sent a Close frame: its status code (`None` if the frame
    /// carried none) and reason (may be empty).
    Close {
        /// The status code (RFC 6455, section 7.4), e.g. 1000 for a normal close.
        code: Option<u16>,
        /// The reason the server gave.
        reason: String,
    },
    /// The TCP connection ended cleanly (EOF) without a Close frame: how
    /// kandev's Go server ends every stream. A server process that exited
    /// looks the same; a reset connection is an error instead.
    NoCloseFrame,
}

/// What [`FrameReader::recv`] read.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    /// One frame of the stream.
    Frame(Frame),
    /// The server ended the stream; every later `recv` may return this again.
    End(ServerEnd),
}

/// Dials the workspace stream.
pub trait Transport: Send + Sync + 'static {
    /// The read half of a connection.
    type Reader: FrameReader;
    /// The write half of a connection.
    type Writer: FrameWriter;

    /// Open one connection. Dropping both halves closes it.
    fn dial(
        &self,
        target: &Target,
    ) -> impl Future<Output = Result<(Self::Reader, Self::Writer)>> + Send;
}

/// The read half of a connection.
pub trait FrameReader: Send + 'static {
    /// The next frame; [`Received::End`] once the server ended the stream
    /// (with its Close code and reason, or without a Close frame); `Err` if
    /// the connection failed. Must be cancel-safe: the reader races it
    /// against the stream's close signal.
    fn recv(&mut self) -> impl Future<Output = Result<Received>> + Send;
}

/// The write half of a connection.
pub trait FrameWriter: Send + 'static {
    /// Queue one text frame for the connection without flushing it (it may
    /// still be written out, e.g. when a buffer fills). Waits only for room.
    fn feed(&mut self, text: String) -> impl Future<Output = Result<()>> + Send;

    /// Write out every frame fed so far.
    fn flush(&mut self) -> impl Future<Output = Result<()>> + Send;

    /// Send one text frame: [`feed`](Self::feed), then [`flush`](Self::flush).
    fn send(&mut self, text: String) -> impl Future<Output = Result<()>> + Send {
        async move {
            self.feed(text).await?;
            self.flush().await
        }
    }

    /// Close the write side gracefully (best effort, bounded in time).
    fn close(self) -> impl Future<Output = ()> + Send;
}

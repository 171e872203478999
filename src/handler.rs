//! How events reach the caller.

use std::future::Future;

use crate::protocol::Envelope;

/// One thing the reader task delivers to the [`Handler`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A protocol message, decoded. Types this client does not know arrive
    /// as [`Message::Unknown`](crate::protocol::Message::Unknown).
    Message(Envelope),
    /// A frame that could not be used; the stream goes on.
    Skipped(Skipped),
}

/// Why a frame was skipped (the stream survives all of these).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Skipped {
    /// A text frame that is not a valid protocol message.
    Malformed {
        /// What the decoder said.
        error: String,
        /// Length of the frame in bytes.
        len: usize,
    },
    /// A binary frame (not part of the protocol).
    Binary {
        /// Length of the frame in bytes.
        len: usize,
    },
}

/// Receives a stream's events, one at a time, on the stream's reader task.
///
/// The reader awaits each call before reading the next frame, so a slow
/// handler slows the stream down (backpressure reaches the server through
/// TCP flow control); nothing is dropped.
///
/// A handler may call [`Client::close`](crate::Client::close): see there
/// for what that waits for when it runs on the reader task.
///
/// A call in progress is part of the reader task, so the drain barrier waits
/// for it: `close()` returns only after the running `handle` returns. Keep
/// handlers bounded in time (a handler that never returns makes `close()`
/// wait forever); hand long work to a task of your own.
///
/// A handler that panics ends its stream, as a broken connection would:
/// the panic is caught on the reader task, the stream is closed and
/// forgotten by the client (a new `stream_workspace` can succeed), its
/// writer exits, [`done`](crate::WorkspaceStream::done) and
/// [`wait`](crate::WorkspaceStream::wait) resolve, `wait` reporting
/// `StreamEnd::Failed` with [`Error::HandlerPanicked`](crate::Error::HandlerPanicked),
/// input methods fail `StreamClosed`, and a
/// [`StreamManager`](crate::StreamManager) reconnects. The handler is not
/// called again.
///
/// Any `FnMut(Event) -> impl Future<Output = ()>` closure is a handler:
/// ```
/// # use wsdrain::{Event, Handler};
/// fn assert_handler(_: impl Handler) {}
/// assert_handler(|event: Event| async move { println!("{event:?}") });
/// ```
pub trait Handler: Send + 'static {
    /// Handle one event.
    fn handle(&mut self, event: Event) -> impl Future<Output = ()> + Send;
}

impl<F, Fut> Handler for F
where
    F: FnMut(Event) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    fn handle(&mut self, event: Event) -> impl Future<Output = ()> + Send {
        self(event)
    }
}

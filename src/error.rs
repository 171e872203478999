//! The error type of wsdrain.

/// `Result` with wsdrain's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the client. Each variant says what the
/// caller should do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The base URL is not `http://HOST:PORT` or `https://HOST:PORT`.
    /// Fix the configuration; retrying will not help.
    #[error("invalid base URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The configured token cannot be sent in an HTTP header (it holds a
    /// control character, e.g. a trailing newline read from a file). Fix
    /// the configuration; retrying will not help.
    #[error("the token cannot be sent in an Authorization header: it holds a control character")]
    InvalidToken,

    /// [`Client::close`](crate::Client::close) has run: this client will
    /// never stream again. Create a new client.
    #[error("client closed")]
    ClientClosed,

    /// `close()` ran while this `stream_workspace` call was dialing; the new
    /// connection was closed again and no task was started. Create a new
    /// client if you still want a stream.
    #[error("client closed during workspace stream dial")]
    ClosedDuringDial,

    /// The client already has a connected workspace stream (only one at a
    /// time). Use it, or close it first with
    /// [`close_workspace_stream`](crate::Client::close_workspace_stream).
    #[error("workspace stream already connected")]
    AlreadyConnected,

    /// The stream is closed: the input was not queued. Open a new stream to
    /// send more.
    #[error("workspace stream closed")]
    StreamClosed,

    /// The server refused the token (HTTP 401). Fix the token; retrying with
    /// the same one will fail again.
    #[error("authentication refused by the server (HTTP 401)")]
    Unauthorized,

    /// Nothing accepted the TCP connection. Check that the agent is running
    /// and the address is right; retry later.
    #[error("connection refused by {addr}")]
    ConnectionRefused {
        /// The address dialed.
        addr: String,
    },

    /// The WebSocket handshake did not complete in time. The server may be
    /// overloaded or not speak WebSocket on that path; retry with backoff.
    #[error("workspace stream handshake timed out after {0:?}")]
    HandshakeTimeout(std::time::Duration),

    /// The server answered the upgrade with another HTTP status. Check the
    /// URL path and the server version.
    #[error("workspace stream upgrade rejected with HTTP {status}")]
    UpgradeRejected {
        /// The HTTP status code.
        status: u16,
    },

    /// A message from the server, or one to send, exceeded the configured
    /// size limit; the stream was closed. Raise `max_message_size` if the
    /// server is trusted.
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    MessageTooLarge {
        /// Size of the offending message, if known (0 if not).
        size: usize,
        /// The configured limit.
        limit: usize,
    },

    /// The connection failed (I/O or WebSocket protocol error). The stream
    /// is closed; reconnect (the [`StreamManager`](crate::StreamManager)
    /// does that with backoff).
    #[error("workspace stream transport error: {0}")]
    Transport(String),

    /// The stream's [`Handler`](crate::Handler) panicked; the stream was
    /// closed and cleaned up (a [`StreamManager`](crate::StreamManager)
    /// reconnects). Fix the handler: a panic is a bug in it.
    #[error("the workspace stream's handler panicked: {message}")]
    HandlerPanicked {
        /// The panic's message, if it was a string.
        message: String,
    },

    /// The configured instance id cannot be sent in an HTTP header (it holds
    /// a control character). Fix the configuration; retrying will not help.
    #[error(
        "the instance id cannot be sent in an X-Instance-ID header: it holds a control character"
    )]
    InvalidInstanceId,

    /// The server sent more than `limit` pings within `window` (a server
    /// keeping the connection alive pings a few times a minute); the stream
    /// was closed. The server is broken or hostile.
    #[error("the server sent more than {limit} pings within {window:?}; stream closed")]
    PingFlood {
        /// The most pings allowed within `window`.
        limit: u32,
        /// The window.
        window: std::time::Duration,
    },

    /// The [`StreamManager`](crate::StreamManager) gave up after its
    /// configured number of consecutive failed attempts.
    #[error("gave up after {attempts} failed connection attempts; last error: {last}")]
    RetriesExhausted {
        /// How many attempts were made in a row.
        attempts: u32,
        /// The last attempt's error.
        last: Box<Error>,
    },
}

impl Error {
    /// Whether retrying the same operation later, unchanged, can succeed
    /// (transient): the server may come up, get less busy, or the network
    /// recover. Not transient: a bad configuration (URL, token, instance id),
    /// a refused token (401), an upgrade refused for good (404 path or
    /// instance id, other 4xx), a closed client, and
    /// [`AlreadyConnected`](Error::AlreadyConnected): the client's one stream
    /// is taken, and only whoever holds it can free it. Rejections that say
    /// "later" are transient: 408, 429 and every 5xx (e.g. a 503 when the
    /// server is at its connection cap).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::ConnectionRefused { .. } | Error::HandshakeTimeout(_) | Error::Transport(_) => {
                true
            }
            Error::UpgradeRejected { status } => matches!(status, 408 | 429 | 500..=599),
            _ => false,
        }
    }
}

//! The real transport: WebSocket over TCP with tokio-tungstenite.

use std::future::Future;
use std::task::{Context, Poll};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::{CapacityError, ProtocolError, UrlError};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{Frame, FrameReader, FrameWriter, Received, ServerEnd, Target, Transport};
use crate::{Error, Result};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Bytes tungstenite buffers before it writes to the socket on its own
/// (tungstenite's default). The writer flushes once per burst of up to
/// 1,024 messages; at 16 KiB a burst of 1,000 64-byte inputs (~108 KB) took
/// 6 to 7 writes instead of one (counted with `strace` on the send bench).
/// The buffer grows only as far as a burst fills it; an idle stream has none.
const WRITE_BUFFER_SIZE: usize = 128 * 1024;

/// Most pings the server may send within [`PING_FLOOD_WINDOW`]. A server
/// pings to keep the connection alive, a few times a minute; tungstenite
/// answers each with a pong, so a server flooding pings makes the client
/// work (and, while the server does not read, queue pongs) for nothing. Past
/// this rate the stream ends with [`Error::PingFlood`].
pub(crate) const PING_FLOOD_LIMIT: u32 = 1000;
/// The window of [`PING_FLOOD_LIMIT`].
const PING_FLOOD_WINDOW: std::time::Duration = std::time::Duration::from_secs(1);

/// Dials `ws://` (and `wss://` where TLS is compiled in) with tokio-tungstenite.
#[derive(Debug, Clone, Copy, Default)]
pub struct WsTransport;

/// Read half of a [`WsTransport`] connection.
#[derive(Debug)]
pub struct WsReader {
    stream: SplitStream<Socket>,
    max_message_size: usize,
    /// Start of the current ping-counting window, and the pings within it.
    ping_window: Option<(tokio::time::Instant, u32)>,
}

/// Write half of a [`WsTransport`] connection.
#[derive(Debug)]
pub struct WsWriter {
    sink: SplitSink<Socket, Message>,
    close_timeout: std::time::Duration,
    max_message_size: usize,
}

impl Transport for WsTransport {
    type Reader = WsReader;
    type Writer = WsWriter;

    async fn dial(&self, target: &Target) -> Result<(WsReader, WsWriter)> {
        let mut request = target
            .url
            .as_str()
            .into_client_request()
            .map_err(|e| invalid_url(&target.url, e))?;
        if let Some(token) = &target.token {
            let value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| Error::InvalidToken)?;
            request.headers_mut().insert("Authorization", value);
        }
        // Sent only when set and not empty, as kandev's Go client does.
        if let Some(id) = target.instance_id.as_deref().filter(|id| !id.is_empty()) {
            let value = HeaderValue::from_str(id).map_err(|_| Error::InvalidInstanceId)?;
            request.headers_mut().insert("X-Instance-ID", value);
        }
        // The write buffer is bounded: a server that floods pings and never
        // reads would otherwise grow it by one pong per ping, without limit
        // (2.1 GB in 10 s was measured). Past the bound tungstenite keeps only
        // the latest pong. The bound leaves room for one message as large as
        // the largest the client accepts, which is also the largest it sends.
        let config = WebSocketConfig::default()
            .read_buffer_size(target.read_buffer_size)
            .write_buffer_size(WRITE_BUFFER_SIZE)
            .max_write_buffer_size(max_write_buffer_size(target.max_message_size))
            .max_message_size(Some(target.max_message_size))
            .max_frame_size(Some(target.max_message_size));
        let connect = tokio_tungstenite::connect_async_with_config(request, Some(config), true);
        let (socket, _response) = tokio::time::timeout(target.connect_timeout, connect)
            .await
            .map_err(|_| Error::HandshakeTimeout(target.connect_timeout))?
            .map_err(|e| dial_error(target, e))?;
        let (sink, stream) = socket.split();
        Ok((
            WsReader {
                stream,
                max_message_size: target.max_message_size,
                ping_window: None,
            },
            WsWriter {
                sink,
                close_timeout: target.close_timeout,
                max_message_size: target.max_message_size,
            },
        ))
    }
}

/// The write buffer's bound: the buffer, one frame of the largest message
/// (plus its header), and room for a pong.
fn max_write_buffer_size(max_message_size: usize) -> usize {
    WRITE_BUFFER_SIZE
        .saturating_add(max_message_size)
        .saturating_add(256)
}

fn invalid_url(url: &str, error: WsError) -> Error {
    Error::InvalidUrl {
        url: url.to_owned(),
        reason: error.to_string(),
    }
}

fn dial_error(target: &Target, error: WsError) -> Error {
    match error {
        WsError::Http(response) if response.status() == 401 => Error::Unauthorized,
        WsError::Http(response) => Error::UpgradeRejected {
            status: response.status().as_u16(),
        },
        WsError::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            Error::ConnectionRefused {
                addr: target.url.clone(),
            }
        }
        WsError::Url(UrlError::TlsFeatureNotEnabled) => Error::InvalidUrl {
            url: target.url.clone(),
            reason: "wss:// needs TLS, which this build of wsdrain does not include".into(),
        },
        WsError::Url(e) => Error::InvalidUrl {
            url: target.url.clone(),
            reason: e.to_string(),
        },
        other => Error::Transport(other.to_string()),
    }
}

impl FrameReader for WsReader {
    /// A `poll_fn` over [`WsReader::poll_recv`] rather than an `async fn`:
    /// the reader makes one of these per frame, and the async fn's state
    /// machine cost more than the poll it wraps (docs/performance.md,
    /// section 3). Cancel-safe: nothing is held between polls.
    fn recv(&mut self) -> impl Future<Output = Result<Received>> + Send {
        std::future::poll_fn(move |cx| self.poll_recv(cx))
    }
}

impl WsReader {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Received>> {
        loop {
            let Poll::Ready(next) = self.stream.poll_next_unpin(cx) else {
                return Poll::Pending;
            };
            return Poll::Ready(match next {
                Some(Ok(Message::Text(text))) => Ok(Received::Frame(Frame::Text(text))),
                Some(Ok(Message::Binary(bytes))) => Ok(Received::Frame(Frame::Binary(bytes.len()))),
                // tungstenite answers pings itself; count them.
                Some(Ok(Message::Ping(_))) => {
                    self.count_ping()?;
                    continue;
                }
                Some(Ok(Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Close(frame))) => Ok(Received::End(match frame {
                    Some(frame) => ServerEnd::Close {
                        code: Some(frame.code.into()),
                        reason: frame.reason.to_string(),
                    },
                    None => ServerEnd::Close {
                        code: None,
                        reason: String::new(),
                    },
                })),
                // After the close handshake (the Close frame was already
                // returned): report the same kind of end again.
                None | Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => {
                    Ok(Received::End(ServerEnd::Close {
                        code: None,
                        reason: String::new(),
                    }))
                }
                // A clean EOF with no Close frame: a Go server's normal end.
                Some(Err(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake))) => {
                    Ok(Received::End(ServerEnd::NoCloseFrame))
                }
                Some(Err(WsError::Capacity(CapacityError::MessageTooLong { size, max_size }))) => {
                    Err(Error::MessageTooLarge {
                        size,
                        limit: max_size.min(self.max_message_size),
                    })
                }
                Some(Err(e)) => Err(Error::Transport(e.to_string())),
            });
        }
    }

    /// Count one ping; fail once the server sends more than
    /// [`PING_FLOOD_LIMIT`] within [`PING_FLOOD_WINDOW`].
    fn count_ping(&mut self) -> Result<()> {
        let now = tokio::time::Instant::now();
        let (start, count) = match self.ping_window {
            Some((start, count)) if now.duration_since(start) < PING_FLOOD_WINDOW => {
                (start, count + 1)
            }
            _ => (now, 1),
        };
        self.ping_window = Some((start, count));
        if count > PING_FLOOD_LIMIT {
            tracing::warn!(
                pings = count,
                window = ?PING_FLOOD_WINDOW,
                "server floods pings; ending the stream"
            );
            return Err(Error::PingFlood {
                limit: PING_FLOOD_LIMIT,
                window: PING_FLOOD_WINDOW,
            });
        }
        Ok(())
    }
}

impl FrameWriter for WsWriter {
    async fn feed(&mut self, text: String) -> Result<()> {
        // Into tungstenite's write buffer; it writes to the socket only when
        // the buffer is full, or on `flush`.
        self.sink
            .feed(Message::Text(text.into()))
            .await
            .map_err(|e| Error::Transport(e.to_string()))
    }

    async fn flush(&mut self) -> Result<()> {
        self.sink
            .flush()
            .await
            .map_err(|e| Error::Transport(e.to_string()))
    }

    async fn send(&mut self, text: String) -> Result<()> {
        let size = text.len();
        self.sink
            .send(Message::Text(text.into()))
            .await
            .map_err(|e| match e {
                WsError::WriteBufferFull(_) if size > self.max_message_size => {
                    Error::MessageTooLarge {
                        size,
                        limit: self.max_message_size,
                    }
                }
                WsError::WriteBufferFull(_) => Error::Transport(
                    "write buffer full: the server does not read what the client sends".into(),
                ),
                e => Error::Transport(e.to_string()),
            })
    }

    async fn close(mut self) {
        // Sends a Close frame and flushes; it does not wait for the server's
        // reply. Bounded, so a stuck peer cannot hold up the drain.
        let _ = tokio::time::timeout(self.close_timeout, self.sink.close()).await;
    }
}

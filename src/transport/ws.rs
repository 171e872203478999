//! The real transport: WebSocket over TCP with tokio-tungstenite.

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::{CapacityError, UrlError};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{Frame, FrameReader, FrameWriter, Target, Transport};
use crate::{Error, Result};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Dials `ws://` (and `wss://` where TLS is compiled in) with tokio-tungstenite.
#[derive(Debug, Clone, Copy, Default)]
pub struct WsTransport;

/// Read half of a [`WsTransport`] connection.
#[derive(Debug)]
pub struct WsReader {
    stream: SplitStream<Socket>,
    max_message_size: usize,
}

/// Write half of a [`WsTransport`] connection.
#[derive(Debug)]
pub struct WsWriter {
    sink: SplitSink<Socket, Message>,
    close_timeout: std::time::Duration,
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
        let config = WebSocketConfig::default()
            .read_buffer_size(target.read_buffer_size)
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
            },
            WsWriter {
                sink,
                close_timeout: target.close_timeout,
            },
        ))
    }
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
    async fn recv(&mut self) -> Result<Option<Frame>> {
        loop {
            return match self.stream.next().await {
                Some(Ok(Message::Text(text))) => Ok(Some(Frame::Text(text))),
                Some(Ok(Message::Binary(bytes))) => Ok(Some(Frame::Binary(bytes.len()))),
                // Control frames: tungstenite answers pings itself.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Close(_))) | None => Ok(None),
                Some(Err(WsError::ConnectionClosed)) => Ok(None),
                Some(Err(WsError::Capacity(CapacityError::MessageTooLong { size, max_size }))) => {
                    Err(Error::MessageTooLarge {
                        size,
                        limit: max_size.min(self.max_message_size),
                    })
                }
                Some(Err(e)) => Err(Error::Transport(e.to_string())),
            };
        }
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
        self.sink
            .send(Message::Text(text.into()))
            .await
            .map_err(|e| Error::Transport(e.to_string()))
    }

    async fn close(mut self) {
        // Sends a Close frame and flushes; it does not wait for the server's
        // reply. Bounded, so a stuck peer cannot hold up the drain.
        let _ = tokio::time::timeout(self.close_timeout, self.sink.close()).await;
    }
}

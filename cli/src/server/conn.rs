//! One client connection: handshake, then a reader (this task), a writer,
//! a workspace-event forwarder and a shell, all stopped by one token.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Message as WsMessage, Utf8Bytes};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::handshake::{self, Outcome};
use super::shell::{self, Shell};
use super::{Shared, bump, drop_one, encode};
use wsdrain::protocol::{Envelope, FileChange, FileOperation, Message};

/// Why a connection ends, which decides its close frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The client closed it or went away: nothing more to send.
    ClientGone,
    /// The server shuts down: close frame 1001.
    ServerShutdown,
    /// The socket took no data in time: drop it without a close frame.
    Stuck,
}

/// The per-connection state the tasks share.
struct Conn {
    id: u64,
    peer: SocketAddr,
    /// Stops every task of this connection.
    stop: CancellationToken,
    end: Mutex<Option<End>>,
}

impl Conn {
    fn finish(&self, end: End) {
        self.end.lock().unwrap().get_or_insert(end);
        self.stop.cancel();
    }
}

pub(crate) async fn serve(
    shared: Arc<Shared>,
    tcp: TcpStream,
    peer: SocketAddr,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let handshake = tokio::select! {
        () = shutdown.cancelled() => return,
        r = tokio::time::timeout(shared.config.handshake_timeout, handshake::accept(&shared, tcp)) => r,
    };
    let ws = match handshake {
        Ok(Ok(Outcome::Upgraded(ws))) => ws,
        Ok(Ok(Outcome::Refused(status))) => {
            tracing::info!(%peer, status, "request refused");
            return;
        }
        Ok(Err(error)) => {
            tracing::debug!(%peer, %error, "handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "handshake timed out");
            return;
        }
    };

    let counters = &shared.counters;
    let id = counters
        .connections_total
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        + 1;
    bump(&counters.connections_open, 1);
    let conn = Arc::new(Conn {
        id,
        peer,
        stop: shutdown.child_token(),
        end: Mutex::new(None),
    });
    tracing::info!(conn = id, %peer, "client connected");

    let (sink, stream) = (*ws).split();
    let (out, out_rx) = mpsc::channel::<Utf8Bytes>(shared.config.queue_capacity);
    // Subscribe before `connected` is queued, so no event falls in between.
    let events = shared.events.subscribe();
    let writer = tracker.spawn(write_loop(shared.clone(), conn.clone(), sink, out_rx));
    let git_now = shared.git_latest.borrow().clone();
    for text in std::iter::once(encode(Message::Connected)).chain(git_now) {
        // Cannot fail: the writer holds the receiver until `out` is dropped.
        let _ = out.send(text).await;
    }
    let forwarder = tracker.spawn(forward_events(
        shared.clone(),
        conn.clone(),
        events,
        out.clone(),
    ));
    let mut shell = match shell::spawn(&shared, &tracker, out.clone(), conn.stop.clone()) {
        Ok(shell) => Some(shell),
        Err(error) => {
            tracing::warn!(conn = id, %error, "cannot start the shell");
            let _ = out
                .send(encode(Message::Error {
                    error: format!("cannot start the shell {:?}: {error}", shared.config.shell),
                }))
                .await;
            None
        }
    };

    read_loop(&conn, stream, &out, shell.as_mut()).await;
    // Whatever ended the reader ends everything else.
    conn.finish(if shutdown.is_cancelled() {
        End::ServerShutdown
    } else {
        End::ClientGone
    });
    drop(out);
    let _ = writer.await;
    let _ = forwarder.await;
    if let Some(shell) = shell {
        shell.wait().await;
    }
    drop_one(&counters.connections_open);
    let end = conn.end.lock().unwrap().unwrap_or(End::ClientGone);
    tracing::info!(conn = id, peer = %conn.peer, ?end, "client disconnected");
}

type WsStream = futures_util::stream::SplitStream<tokio_tungstenite::WebSocketStream<TcpStream>>;
type WsSink =
    futures_util::stream::SplitSink<tokio_tungstenite::WebSocketStream<TcpStream>, WsMessage>;

/// Read the client's messages until it goes away or the connection stops.
async fn read_loop(
    conn: &Conn,
    mut stream: WsStream,
    out: &mpsc::Sender<Utf8Bytes>,
    mut shell: Option<&mut Shell>,
) {
    loop {
        let frame = tokio::select! {
            () = conn.stop.cancelled() => return,
            frame = stream.next() => frame,
        };
        let text = match frame {
            Some(Ok(WsMessage::Text(text))) => text,
            Some(Ok(WsMessage::Binary(bytes))) => {
                tracing::debug!(conn = conn.id, len = bytes.len(), "ignoring binary frame");
                continue;
            }
            Some(Ok(WsMessage::Close(_))) | None => return,
            Some(Ok(_)) => continue, // ping/pong frames: tungstenite answers
            Some(Err(error)) => {
                tracing::debug!(conn = conn.id, %error, "read failed");
                return;
            }
        };
        let reply = match Envelope::decode(text.as_str()) {
            Ok(envelope) => match envelope.message {
                Message::Ping => Some(Message::Pong),
                Message::ShellInput { data } => match shell.as_deref_mut() {
                    Some(_) if data.is_empty() => None,
                    Some(shell) => {
                        tracing::debug!(conn = conn.id, len = data.len(), "shell input received");
                        let written = tokio::select! {
                            () = conn.stop.cancelled() => return,
                            r = shell.write(data.as_bytes()) => r,
                        };
                        written.err().map(|error| Message::Error {
                            error: format!("shell input not written: {error}"),
                        })
                    }
                    None => Some(Message::Error {
                        error: "no shell".into(),
                    }),
                },
                Message::ShellResize { cols, rows } => shell
                    .as_deref()
                    .and_then(|s| s.resize(cols, rows).err())
                    .map(|error| Message::Error {
                        error: format!("shell not resized: {error}"),
                    }),
                other => {
                    tracing::debug!(conn = conn.id, kind = other.kind(), "ignoring message");
                    None
                }
            },
            Err(error) => {
                tracing::debug!(conn = conn.id, %error, "malformed message from client");
                Some(Message::Error {
                    error: format!("malformed message: {error}"),
                })
            }
        };
        if let Some(reply) = reply {
            tokio::select! {
                () = conn.stop.cancelled() => return,
                r = out.send(encode(reply)) => if r.is_err() { return },
            }
        }
    }
}

/// Write the outbound queue to the socket; on the way out, the close frame.
async fn write_loop(
    shared: Arc<Shared>,
    conn: Arc<Conn>,
    mut sink: WsSink,
    mut queue: mpsc::Receiver<Utf8Bytes>,
) {
    let timeout = shared.config.write_timeout;
    loop {
        let text = tokio::select! {
            () = conn.stop.cancelled() => break,
            text = queue.recv() => match text {
                Some(text) => text,
                None => break,
            },
        };
        let sent = tokio::select! {
            () = conn.stop.cancelled() => break,
            r = tokio::time::timeout(timeout, sink.send(WsMessage::Text(text))) => r,
        };
        match sent {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::debug!(conn = conn.id, %error, "write failed");
                conn.finish(End::ClientGone);
                break;
            }
            Err(_) => {
                tracing::warn!(
                    conn = conn.id,
                    peer = %conn.peer,
                    ?timeout,
                    "dropping slow client: its socket took no data in time"
                );
                bump(&shared.counters.clients_dropped, 1);
                conn.finish(End::Stuck);
                break;
            }
        }
    }
    let end = *conn.end.lock().unwrap();
    let frame = match end {
        Some(End::Stuck) => return,
        Some(End::ClientGone) => None,
        Some(End::ServerShutdown) | None => Some(CloseFrame {
            code: CloseCode::Away,
            reason: "server shutting down".into(),
        }),
    };
    // Bounded: a peer that reads nothing must not hold up the drain.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
        if let Some(frame) = frame {
            let _ = sink.send(WsMessage::Close(Some(frame))).await;
        }
        let _ = sink.close().await;
    })
    .await;
}

/// Forward the shared workspace events to this connection's queue. A
/// connection that falls more than the ring's size behind loses the oldest
/// events and is told to rescan (the overflow policy, see the module docs).
async fn forward_events(
    shared: Arc<Shared>,
    conn: Arc<Conn>,
    mut events: broadcast::Receiver<Utf8Bytes>,
    out: mpsc::Sender<Utf8Bytes>,
) {
    loop {
        let batch = tokio::select! {
            () = conn.stop.cancelled() => return,
            event = events.recv() => match event {
                Ok(text) => vec![text],
                Err(broadcast::error::RecvError::Lagged(lost)) => {
                    bump(&shared.counters.events_dropped, lost);
                    tracing::warn!(conn = conn.id, peer = %conn.peer, lost, "slow client: oldest workspace events dropped, sending a refresh");
                    let refresh = encode(Message::FileChange(Box::new(FileChange {
                        timestamp: super::rfc3339_now(),
                        operation: FileOperation::Refresh,
                        ..FileChange::default()
                    })));
                    let git_now = shared.git_latest.borrow().clone();
                    std::iter::once(refresh).chain(git_now).collect()
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        };
        for text in batch {
            tokio::select! {
                () = conn.stop.cancelled() => return,
                r = out.send(text) => if r.is_err() { return },
            }
        }
    }
}

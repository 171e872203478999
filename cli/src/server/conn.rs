//! One client connection: handshake, then a reader (this task), a writer,
//! a workspace-event forwarder and a shell, all stopped by one token.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage, Utf8Bytes};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::handshake::{self, Outcome};
use super::shell::{self, Input, Shell};
use super::{Shared, bump, drop_one, encode};
use wsdrain::protocol::{Envelope, FileChange, FileOperation, Message};

/// Why a connection ends, which decides its close frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The client closed it or went away: nothing more to send.
    ClientGone,
    /// The server shuts down: close frame 1001.
    ServerShutdown,
    /// The socket took no data in time, or the peer let the write buffer
    /// fill: drop it without a close frame (it reads nothing).
    Stuck,
    /// The client broke the protocol (or the server failed): a close frame
    /// with this code (1002, 1007, 1008, 1009, 1011) and reason.
    Failed(CloseCode, &'static str),
}

impl End {
    /// How a failed read ends the connection.
    fn of_read_error(error: &WsError) -> End {
        match error {
            WsError::Protocol(_) => End::Failed(CloseCode::Protocol, "protocol error"),
            WsError::Utf8(_) => End::Failed(CloseCode::Invalid, "invalid UTF-8 in a text frame"),
            WsError::Capacity(_) => End::Failed(CloseCode::Size, "message too big"),
            WsError::AttackAttempt => End::Failed(CloseCode::Policy, "attack attempt"),
            WsError::WriteBufferFull(_) => End::Stuck,
            WsError::ConnectionClosed | WsError::AlreadyClosed | WsError::Io(_) => End::ClientGone,
            _ => End::Failed(CloseCode::Error, "internal error"),
        }
    }
}

/// Shell input waiting for the shell to read it, in messages. The reader
/// never waits behind the pty: it queues the input here and reads on.
const INPUT_QUEUE: usize = 64;

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
    let (ws, _slot) = match handshake {
        Ok(Ok(Outcome::Upgraded(ws, slot))) => (ws, slot),
        Ok(Ok(Outcome::Refused(status, reason))) => {
            tracing::info!(%peer, status, reason, "request refused");
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
    // The shell is forked on first need (the first `shell_input` or
    // `shell_resize`): a connection that only watches files costs no process.
    let mut shell = LazyShell {
        shared: shared.clone(),
        tracker: tracker.clone(),
        out: out.clone(),
        stop: conn.stop.clone(),
        state: ShellState::NotStarted,
    };
    let ended = read_loop(&shared, &conn, stream, &out, &mut shell).await;
    // Whatever ended the reader ends everything else.
    conn.finish(if shutdown.is_cancelled() {
        End::ServerShutdown
    } else {
        ended
    });
    drop(out);
    let _ = writer.await;
    let _ = forwarder.await;
    if let ShellState::Running(shell) = shell.state {
        shell.wait().await;
    }
    drop_one(&counters.connections_open);
    let end = conn.end.lock().unwrap().unwrap_or(End::ClientGone);
    tracing::info!(conn = id, peer = %conn.peer, ?end, "client disconnected");
}

type WsStream = futures_util::stream::SplitStream<tokio_tungstenite::WebSocketStream<TcpStream>>;
type WsSink =
    futures_util::stream::SplitSink<tokio_tungstenite::WebSocketStream<TcpStream>, WsMessage>;

/// Read the client's messages until it goes away or the connection stops;
/// how it ended. It never waits on the shell (input goes through a queue
/// to the shell's writer task), so a client that goes away is noticed
/// whatever the shell is doing.
async fn read_loop(
    shared: &Shared,
    conn: &Conn,
    mut stream: WsStream,
    out: &mpsc::Sender<Utf8Bytes>,
    shell: &mut LazyShell,
) -> End {
    loop {
        let frame = tokio::select! {
            () = conn.stop.cancelled() => return End::ClientGone,
            frame = stream.next() => frame,
        };
        let text = match frame {
            Some(Ok(WsMessage::Text(text))) => text,
            Some(Ok(WsMessage::Binary(bytes))) => {
                tracing::debug!(conn = conn.id, len = bytes.len(), "ignoring binary frame");
                continue;
            }
            Some(Ok(WsMessage::Close(_))) | None => return End::ClientGone,
            Some(Ok(_)) => continue, // ping/pong frames: tungstenite answers
            Some(Err(error)) => {
                let end = End::of_read_error(&error);
                match end {
                    End::Failed(code, _) => {
                        tracing::info!(conn = conn.id, peer = %conn.peer, %error, code = u16::from(code), "closing: the client broke the protocol")
                    }
                    _ => tracing::debug!(conn = conn.id, %error, "read failed"),
                }
                return end;
            }
        };
        let reply = match Envelope::decode(text.as_str()) {
            Ok(envelope) => match envelope.message {
                Message::Ping => Some(Message::Pong),
                Message::ShellInput { data } if data.is_empty() => None,
                Message::ShellInput { data } => match shell.get(conn.id) {
                    Ok(shell) => {
                        tracing::debug!(conn = conn.id, len = data.len(), "shell input received");
                        match queue_input(shared, conn, shell, Input::Data(data)).await {
                            Ok(reply) => reply,
                            Err(end) => return end,
                        }
                    }
                    Err(error) => Some(error),
                },
                // The wire has Go's 64-bit `int`; a terminal has 16-bit sizes.
                Message::ShellResize { cols, rows }
                    if !(1..=i64::from(u16::MAX)).contains(&cols)
                        || !(1..=i64::from(u16::MAX)).contains(&rows) =>
                {
                    Some(Message::Error {
                        error: format!("shell not resized: invalid size {cols}x{rows}"),
                    })
                }
                Message::ShellResize { cols, rows } => match shell.get(conn.id) {
                    Ok(shell) => {
                        match queue_input(
                            shared,
                            conn,
                            shell,
                            Input::Resize {
                                cols: cols as u16,
                                rows: rows as u16,
                            },
                        )
                        .await
                        {
                            Ok(reply) => reply,
                            Err(end) => return end,
                        }
                    }
                    Err(error) => Some(error),
                },
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
                () = conn.stop.cancelled() => return End::ClientGone,
                r = out.send(encode(reply)) => if r.is_err() { return End::ClientGone },
            }
        }
    }
}

/// The connection's shell, forked when first needed.
struct LazyShell {
    shared: Arc<Shared>,
    tracker: TaskTracker,
    out: mpsc::Sender<Utf8Bytes>,
    stop: CancellationToken,
    state: ShellState,
}

enum ShellState {
    NotStarted,
    Running(Shell),
    /// It could not be started; said once, then "no shell".
    Unavailable,
}

impl LazyShell {
    /// The shell, started now if it was not yet; else the error to send.
    fn get(&mut self, conn: u64) -> Result<&Shell, Message> {
        if let ShellState::NotStarted = self.state {
            let shared = &self.shared;
            match shell::spawn(
                shared,
                &self.tracker,
                self.out.clone(),
                self.stop.clone(),
                INPUT_QUEUE,
            ) {
                Ok(shell) => self.state = ShellState::Running(shell),
                Err(error) => {
                    let error = if shared.root.is_dir() {
                        format!("cannot start the shell {:?}: {error}", shared.config.shell)
                    } else {
                        format!(
                            "cannot start the shell: the workspace {} no longer exists",
                            shared.root.display()
                        )
                    };
                    tracing::warn!(conn, %error, "cannot start the shell");
                    self.state = ShellState::Unavailable;
                    return Err(Message::Error { error });
                }
            }
        }
        match &self.state {
            ShellState::Running(shell) => Ok(shell),
            _ => Err(Message::Error {
                error: "no shell".into(),
            }),
        }
    }
}

/// Queue input for the shell's writer task. A full queue (the shell reads
/// no input) is waited on for at most `write_timeout`; past that the
/// connection ends with 1008. The reply to send, if any.
async fn queue_input(
    shared: &Shared,
    conn: &Conn,
    shell: &Shell,
    input: Input,
) -> Result<Option<Message>, End> {
    if shell.has_exited() {
        return Ok(Some(Message::Error {
            error: "shell input not written: the shell has exited".into(),
        }));
    }
    let limit = shared.config.write_timeout;
    let queued = tokio::select! {
        () = conn.stop.cancelled() => return Err(End::ClientGone),
        r = tokio::time::timeout(limit, shell.input().send(input)) => r,
    };
    match queued {
        Ok(Ok(())) => Ok(None),
        Ok(Err(_)) => Ok(Some(Message::Error {
            error: "shell input not written: the shell has exited".into(),
        })),
        Err(_) => {
            tracing::warn!(conn = conn.id, peer = %conn.peer, ?limit, "closing: the shell has read none of its queued input in time");
            Err(End::Failed(
                CloseCode::Policy,
                "the shell is not reading its input",
            ))
        }
    }
}

/// Write the outbound queue to the socket, and a keepalive ping when
/// nothing else was sent for a while (a write to a client that went away
/// fails, which ends the connection); on the way out, the close frame.
async fn write_loop(
    shared: Arc<Shared>,
    conn: Arc<Conn>,
    mut sink: WsSink,
    mut queue: mpsc::Receiver<Utf8Bytes>,
) {
    let timeout = shared.config.write_timeout;
    let keepalive = shared.config.keepalive_interval;
    let mut ticker = tokio::time::interval(if keepalive.is_zero() {
        Duration::from_secs(24 * 3600)
    } else {
        keepalive
    });
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.reset();
    loop {
        let message = tokio::select! {
            () = conn.stop.cancelled() => break,
            text = queue.recv() => match text {
                Some(text) => WsMessage::Text(text),
                None => break,
            },
            _ = ticker.tick(), if !keepalive.is_zero() => WsMessage::Ping(Default::default()),
        };
        ticker.reset();
        let sent = tokio::select! {
            () = conn.stop.cancelled() => break,
            r = tokio::time::timeout(timeout, sink.send(message)) => r,
        };
        match sent {
            Ok(Ok(())) => {}
            Ok(Err(WsError::WriteBufferFull(_))) => {
                // Unsent data reached max_write_buffer: the peer reads nothing
                // (a ping flood does this: a pong per ping).
                tracing::warn!(
                    conn = conn.id,
                    peer = %conn.peer,
                    limit = shared.config.max_write_buffer,
                    "dropping client: its unsent data reached the write buffer limit"
                );
                bump(&shared.counters.clients_dropped, 1);
                conn.finish(End::Stuck);
                break;
            }
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
        Some(End::Failed(code, reason)) => Some(CloseFrame {
            code,
            reason: reason.into(),
        }),
        Some(End::ServerShutdown) | None => Some(CloseFrame {
            code: CloseCode::Away,
            reason: "server shutting down".into(),
        }),
    };
    // Bounded: a peer that reads nothing must not hold up the drain.
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
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

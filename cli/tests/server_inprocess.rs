//! The workspace server run in-process (`wsdrain_cli::server`), driven by the
//! library's own client and by raw sockets.
#![cfg(unix)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use wsdrain::protocol::{Envelope, FileOperation, Message};
use wsdrain::{Client, ClientConfig, Error, Event, StreamEnd};
use wsdrain_cli::server::{RunningServer, Server, ServerConfig};

const PATIENCE: Duration = Duration::from_secs(20);

async fn start(
    dir: &std::path::Path,
    tweak: impl FnOnce(ServerConfig) -> ServerConfig,
) -> RunningServer {
    let config = tweak(ServerConfig::new(dir).with_shell("/bin/sh"));
    Server::bind(config).await.expect("bind").start()
}

/// A client whose events arrive on a channel.
async fn connect(
    url: &str,
    config: ClientConfig,
) -> wsdrain::Result<(
    Client,
    wsdrain::WorkspaceStream,
    mpsc::UnboundedReceiver<Envelope>,
)> {
    let client = Client::with_config(url, config)?;
    let (tx, rx) = mpsc::unbounded_channel();
    let stream = client
        .stream_workspace(move |event: Event| {
            if let Event::Message(envelope) = event {
                let _ = tx.send(envelope);
            }
            async {}
        })
        .await?;
    Ok((client, stream, rx))
}

/// A client with the default config on `server`, past the server's
/// `connected` (which must be the first message).
async fn connected(
    server: &RunningServer,
) -> (
    Client,
    wsdrain::WorkspaceStream,
    mpsc::UnboundedReceiver<Envelope>,
) {
    let (client, stream, mut rx) = connect(&server.url(), ClientConfig::default())
        .await
        .expect("connect");
    assert_eq!(
        expect(&mut rx, "the first message", |_| true).await,
        Message::Connected,
        "`connected` must come first"
    );
    (client, stream, rx)
}

async fn expect(
    rx: &mut mpsc::UnboundedReceiver<Envelope>,
    what: &str,
    pred: impl Fn(&Message) -> bool,
) -> Message {
    timeout(PATIENCE, async {
        loop {
            let envelope = rx
                .recv()
                .await
                .unwrap_or_else(|| panic!("stream ended before {what}"));
            if pred(&envelope.message) {
                return envelope.message;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

async fn shell_output_until(rx: &mut mpsc::UnboundedReceiver<Envelope>, needle: &str) -> String {
    let mut text = String::new();
    while !text.contains(needle) {
        if let Message::ShellOutput { data } =
            expect(rx, needle, |m| matches!(m, Message::ShellOutput { .. })).await
        {
            text.push_str(&data);
        }
    }
    text
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    timeout(PATIENCE, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting until {what}"));
}

/// Send a raw HTTP request; the status code of the answer.
async fn raw_status(addr: std::net::SocketAddr, request: &str) -> u16 {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    timeout(PATIENCE, tcp.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"))
}

const UPGRADE: &str = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_and_auth() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), |c| c.with_token(Some("s3cret".into()))).await;
    let addr = server.local_addr();
    let path = wsdrain::STREAM_PATH;
    assert_eq!(
        raw_status(addr, "GET /nope HTTP/1.1\r\nHost: localhost\r\n\r\n").await,
        404
    );
    assert_eq!(
        raw_status(
            addr,
            &format!("POST {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")
        )
        .await,
        405
    );
    // No token, and a wrong one: 401, upgrade headers or not.
    assert_eq!(
        raw_status(
            addr,
            &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")
        )
        .await,
        401
    );
    assert_eq!(
        raw_status(
            addr,
            &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{UPGRADE}\r\n")
        )
        .await,
        401
    );
    assert_eq!(
        raw_status(
            addr,
            &format!(
                "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer s3cre\r\n{UPGRADE}\r\n"
            )
        )
        .await,
        401
    );
    // The right token, but no upgrade: 426.
    assert_eq!(
        raw_status(
            addr,
            &format!(
                "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer s3cret\r\n\r\n"
            )
        )
        .await,
        426
    );
    assert_eq!(raw_status(addr, "garbage\r\n\r\n").await, 400);

    let wrong = connect(&server.url(), ClientConfig::default().with_token("nope")).await;
    assert!(
        matches!(wrong, Err(Error::Unauthorized)),
        "{:?}",
        wrong.err()
    );
    let (client, _stream, mut rx) =
        connect(&server.url(), ClientConfig::default().with_token("s3cret"))
            .await
            .unwrap();
    expect(&mut rx, "connected", |m| *m == Message::Connected).await;
    assert_eq!(server.stats().unauthorized, 4);
    client.close().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_resize_and_malformed_input() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), |c| c).await;
    let (client, stream, mut rx) = connected(&server).await;
    stream.ping().await.unwrap();
    expect(&mut rx, "pong", |m| *m == Message::Pong).await;
    stream.resize_shell(123, 45).await.unwrap();
    stream
        .write_shell_input("stty size; echo do\"\"ne\n")
        .await
        .unwrap();
    let text = shell_output_until(&mut rx, "done").await;
    assert!(text.contains("45 123"), "{text:?}");
    client.close().await;

    // A raw client sending garbage gets an `error` message and stays connected.
    let url = format!("ws://{}{}", server.local_addr(), wsdrain::STREAM_PATH);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws.send(WsMessage::text("{oops")).await.unwrap();
    ws.send(WsMessage::text(r#"{"type":"ping","timestamp":1}"#))
        .await
        .unwrap();
    let mut kinds = Vec::new();
    while !kinds.contains(&"pong".to_owned()) {
        let frame = timeout(PATIENCE, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let WsMessage::Text(text) = frame {
            kinds.push(Envelope::decode(&text).unwrap().message.kind().to_owned());
        }
    }
    assert!(kinds.contains(&"error".to_owned()), "{kinds:?}");
    drop(ws);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_connections_and_shells() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), |c| c).await;
    let mut clients = Vec::new();
    for _ in 0..5 {
        let (client, stream, rx) = connected(&server).await;
        // A shell is forked on first need: a resize is one.
        stream.resize_shell(100, 30).await.unwrap();
        clients.push((client, stream, rx));
    }
    wait_until("5 shells run", || server.stats().shells_running == 5).await;
    assert_eq!(server.stats().connections_open, 5);
    // shutdown() returns only when everything has ended.
    let after = timeout(PATIENCE, server.shutdown())
        .await
        .expect("shutdown drains in time");
    assert_eq!(
        (after.connections_open, after.shells_running),
        (0, 0),
        "{after:?}"
    );
    assert_eq!(after.connections_total, 5);
    for (client, stream, _) in &clients {
        let end = timeout(PATIENCE, stream.wait()).await.unwrap();
        assert!(matches!(end, StreamEnd::ServerClosed { .. }), "{end:?}");
        client.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_close_stops_the_shell() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), |c| c).await;
    let (client, stream, _rx) = connected(&server).await;
    assert_eq!(
        server.stats().shells_running,
        0,
        "no shell before the connection needs one"
    );
    stream.resize_shell(100, 30).await.unwrap();
    wait_until("the shell runs", || server.stats().shells_running == 1).await;
    client.close().await;
    assert_eq!(client.live_tasks(), 0, "close() is a drain barrier");
    wait_until("the connection is closed", || {
        server.stats().connections_open == 0
    })
    .await;
    assert_eq!(server.stats().shells_running, 0);
    server.shutdown().await;
}

/// The overflow policy: a client that stops reading loses its oldest
/// workspace events and is told to rescan, while the others get everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_client_drops_oldest_events_and_others_go_on() {
    const FILES: usize = 300;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), |c| {
        c.with_event_buffer(64)
            .with_queue_capacity(4)
            .with_coalesce_window(Duration::from_millis(10))
    })
    .await;

    // The slow client: floods its own shell's output and reads nothing, so
    // its socket and queue fill up.
    // Its receive buffer is small, so the socket fills within the second
    // below however loaded the machine is (autotuned loopback buffers take
    // megabytes).
    let url = format!("ws://{}{}", server.local_addr(), wsdrain::STREAM_PATH);
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(server.local_addr()).await.unwrap();
    let (mut slow, _) = tokio_tungstenite::client_async(url, tcp).await.unwrap();
    let flood = Envelope::new(Message::ShellInput {
        data: "yes 0123456789abcdef0123456789abcdef\n".into(),
    });
    slow.send(WsMessage::text(flood.encode())).await.unwrap();
    // The shell is forked on that first input; give the flood time to fill
    // the socket buffers once it runs.
    wait_until("the slow client's shell runs", || {
        server.stats().shells_running == 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let (client, _stream, mut rx) = connected(&server).await;
    // At least FILES events, and more until the slow client has fallen
    // behind (on a loaded machine its shell may fill its socket late).
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut written = 0;
    while written < FILES
        || (server.stats().events_dropped == 0 && tokio::time::Instant::now() < deadline)
    {
        std::fs::write(dir.path().join(format!("f{written:05}")), "").unwrap();
        if written % 8 == 7 {
            // Spread them over batches (of fewer events than the ring
            // holds), so that only the slow client falls behind.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        written += 1;
    }
    let mut seen = 0;
    timeout(PATIENCE, async {
        while seen < written {
            if let Message::FileChange(change) = rx.recv().await.unwrap().message {
                assert_ne!(
                    change.operation,
                    FileOperation::Refresh,
                    "the fast client must not lag"
                );
                seen += 1;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the fast client saw only {seen} of {written} events"));
    // Now it reads: behind its shell output, it finds a `refresh`.
    let found = timeout(PATIENCE, async {
        while let Some(Ok(frame)) = slow.next().await {
            if let WsMessage::Text(text) = frame
                && let Ok(Envelope {
                    message: Message::FileChange(change),
                    ..
                }) = Envelope::decode(&text)
                && change.operation == FileOperation::Refresh
            {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(
        found,
        Ok(true),
        "the slow client must be told to rescan; {:?}",
        server.stats()
    );
    assert!(server.stats().events_dropped > 0);
    drop(slow);
    client.close().await;
    timeout(PATIENCE, server.shutdown())
        .await
        .expect("shutdown");
}

/// A client whose socket takes nothing for `write_timeout` is dropped, and
/// its shell stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_client_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), |c| {
        c.with_write_timeout(Duration::from_millis(500))
    })
    .await;
    let url = format!("ws://{}{}", server.local_addr(), wsdrain::STREAM_PATH);
    let (mut stuck, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let flood = Envelope::new(Message::ShellInput {
        data: "yes\n".into(),
    });
    stuck.send(WsMessage::text(flood.encode())).await.unwrap();
    wait_until("the stuck client is dropped", || {
        server.stats().clients_dropped == 1
    })
    .await;
    wait_until("its shell is stopped", || {
        server.stats().shells_running == 0
    })
    .await;
    wait_until("its connection is closed", || {
        server.stats().connections_open == 0
    })
    .await;
    drop(stuck);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_refuses_bad_configurations() {
    let dir = tempfile::tempdir().unwrap();
    let open = ServerConfig::new(dir.path()).with_addr("0.0.0.0:0".parse().unwrap());
    let err = Server::bind(open).await.unwrap_err();
    assert!(
        err.is_config() && err.to_string().contains("non-loopback"),
        "{err}"
    );
    let missing = ServerConfig::new(dir.path().join("missing"));
    assert!(Server::bind(missing).await.unwrap_err().is_config());
    // With a token, a non-loopback address is fine.
    let ok = ServerConfig::new(dir.path())
        .with_addr("0.0.0.0:0".parse().unwrap())
        .with_token(Some("t".into()));
    let server = Server::bind(ok).await.unwrap();
    assert!(server.local_addr().port() > 0);
    server.run_until(async {}).await;
}

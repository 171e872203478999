//! The wire protocol against a real server: input the client sends, what it
//! makes of everything a server may send (valid, malformed, unknown, binary,
//! oversized), and flow control with a slow handler.

mod support;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use support::{STEP, ServerConfig, TestServer, msg, recorder, shell_output, within};
use tokio::sync::{Notify, mpsc};
use wsdrain::protocol::{Envelope, Message};
use wsdrain::{Client, ClientConfig, Error, Event, Skipped, StreamEnd};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_input_arrives_as_shell_input_messages_in_order() {
    let server = TestServer::start();
    let client = Client::new(&server.base_url()).unwrap();
    let (handler, mut events) = recorder();
    let stream = client.stream_workspace(handler).await.unwrap();
    events.expect_connected().await;
    let conn = server.next_conn().await;

    let inputs = ["ls -la\n", "echo \"héllo wörld\" 🚀\r\n", "\u{3}", "x"];
    for input in inputs {
        stream.write_shell_input(input).await.unwrap();
    }
    for input in inputs {
        let message = conn.next_message().await;
        assert_eq!(message["type"], "shell_input", "{message}");
        assert_eq!(message["data"], input, "{message}");
        assert!(message["timestamp"].as_i64().unwrap() > 0, "{message}");
        let object = message.as_object().unwrap();
        assert_eq!(object.len(), 3, "type, timestamp, data only: {message}");
    }

    within(STEP, "close()", client.close()).await;
    server.wait_open(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resize_shell_arrives_as_shell_resize() {
    let server = TestServer::start();
    let client = Client::new(&server.base_url()).unwrap();
    let (handler, mut events) = recorder();
    let stream = client.stream_workspace(handler).await.unwrap();
    events.expect_connected().await;
    let conn = server.next_conn().await;

    stream.resize_shell(120, 40).await.unwrap();
    let message = conn.next_message().await;
    assert_eq!(message["type"], "shell_resize");
    assert_eq!(message["cols"], 120);
    assert_eq!(message["rows"], 40);

    within(STEP, "close()", client.close()).await;
    server.wait_open(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_is_answered_with_a_pong_delivered_to_the_handler() {
    let server = TestServer::start();
    let client = Client::new(&server.base_url()).unwrap();
    let (handler, mut events) = recorder();
    let stream = client.stream_workspace(handler).await.unwrap();
    events.expect_connected().await;
    let conn = server.next_conn().await;

    stream.ping().await.unwrap();
    let ping = conn.next_message().await;
    assert_eq!(ping["type"], "ping");
    assert_eq!(ping.as_object().unwrap().len(), 2, "{ping}");
    assert_eq!(events.next_message().await, Message::Pong);

    within(STEP, "close()", client.close()).await;
    server.wait_open(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_sent_over_the_socket_decodes_as_it_does_locally() {
    let fixtures = [
        include_str!("fixtures/protocol/shell_output.json"),
        include_str!("fixtures/protocol/shell_exit.json"),
        include_str!("fixtures/protocol/pong.json"),
        include_str!("fixtures/protocol/git_status.json"),
        include_str!("fixtures/protocol/git_commit.json"),
        include_str!("fixtures/protocol/git_reset.json"),
        include_str!("fixtures/protocol/branch_switch.json"),
        include_str!("fixtures/protocol/file_change.json"),
        include_str!("fixtures/protocol/process_output.json"),
        include_str!("fixtures/protocol/process_status.json"),
        include_str!("fixtures/protocol/error.json"),
        include_str!("fixtures/protocol/unknown_type.json"),
        include_str!("fixtures/protocol/unknown_fields.json"),
    ];
    let server = TestServer::start();
    let client = Client::new(&server.base_url()).unwrap();
    let (handler, mut events) = recorder();
    let stream = client.stream_workspace(handler).await.unwrap();
    events.expect_connected().await;
    let conn = server.next_conn().await;

    conn.send_texts(fixtures.iter().map(|f| f.to_string()));
    for fixture in fixtures {
        let expected = Envelope::decode(fixture).expect("the fixture decodes");
        match events.next().await {
            Event::Message(envelope) => assert_eq!(envelope, expected),
            other => panic!("expected {expected:?}, got {other:?}"),
        }
    }
    assert!(!stream.is_closed());

    within(STEP, "close()", client.close()).await;
    server.wait_open(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_unknown_and_binary_frames_are_skipped_and_the_stream_survives() {
    let server = TestServer::start();
    let client = Client::new(&server.base_url()).unwrap();
    let (handler, mut events) = recorder();
    let stream = client.stream_workspace(handler).await.unwrap();
    events.expect_connected().await;
    let conn = server.next_conn().await;

    conn.send_text("{not json");
    conn.send_text(r#"{"type":"workspace_teleported","timestamp":42,"where":"mars"}"#);
    conn.send_binary(vec![0xde, 0xad, 0xbe, 0xef, 0x00]);
    conn.send_text("[1,2,3]");
    conn.send_text(r#"{"timestamp":1}"#);
    conn.send_text(r#"{"type":"shell_exit","code":"not a number"}"#);
    conn.send_text(shell_output("still alive"));

    match events.next().await {
        Event::Skipped(Skipped::Malformed { len, error }) => {
            assert_eq!(len, "{not json".len());
            assert!(!error.is_empty());
        }
        other => panic!("malformed JSON: {other:?}"),
    }
    match events.next().await {
        Event::Message(envelope) => {
            assert_eq!(envelope.timestamp, 42);
            match envelope.message {
                Message::Unknown { kind, raw } => {
                    assert_eq!(kind, "workspace_teleported");
                    assert_eq!(raw["where"], "mars");
                }
                other => panic!("unknown type: {other:?}"),
            }
        }
        other => panic!("unknown type: {other:?}"),
    }
    assert_eq!(
        events.next().await,
        Event::Skipped(Skipped::Binary { len: 5 })
    );
    for what in ["a JSON array", "no type", "a mistyped field"] {
        match events.next().await {
            Event::Skipped(Skipped::Malformed { .. }) => {}
            other => panic!("{what}: {other:?}"),
        }
    }
    assert_eq!(
        events.next_message().await,
        Message::ShellOutput {
            data: "still alive".into()
        }
    );
    assert!(!stream.is_closed(), "nothing of that closes the stream");

    // And it still works both ways.
    stream.write_shell_input("still here").await.unwrap();
    assert_eq!(conn.next_of_type("shell_input").await["data"], "still here");

    within(STEP, "close()", client.close()).await;
    assert_eq!(client.live_tasks(), 0);
    server.wait_open(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_max_message_size_fails_the_stream() {
    const LIMIT: usize = 1024;
    let server = TestServer::start();
    let config = ClientConfig::default().with_max_message_size(LIMIT);
    let client = Client::with_config(&server.base_url(), config).unwrap();
    let (handler, mut events) = recorder();
    let stream = client.stream_workspace(handler).await.unwrap();
    events.expect_connected().await;
    let conn = server.next_conn().await;

    let just_fits = shell_output(&"a".repeat(LIMIT - 100));
    assert!(just_fits.len() <= LIMIT);
    conn.send_text(just_fits);
    let too_big = shell_output(&"b".repeat(4 * LIMIT));
    let too_big_len = too_big.len();
    conn.send_text(too_big);
    conn.send_text(shell_output("never delivered"));

    match events.next_message().await {
        Message::ShellOutput { data } => assert_eq!(data.len(), LIMIT - 100),
        other => panic!("{other:?}"),
    }
    within(STEP, "done()", stream.done()).await;
    let end = within(STEP, "wait()", stream.wait()).await;
    match &end {
        StreamEnd::Failed(error) => match **error {
            Error::MessageTooLarge { size, limit } => {
                assert_eq!(limit, LIMIT);
                assert_eq!(size, too_big_len);
            }
            ref other => panic!("expected MessageTooLarge, got {other:?}"),
        },
        other => panic!("expected Failed, got {other:?}"),
    }
    assert!(
        events.try_next().is_none(),
        "nothing after the oversized message"
    );
    assert_eq!(client.live_tasks(), 0);
    server.wait_open(0).await;

    // The client itself is fine: a new stream works.
    let (handler, mut events) = recorder();
    let _again = client.stream_workspace(handler).await.unwrap();
    events.expect_connected().await;
    within(STEP, "close()", client.close()).await;
    server.wait_open(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_read_buffer_still_receives_messages_larger_than_it() {
    let server = TestServer::start();
    let config = ClientConfig::default().with_read_buffer_size(4 * 1024);
    let client = Client::with_config(&server.base_url(), config).unwrap();
    let (handler, mut events) = recorder();
    let _stream = client.stream_workspace(handler).await.unwrap();
    events.expect_connected().await;
    let conn = server.next_conn().await;

    let big = "x".repeat(256 * 1024); // 64 times the read buffer
    conn.send_text(shell_output(&big));
    conn.send_text(shell_output("after"));
    match events.next_message().await {
        Message::ShellOutput { data } => assert_eq!(data, big),
        other => panic!("{other:?}"),
    }
    match events.next_message().await {
        Message::ShellOutput { data } => assert_eq!(data, "after"),
        other => panic!("{other:?}"),
    }
    within(STEP, "close()", client.close()).await;
    assert_eq!(client.live_tasks(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_handler_applies_backpressure_and_loses_nothing() {
    const N: usize = 1000;
    // 16 MiB in all: more than the socket buffers and tungstenite's read
    // buffer can hold, so a stalled handler must stall the server.
    let padding = "p".repeat(16 * 1024);

    let server = TestServer::start();
    let client = Client::new(&server.base_url()).unwrap();
    let gate = Arc::new(Notify::new());
    let (blocked_tx, mut blocked_rx) = mpsc::unbounded_channel();
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel::<usize>();
    let handler = {
        let gate = gate.clone();
        move |event: Event| {
            let gate = gate.clone();
            let blocked_tx = blocked_tx.clone();
            let seen_tx = seen_tx.clone();
            async move {
                let Event::Message(envelope) = event else {
                    panic!("unexpected {event:?}");
                };
                let Message::ShellOutput { data } = envelope.message else {
                    return; // `connected`
                };
                let (index, _) = data.split_once(':').expect("numbered");
                let index: usize = index.parse().unwrap();
                if index == 0 {
                    // Stall the reader until the test has looked at the server.
                    let _ = blocked_tx.send(());
                    gate.notified().await;
                } else if index.is_multiple_of(50) {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                let _ = seen_tx.send(index);
            }
        }
    };
    let _stream = client.stream_workspace(handler).await.unwrap();
    let conn = server.next_conn().await;

    conn.send_texts((0..N).map(|i| shell_output(&format!("{i}:{padding}"))));
    within(STEP, "the handler to stall", blocked_rx.recv()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent_while_stalled = conn.sent();
    eprintln!("the server got {sent_while_stalled} of {N} messages out while the handler stalled");
    assert!(
        sent_while_stalled < N,
        "the server could send everything while the handler stalled: no backpressure"
    );
    gate.notify_one();

    let mut seen = Vec::with_capacity(N);
    while seen.len() < N {
        let index = within(Duration::from_secs(30), "the next message", seen_rx.recv())
            .await
            .expect("handler gone");
        seen.push(index);
    }
    assert!(
        seen.iter().copied().eq(0..N),
        "every message, once, in order"
    );
    assert_eq!(conn.sent(), N);

    within(STEP, "close()", client.close()).await;
    assert_eq!(client.live_tasks(), 0);
    server.wait_open(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_and_a_pongless_server_do_not_break_the_stream() {
    // No `connected`, no `pong`: the client does not depend on either.
    let server = TestServer::start_with(ServerConfig::default().without_connected().without_pong());
    let client = Client::new(&server.base_url()).unwrap();
    let (handler, mut events) = recorder();
    let stream = client.stream_workspace(handler).await.unwrap();
    let conn = server.next_conn().await;
    stream.ping().await.unwrap();
    assert_eq!(conn.next_message().await["type"], "ping");
    conn.send_text(msg("error", json!({ "error": "boom" })));
    assert_eq!(
        events.next_message().await,
        Message::Error {
            error: "boom".into()
        }
    );
    assert!(events.try_next().is_none());
    assert_eq!(
        conn.received()
            .iter()
            .filter(|m| m["type"] == "ping")
            .count(),
        1
    );
    within(STEP, "close()", client.close()).await;
    server.wait_open(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_ping_frames_are_answered_and_not_delivered() {
    let server = TestServer::start();
    let client = Client::new(&server.base_url()).unwrap();
    let (handler, mut events) = recorder();
    let stream = client.stream_workspace(handler).await.unwrap();
    events.expect_connected().await;
    let conn = server.next_conn().await;

    conn.send_ping_frame("heartbeat");
    let pong = conn.next_message().await;
    assert_eq!(pong, json!({ "control": "pong", "payload": "heartbeat" }));
    conn.send_text(shell_output("after the ping"));
    assert_eq!(
        events.next_message().await,
        Message::ShellOutput {
            data: "after the ping".into()
        },
        "the control frame itself reaches no handler"
    );
    assert!(!stream.is_closed());

    within(STEP, "close()", client.close()).await;
    server.wait_open(0).await;
}

/// A server flooding ping frames (each one makes the client queue a pong)
/// ends the stream with `PingFlood` instead of keeping the client busy and,
/// while it does not read, growing the client's write buffer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_flood_ends_the_stream() {
    let server = TestServer::start();
    let client = Client::new(&server.base_url()).unwrap();
    let (handler, mut events) = recorder();
    let stream = client.stream_workspace(handler).await.unwrap();
    events.expect_connected().await;
    let conn = server.next_conn().await;

    conn.stop_reading();
    conn.send_ping_frames(20_000);
    let end = within(STEP, "wait()", stream.wait()).await;
    match &end {
        StreamEnd::Failed(error) => assert!(
            matches!(**error, Error::PingFlood { limit: 1000, .. }),
            "{error:?}"
        ),
        other => panic!("expected a ping flood, got {other:?}"),
    }
    within(STEP, "close()", client.close()).await;
    assert_eq!(client.live_tasks(), 0);
}

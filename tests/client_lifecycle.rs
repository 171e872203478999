//! `Client` and `WorkspaceStream` lifecycle against a real WebSocket server:
//! the drain barrier, closing from every side, reconnecting, and the
//! one-stream-at-a-time rule.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::{
    ConnEnd, STEP, ServerConfig, TestServer, alive_tasks, alive_tasks_back_to, eventually,
    recorder, shell_output, within,
};
use tokio::sync::mpsc;
use wsdrain::protocol::Message;
use wsdrain::{Client, ClientConfig, Error, Event, StreamEnd};

/// A handler that, on `shell_output` "slow", reports that it started, sleeps
/// `pause`, then sets `finished`: a handler call in flight when close runs.
fn slow_handler(
    pause: Duration,
) -> (
    impl wsdrain::Handler,
    mpsc::UnboundedReceiver<()>,
    Arc<AtomicBool>,
) {
    let finished = Arc::new(AtomicBool::new(false));
    let (started_tx, started_rx) = mpsc::unbounded_channel();
    let flag = finished.clone();
    let handler = move |event: Event| {
        let started_tx = started_tx.clone();
        let flag = flag.clone();
        async move {
            if is_output(&event, "slow") {
                let _ = started_tx.send(());
                tokio::time::sleep(pause).await;
                flag.store(true, Ordering::SeqCst);
            }
        }
    };
    (handler, started_rx, finished)
}

fn is_output(event: &Event, text: &str) -> bool {
    matches!(event, Event::Message(envelope)
        if envelope.message == Message::ShellOutput { data: text.into() })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_drains_every_task_and_returns_promptly() {
    let server = TestServer::start();
    let baseline = alive_tasks();
    let client = Client::new(&server.base_url()).unwrap();
    let (handler, mut started, finished) = slow_handler(Duration::from_millis(300));

    let stream = within(STEP, "stream_workspace", client.stream_workspace(handler))
        .await
        .expect("stream_workspace");
    let conn = server.next_conn().await;
    assert_eq!(client.live_tasks(), 2, "a reader and a writer");
    assert_eq!(
        alive_tasks(),
        baseline + 2,
        "the runtime sees the same two tasks"
    );

    // A handler call in flight and input queued when close() runs.
    conn.send_text(shell_output("slow"));
    within(STEP, "the slow handler to start", started.recv()).await;
    for i in 0..10 {
        stream
            .write_shell_input(format!("input {i}\n"))
            .await
            .unwrap();
    }

    let t0 = Instant::now();
    within(Duration::from_secs(2), "close()", client.close()).await;
    let took = t0.elapsed();
    eprintln!("close() took {took:?} with a 300 ms handler call in flight");
    assert!(took < Duration::from_secs(2));
    assert!(
        finished.load(Ordering::SeqCst),
        "close() returned while a handler call was still running"
    );
    assert_eq!(client.live_tasks(), 0, "close() is a drain barrier");
    assert_eq!(client.spawned_tasks(), 2);
    assert!(client.is_closed());
    assert!(stream.is_closed());
    assert!(client.workspace_stream().is_none());
    let end = within(
        Duration::from_millis(100),
        "wait() after close",
        stream.wait(),
    )
    .await;
    assert!(matches!(end, StreamEnd::Closed), "{end:?}");
    alive_tasks_back_to(baseline).await;

    conn.wait_closed_by_client().await;
    server.wait_open(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_workspace_after_close_fails_with_client_closed() {
    let server = TestServer::start();
    let client = Client::new(&server.base_url()).unwrap();

    // Close on a client that never streamed returns at once.
    within(Duration::from_secs(1), "close()", client.close()).await;
    let (handler, _events) = recorder();
    let result = within(STEP, "stream_workspace", client.stream_workspace(handler)).await;
    assert!(matches!(result, Err(Error::ClientClosed)), "{result:?}");
    assert_eq!(
        server.tcp_accepted(),
        0,
        "a closed client does not even dial"
    );

    // Same after a client that did stream.
    let client = Client::new(&server.base_url()).unwrap();
    let (handler, mut events) = recorder();
    let _stream = client.stream_workspace(handler).await.unwrap();
    events.expect_connected().await;
    within(STEP, "close()", client.close()).await;
    let (handler, _events) = recorder();
    let result = within(STEP, "stream_workspace", client.stream_workspace(handler)).await;
    assert!(matches!(result, Err(Error::ClientClosed)), "{result:?}");
    assert_eq!(client.live_tasks(), 0);
    server.wait_open(0).await;
    assert_eq!(server.upgrades().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_closes_both_return_only_after_the_drain() {
    let server = TestServer::start();
    let client = Client::new(&server.base_url()).unwrap();
    let (handler, mut started, finished) = slow_handler(Duration::from_millis(300));
    let _stream = client.stream_workspace(handler).await.unwrap();
    let conn = server.next_conn().await;
    conn.send_text(shell_output("slow"));
    within(STEP, "the slow handler to start", started.recv()).await;

    let closer = |client: Client, finished: Arc<AtomicBool>| async move {
        client.close().await;
        (finished.load(Ordering::SeqCst), client.live_tasks())
    };
    let a = tokio::spawn(closer(client.clone(), finished.clone()));
    let b = tokio::spawn(closer(client.clone(), finished.clone()));
    let (a, b) = within(
        Duration::from_secs(2),
        "two concurrent close() calls",
        async { (a.await.unwrap(), b.await.unwrap()) },
    )
    .await;
    assert_eq!(
        a,
        (true, 0),
        "first close(): (handler finished, live tasks)"
    );
    assert_eq!(
        b,
        (true, 0),
        "second close(): (handler finished, live tasks)"
    );

    // A third, later close() is a no-op that returns at once.
    within(
        Duration::from_millis(200),
        "a third close()",
        client.close(),
    )
    .await;
    assert_eq!(client.live_tasks(), 0);
    server.wait_open(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_from_inside_a_handler_does_not_deadlock() {
    let server = TestServer::start();
    let client = Client::new(&server.base_url()).unwrap();
    let (closed_tx, mut closed_rx) = mpsc::unbounded_channel();
    let (events_tx, mut events_rx) = mpsc::unbounded_channel();
    let inner = client.clone();
    let handler = move |event: Event| {
        let client = inner.clone();
        let closed_tx = closed_tx.clone();
        let close_now = is_output(&event, "close-now");
        let _ = events_tx.send(event);
        async move {
            if close_now {
                client.close().await;
                let _ = closed_tx.send(client.is_closed());
            }
        }
    };
    let stream = client.stream_workspace(handler).await.unwrap();
    let conn = server.next_conn().await;
    conn.send_text(shell_output("close-now"));
    conn.send_text(shell_output("after"));

    let closed = within(
        Duration::from_secs(2),
        "close() called from the handler to return",
        closed_rx.recv(),
    )
    .await;
    assert_eq!(closed, Some(true));
    eventually(STEP, "the reader to exit after its handler", || {
        client.live_tasks() == 0
    })
    .await;
    assert!(stream.is_closed());
    let end = within(STEP, "wait()", stream.wait()).await;
    assert!(matches!(end, StreamEnd::Closed), "{end:?}");

    // The reader delivered nothing after the handler that closed.
    let mut seen = Vec::new();
    while let Ok(event) = events_rx.try_recv() {
        seen.push(event);
    }
    assert_eq!(
        seen.len(),
        2,
        "connected, close-now and nothing else: {seen:?}"
    );
    assert!(is_output(&seen[1], "close-now"));

    let (handler, _events) = recorder();
    let again = client.stream_workspace(handler).await;
    assert!(matches!(again, Err(Error::ClientClosed)), "{again:?}");
    server.wait_open(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_stream_workspace_callers_exactly_one_wins() {
    // Hold both handshakes until both callers are dialing, so both pass the
    // pre-dial check and the post-dial re-check has to pick the winner.
    let server = TestServer::start_with(ServerConfig::default().hold_handshakes());
    let client = Client::new(&server.base_url()).unwrap();
    let (handler_a, mut events_a) = recorder();
    let (handler_b, mut events_b) = recorder();
    let a = tokio::spawn({
        let client = client.clone();
        async move { client.stream_workspace(handler_a).await }
    });
    let b = tokio::spawn({
        let client = client.clone();
        async move { client.stream_workspace(handler_b).await }
    });
    server.wait_tcp_accepted(2).await;
    server.release_handshakes(2);
    let (a, b) = within(STEP, "both stream_workspace calls", async {
        (a.await.unwrap(), b.await.unwrap())
    })
    .await;

    let (winner, winner_events, loser) = match (a, b) {
        (Ok(stream), Err(error)) => (stream, &mut events_a, error),
        (Err(error), Ok(stream)) => (stream, &mut events_b, error),
        (a, b) => panic!("exactly one caller must win: {a:?} / {b:?}"),
    };
    assert!(matches!(loser, Error::AlreadyConnected), "{loser:?}");
    assert_eq!(server.upgrades().len(), 2, "both callers really dialed");

    // The loser's connection is closed; the winner's stays up.
    let first = server.next_conn().await;
    let second = server.next_conn().await;
    server.wait_open(1).await;
    let (winner_conn, loser_conn) = if first.is_closed() {
        (second, first)
    } else {
        (first, second)
    };
    // The loser closed it with a Close frame without reading `connected`.
    loser_conn.wait_closed_by_client().await;
    winner_events.expect_connected().await;
    assert_eq!(client.live_tasks(), 2, "only the winner's tasks run");
    assert_eq!(client.workspace_stream().map(|s| s.id()), Some(winner.id()));

    // The winner really works.
    winner.write_shell_input("winner").await.unwrap();
    let input = winner_conn.next_of_type("shell_input").await;
    assert_eq!(input["data"], "winner");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(server.open_connections(), 1);

    within(STEP, "close()", client.close()).await;
    assert_eq!(client.live_tasks(), 0);
    server.wait_open(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_normal_close_ends_the_stream_and_the_client_can_stream_again() {
    let server = TestServer::start();
    let client = Client::new(&server.base_url()).unwrap();
    let (handler, mut events) = recorder();
    let stream = client.stream_workspace(handler).await.unwrap();
    events.expect_connected().await;
    let conn = server.next_conn().await;

    conn.close();
    within(STEP, "done()", stream.done()).await;
    let end = within(STEP, "wait()", stream.wait()).await;
    match &end {
        StreamEnd::ServerClosed { code, reason } => {
            assert_eq!(*code, Some(1000));
            assert_eq!(reason, "server closing");
        }
        other => panic!("expected ServerClosed, got {other:?}"),
    }
    assert!(end.is_normal());
    assert_eq!(client.live_tasks(), 0);
    assert!(
        client.workspace_stream().is_none(),
        "the reader unpublished it"
    );
    assert!(!client.is_closed());
    assert_eq!(conn.wait_closed().await, ConnEnd::Eof);
    server.wait_open(0).await;
    let write = stream.write_shell_input("too late").await;
    assert!(matches!(write, Err(Error::StreamClosed)), "{write:?}");

    let (handler, mut events) = recorder();
    let again = within(
        STEP,
        "stream_workspace again",
        client.stream_workspace(handler),
    )
    .await
    .expect("a new stream after the server closed the old one");
    events.expect_connected().await;
    let conn = server.next_conn().await;
    again.write_shell_input("again").await.unwrap();
    assert_eq!(conn.next_of_type("shell_input").await["data"], "again");
    assert_ne!(again.id(), stream.id());

    within(STEP, "close()", client.close()).await;
    assert_eq!(client.live_tasks(), 0);
    server.wait_open(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_drop_without_close_frame_is_reported_as_such_and_the_client_can_stream_again() {
    let server = TestServer::start();
    let client = Client::new(&server.base_url()).unwrap();
    let (handler, mut events) = recorder();
    let stream = client.stream_workspace(handler).await.unwrap();
    events.expect_connected().await;
    let conn = server.next_conn().await;

    // The socket is dropped with no Close frame: a clean EOF, the way
    // kandev's Go server ends every stream. It is its own end, not a
    // transport error.
    conn.drop_abruptly();
    assert_eq!(conn.wait_closed().await, ConnEnd::Dropped);
    within(STEP, "done()", stream.done()).await;
    let end = within(STEP, "wait()", stream.wait()).await;
    assert!(matches!(end, StreamEnd::ServerDisconnected), "{end:?}");
    assert!(end.is_normal());
    assert_eq!(client.live_tasks(), 0);
    assert!(client.workspace_stream().is_none());
    server.wait_open(0).await;

    let (handler, mut events) = recorder();
    let _again = within(
        STEP,
        "stream_workspace again",
        client.stream_workspace(handler),
    )
    .await
    .expect("a new stream after the drop");
    events.expect_connected().await;
    server.wait_open(1).await;
    within(STEP, "close()", client.close()).await;
    assert_eq!(client.live_tasks(), 0);
    server.wait_open(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_after_close_fails_and_stream_close_is_idempotent() {
    let server = TestServer::start();
    let client = Client::new(&server.base_url()).unwrap();
    let (handler, mut events) = recorder();
    let stream = client.stream_workspace(handler).await.unwrap();
    events.expect_connected().await;
    let conn = server.next_conn().await;
    stream.write_shell_input("before").await.unwrap();
    assert_eq!(conn.next_of_type("shell_input").await["data"], "before");

    let other_handle = stream.clone();
    stream.close();
    stream.close();
    other_handle.close();
    assert!(stream.is_closed() && other_handle.is_closed());
    within(STEP, "done()", stream.done()).await;

    let write = stream.write_shell_input("after").await;
    assert!(matches!(write, Err(Error::StreamClosed)), "{write:?}");
    let resize = stream.resize_shell(80, 24).await;
    assert!(matches!(resize, Err(Error::StreamClosed)), "{resize:?}");
    let ping = other_handle.ping().await;
    assert!(matches!(ping, Err(Error::StreamClosed)), "{ping:?}");

    let end = within(STEP, "wait()", stream.wait()).await;
    assert!(matches!(end, StreamEnd::Closed), "{end:?}");
    stream.close(); // still fine after the tasks are gone
    assert_eq!(client.live_tasks(), 0);
    conn.wait_closed_by_client().await;
    let inputs: Vec<_> = conn
        .received()
        .into_iter()
        .filter(|m| m["type"] == "shell_input")
        .collect();
    assert_eq!(inputs.len(), 1, "nothing was sent after close: {inputs:?}");
    assert!(
        !client.is_closed(),
        "closing a stream does not close the client"
    );
    within(STEP, "close()", client.close()).await;
    server.wait_open(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_workspace_stream_frees_the_slot_and_close_still_drains() {
    let server = TestServer::start();
    let client = Client::new(&server.base_url()).unwrap();
    let (handler, mut started, finished) = slow_handler(Duration::from_millis(300));
    let first = client.stream_workspace(handler).await.unwrap();
    let conn = server.next_conn().await;
    conn.send_text(shell_output("slow"));
    within(STEP, "the slow handler to start", started.recv()).await;

    let closed = client.close_workspace_stream().expect("a connected stream");
    assert_eq!(closed.id(), first.id());
    assert!(first.is_closed());
    assert!(client.close_workspace_stream().is_none());

    // A new stream right away, while the old reader is still in its handler.
    let (handler, mut events) = recorder();
    let second = within(STEP, "a second stream", client.stream_workspace(handler))
        .await
        .unwrap();
    events.expect_connected().await;
    assert!(
        !finished.load(Ordering::SeqCst),
        "the old handler is still running"
    );

    // close() waits for the retired stream's tasks too.
    within(Duration::from_secs(2), "close()", client.close()).await;
    assert!(finished.load(Ordering::SeqCst));
    assert_eq!(client.live_tasks(), 0);
    assert!(second.is_closed());
    server.wait_open(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_returns_even_when_the_writer_is_blocked_on_a_full_socket() {
    let server = TestServer::start();
    // The Close frame cannot get through a full socket either: bound it.
    let config = ClientConfig::default().with_close_timeout(Duration::from_millis(200));
    let client = Client::with_config(&server.base_url(), config).unwrap();
    let (handler, mut events) = recorder();
    let stream = client.stream_workspace(handler).await.unwrap();
    events.expect_connected().await;
    let conn = server.next_conn().await;
    conn.stop_reading();

    // Fill the socket buffers until the writer is stuck in a send and the
    // input queue is full behind it.
    let chunk = "i".repeat(256 * 1024);
    let filler = tokio::spawn({
        let stream = stream.clone();
        async move {
            let mut queued = 0usize;
            while stream.write_shell_input(chunk.clone()).await.is_ok() {
                queued += 1;
            }
            queued
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !filler.is_finished(),
        "the input queue should be full by now"
    );

    let t0 = Instant::now();
    within(
        Duration::from_secs(2),
        "close() with a writer blocked on a full socket",
        client.close(),
    )
    .await;
    let took = t0.elapsed();
    eprintln!("close() with a writer blocked on a full socket took {took:?}");
    assert!(took < Duration::from_secs(2));
    assert_eq!(client.live_tasks(), 0);
    let queued = within(STEP, "the blocked input call", filler)
        .await
        .unwrap();
    eprintln!("{queued} chunks of 256 KiB queued before the socket filled up");
    conn.drop_abruptly();
    server.wait_open(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outside_close_waits_for_a_handler_that_closed_the_client() {
    // The handler calls close() and keeps working after it returns. A
    // close() from outside must still wait for that reader to exit: the
    // handler is a task of the client like any other.
    let server = TestServer::start();
    let client = Client::new(&server.base_url()).unwrap();
    let finished = Arc::new(AtomicBool::new(false));
    let (inner_closed_tx, mut inner_closed_rx) = mpsc::unbounded_channel();
    let handler = {
        let client = client.clone();
        let finished = finished.clone();
        move |event: Event| {
            let client = client.clone();
            let finished = finished.clone();
            let inner_closed_tx = inner_closed_tx.clone();
            async move {
                if is_output(&event, "close-now") {
                    client.close().await;
                    let _ = inner_closed_tx.send(());
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    finished.store(true, Ordering::SeqCst);
                }
            }
        }
    };
    let stream = client.stream_workspace(handler).await.unwrap();
    let conn = server.next_conn().await;
    conn.send_text(shell_output("close-now"));
    within(
        STEP,
        "the handler's close() to return",
        inner_closed_rx.recv(),
    )
    .await;

    // WorkspaceStream::wait() waits for the reader's real exit too.
    let waiter = tokio::spawn({
        let finished = finished.clone();
        async move {
            let end = stream.wait().await;
            (finished.load(Ordering::SeqCst), end)
        }
    });

    let outside = tokio::spawn({
        let client = client.clone();
        let finished = finished.clone();
        async move {
            client.close().await;
            (finished.load(Ordering::SeqCst), client.live_tasks())
        }
    });
    let (handler_finished, live) = within(Duration::from_secs(2), "the outside close()", outside)
        .await
        .expect("the outside close() panicked");
    assert!(
        handler_finished,
        "the outside close() returned while the handler was still running"
    );
    assert_eq!(live, 0);
    let (handler_finished, end) = within(STEP, "the outside wait()", waiter).await.unwrap();
    assert!(
        handler_finished,
        "WorkspaceStream::wait() returned while the handler was still running"
    );
    assert!(matches!(end, StreamEnd::Closed), "{end:?}");
    server.wait_open(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_closed_by_this_side_always_ends_as_closed() {
    // The server answers our Close frame with its own; a reader that reads
    // that answer before it notices the close signal must still report
    // `Closed` (this side closed it), not `ServerClosed`.
    let server = TestServer::start();
    let client = Client::new(&server.base_url()).unwrap();
    let mut ends = Vec::new();
    for round in 0..100 {
        let (handler, mut events) = recorder();
        let stream = within(STEP, "stream_workspace", client.stream_workspace(handler))
            .await
            .unwrap();
        events.expect_connected().await;
        if round % 2 == 0 {
            stream.close();
        } else {
            client.close_workspace_stream().expect("the current stream");
        }
        let end = within(STEP, "wait()", stream.wait()).await;
        if !matches!(end, StreamEnd::Closed) {
            ends.push((round, end));
        }
    }
    assert!(ends.is_empty(), "locally closed streams reported {ends:?}");
    within(STEP, "close()", client.close()).await;
    server.wait_open(0).await;
}

/// The server's Close code and reason reach `wait()`; a code other than
/// 1000/1001 is not a normal end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_close_code_and_reason_reach_wait() {
    let server = TestServer::start();
    let client = Client::new(&server.base_url()).unwrap();
    for (code, reason, normal) in [
        (1008, "policy: token revoked", false),
        (1011, "", false),
        (1001, "going away", true),
    ] {
        let (handler, mut events) = recorder();
        let stream = client.stream_workspace(handler).await.unwrap();
        events.expect_connected().await;
        let conn = server.next_conn().await;
        conn.close_with(code, reason);
        let end = within(STEP, "wait()", stream.wait()).await;
        match &end {
            StreamEnd::ServerClosed {
                code: got,
                reason: said,
            } => {
                assert_eq!(*got, Some(code));
                assert_eq!(said, reason);
            }
            other => panic!("expected ServerClosed, got {other:?}"),
        }
        assert_eq!(end.is_normal(), normal, "{end:?}");
        conn.wait_closed().await;
    }
    within(STEP, "close()", client.close()).await;
    server.wait_open(0).await;
}

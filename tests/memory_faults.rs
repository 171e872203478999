//! The in-memory transport's injected faults, on real tokio: each one has
//! the outcome `wsdrain::transport::Fault` states. The model checkers
//! explore the same faults as choices (loom-tests, S9-S11 and the
//! generated programs).

use std::time::Duration;

use wsdrain::transport::{Fault, MemoryTransport};
use wsdrain::{Client, ClientConfig, Error, Event, StreamEnd};

const STEP: Duration = Duration::from_secs(10);

async fn within<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    tokio::time::timeout(STEP, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

fn client(transport: &MemoryTransport) -> Client<MemoryTransport> {
    let config = ClientConfig::default().with_input_queue_capacity(1);
    Client::with_transport(transport.clone(), "mem://workspace", config)
}

async fn ignore(_: Event) {}

fn failed_with(end: &StreamEnd, what: impl Fn(&Error) -> bool) -> bool {
    matches!(end, StreamEnd::Failed(error) if what(error))
}

/// The stream is forgotten: its wait resolved, and a new one can be opened.
async fn no_zombie(client: &Client<MemoryTransport>, transport: &MemoryTransport) {
    assert!(client.workspace_stream().is_none(), "a zombie stream");
    let next = within("a new stream", client.stream_workspace(ignore)).await;
    assert!(next.is_ok(), "no new stream: {next:?}");
    within("close()", client.close()).await;
    assert_eq!(client.live_tasks(), 0);
    assert_eq!(transport.open_connections(), 0);
}

#[tokio::test]
async fn dial_error_fails_the_call_and_starts_nothing() {
    let transport = MemoryTransport::new();
    let client = client(&transport);
    transport.inject(Fault::DialError);
    let result = client.stream_workspace(ignore).await;
    assert!(
        matches!(result, Err(Error::ConnectionRefused { .. })),
        "{result:?}"
    );
    assert_eq!(client.live_tasks(), 0);
    no_zombie(&client, &transport).await;
}

#[tokio::test]
async fn a_hanging_dial_times_out_when_the_timeout_fires_and_close_does_not_wait_for_it() {
    let transport = MemoryTransport::new();
    let client = client(&transport);
    transport.inject(Fault::DialHang);
    let dial = tokio::spawn({
        let client = client.clone();
        async move { client.stream_workspace(ignore).await.map(|_| ()) }
    });
    tokio::task::yield_now().await;
    within("close() during a hanging dial", client.close()).await;
    transport.inject(Fault::ConnectTimeout);
    let result = within("the dial's end", dial).await.unwrap();
    assert!(
        matches!(result, Err(Error::HandshakeTimeout(_))),
        "{result:?}"
    );
    assert_eq!(client.live_tasks(), 0);
    assert_eq!(transport.open_connections(), 0);
}

#[tokio::test]
async fn a_send_error_ends_the_stream_failed() {
    let transport = MemoryTransport::new();
    let client = client(&transport);
    let stream = client.stream_workspace(ignore).await.unwrap();
    transport.inject(Fault::SendError);
    // Queued (Ok), then the send fails.
    stream.write_shell_input("ls\n").await.unwrap();
    let end = within("wait()", stream.wait()).await;
    assert!(
        failed_with(&end, |e| matches!(e, Error::Transport(_))),
        "{end:?}"
    );
    assert!(matches!(stream.ping().await, Err(Error::StreamClosed)));
    no_zombie(&client, &transport).await;
}

#[tokio::test]
async fn a_receive_error_ends_the_stream_failed() {
    let transport = MemoryTransport::new().with_connected_message(false);
    let client = client(&transport);
    let stream = client.stream_workspace(ignore).await.unwrap();
    transport.inject(Fault::RecvError);
    let end = within("wait()", stream.wait()).await;
    assert!(
        failed_with(&end, |e| matches!(e, Error::Transport(_))),
        "{end:?}"
    );
    no_zombie(&client, &transport).await;
}

#[tokio::test]
async fn a_peer_that_stops_reading_blocks_sends_but_not_close() {
    let transport = MemoryTransport::new();
    let client = client(&transport);
    let stream = client.stream_workspace(ignore).await.unwrap();
    transport.inject(Fault::StopReading);
    stream.write_shell_input("1").await.unwrap();
    // The writer is stuck in the send; the queue (capacity 1) fills.
    let _ = tokio::time::timeout(Duration::from_millis(50), stream.write_shell_input("2")).await;
    assert!(!stream.is_closed(), "a full window is not an error");
    within("close() with a send blocked", client.close()).await;
    assert_eq!(client.live_tasks(), 0);
    assert!(matches!(
        within("wait()", stream.wait()).await,
        StreamEnd::Closed
    ));
    assert_eq!(transport.open_connections(), 0);
}

#[tokio::test]
async fn a_half_close_ends_the_stream_server_closed() {
    let transport = MemoryTransport::new().with_connected_message(false);
    let client = client(&transport);
    let stream = client.stream_workspace(ignore).await.unwrap();
    transport.inject(Fault::HalfClose);
    let end = within("wait()", stream.wait()).await;
    assert!(matches!(end, StreamEnd::ServerClosed { .. }), "{end:?}");
    no_zombie(&client, &transport).await;
}

#[tokio::test]
async fn an_injected_handler_panic_ends_the_stream_failed() {
    let transport = MemoryTransport::new();
    let client = client(&transport);
    transport.inject(Fault::HandlerPanic);
    let stream = client
        .stream_workspace(transport.faulty_handler(ignore))
        .await
        .unwrap();
    let end = within("wait()", stream.wait()).await;
    assert!(
        failed_with(
            &end,
            |e| matches!(e, Error::HandlerPanicked { message } if message == wsdrain::transport::INJECTED_PANIC)
        ),
        "{end:?}"
    );
    no_zombie(&client, &transport).await;
}

#[tokio::test]
async fn a_cancelled_close_still_lets_a_later_close_drain() {
    let transport = MemoryTransport::new();
    let client = client(&transport);
    let stream = client.stream_workspace(ignore).await.unwrap();
    transport.inject(Fault::Cancel);
    // Cancelled at once (or done): either way the next close() drains.
    let _ = transport.cancellable(client.close()).await;
    within("close() after a cancelled close()", client.close()).await;
    assert_eq!(client.live_tasks(), 0);
    within("wait()", stream.wait()).await;
    assert_eq!(transport.open_connections(), 0);
}

#[tokio::test]
async fn a_cancelled_stream_workspace_leaves_nothing_behind() {
    let transport = MemoryTransport::new();
    let client = client(&transport);
    transport.inject(Fault::DialHang);
    transport.inject(Fault::Cancel);
    let result = transport.cancellable(client.stream_workspace(ignore)).await;
    assert!(result.is_none(), "the hanging dial was not cancelled");
    assert_eq!(client.live_tasks(), 0);
    assert_eq!(transport.open_connections(), 0);
    no_zombie(&client, &transport).await;
}

//! Handlers that misbehave, over real sockets: a handler that panics, a
//! retired stream's handler and a current stream's handler that both call
//! `Client::close()`, and `StreamManager::wait()` called from a managed
//! stream's handler. None may leave a zombie stream or deadlock.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{STEP, TestServer, eventually, within};
use tokio::sync::{mpsc, oneshot};
use wsdrain::{Client, Error, Event, ManagerConfig, StreamEnd, StreamManager};

/// A handler that panics on the first event (the server's `connected`).
fn panicking() -> impl FnMut(Event) -> std::future::Ready<()> + Send + 'static {
    |_event: Event| panic!("handler bug: cannot handle this event")
}

fn assert_panicked(end: &StreamEnd) {
    match end {
        StreamEnd::Failed(error) => assert!(
            matches!(&**error, Error::HandlerPanicked { message } if message.contains("handler bug")),
            "wrong error: {error}"
        ),
        other => panic!("a panicking handler must end the stream Failed, not {other:?}"),
    }
}

/// A panicking handler ends its stream `Failed(HandlerPanicked)`: the client
/// forgets the stream, `done()`/`wait()` resolve, input fails, the
/// connection is closed, a new stream can be opened, and `close()` drains.
/// Before the fix the stream stayed published with its writer parked:
/// `wait()` never resolved and the next `stream_workspace` failed
/// `AlreadyConnected`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_ends_its_stream_and_leaves_no_zombie() {
    let server = TestServer::start();
    let client = Client::new(&server.base_url()).unwrap();
    let stream = client.stream_workspace(panicking()).await.unwrap();
    let _conn = server.next_conn().await;

    let end = within(STEP, "wait() after the handler panicked", stream.wait()).await;
    assert_panicked(&end);
    within(STEP, "done() after the handler panicked", stream.done()).await;
    assert!(stream.is_closed());
    assert!(
        matches!(
            stream.write_shell_input("ls\n").await,
            Err(Error::StreamClosed)
        ),
        "input to a stream whose handler panicked must fail"
    );
    assert!(
        client.workspace_stream().is_none(),
        "the client still holds the dead stream"
    );
    server.wait_open(0).await;

    // The client is usable again.
    let (handler, mut events) = support::recorder();
    let second = within(STEP, "a new stream", client.stream_workspace(handler))
        .await
        .expect("a new stream after the handler panicked");
    events.expect_connected().await;
    assert_ne!(second.id(), stream.id());
    within(STEP, "close()", client.close()).await;
    assert_eq!(client.live_tasks(), 0);
    server.wait_open(0).await;
}

/// The manager reconnects after its stream's handler panicked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manager_reconnects_after_a_handler_panic() {
    let server = TestServer::start();
    let client = Client::new(&server.base_url()).unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut generation = 0u32;
    let make = move || {
        generation += 1;
        let number = generation;
        let tx = tx.clone();
        move |_event: Event| {
            let _ = tx.send(number);
            assert!(number > 1, "handler bug: the first stream's handler panics");
            std::future::ready(())
        }
    };
    let config =
        ManagerConfig::default().with_backoff(Duration::from_millis(10), Duration::from_millis(50));
    let manager = StreamManager::start(client.clone(), make, config);
    assert_eq!(within(STEP, "first event", rx.recv()).await, Some(1));
    assert_eq!(
        within(STEP, "an event of the reconnected stream", rx.recv()).await,
        Some(2),
        "the manager did not reconnect after the handler panicked"
    );
    eventually(STEP, "two connects", || manager.connects() == 2).await;
    manager.stop();
    within(STEP, "manager wait()", manager.wait()).await;
    assert_eq!(client.live_tasks(), 0);
    assert!(manager.gave_up().is_none());
    server.wait_open(0).await;
}

/// One call of a handler built by [`closes_when_released`] (boxed: a
/// closure's returned future cannot be named in a return type).
type HandlerCall = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// A handler that, on its first event, says it is running (the returned
/// receiver), parks until released (the returned sender), then calls
/// `Client::close()` and reports `name` on `closed` once that returned.
fn closes_when_released(
    client: &Client,
    closed: &mpsc::UnboundedSender<&'static str>,
    name: &'static str,
) -> (
    impl FnMut(Event) -> HandlerCall + Send + 'static,
    oneshot::Receiver<()>,
    oneshot::Sender<()>,
) {
    let (entered_tx, entered_rx) = oneshot::channel::<()>();
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let parked = Arc::new(Mutex::new(Some((entered_tx, release_rx))));
    let client = client.clone();
    let closed = closed.clone();
    let handler = move |_event: Event| {
        let client = client.clone();
        let closed = closed.clone();
        let parked = parked.lock().unwrap().take();
        Box::pin(async move {
            if let Some((entered, release)) = parked {
                let _ = entered.send(());
                let _ = release.await;
                client.close().await;
                let _ = closed.send(name);
            }
        }) as HandlerCall
    };
    (handler, entered_rx, release_tx)
}

/// A retired stream's handler (its stream taken out by
/// `close_workspace_stream`) and the current stream's handler both call
/// `Client::close()`, while `close()` also runs from outside: every call
/// returns, and the outside one returns after the full drain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_of_a_retired_and_a_current_stream_close_at_once() {
    let server = TestServer::start();
    let client = Client::new(&server.base_url()).unwrap();
    let (closed_tx, mut closed_rx) = mpsc::unbounded_channel::<&'static str>();

    // Each handler parks inside its first call until released, so that both
    // are inside their calls before either closes (otherwise A's close could
    // end B before B's handler ever ran).
    let (handler_a, a_entered, release_a) = closes_when_released(&client, &closed_tx, "retired");
    let _a = client.stream_workspace(handler_a).await.unwrap();
    within(STEP, "stream A's handler is running", a_entered)
        .await
        .unwrap();
    let retired = client.close_workspace_stream().expect("stream A retired");

    let (handler_b, b_entered, release_b) = closes_when_released(&client, &closed_tx, "current");
    let _b = within(STEP, "stream B", client.stream_workspace(handler_b))
        .await
        .unwrap();
    within(STEP, "stream B's handler is running", b_entered)
        .await
        .unwrap();
    release_a.send(()).unwrap();
    release_b.send(()).unwrap();
    let mut returned = vec![
        within(STEP, "a handler's close() returns", closed_rx.recv())
            .await
            .unwrap(),
        within(
            STEP,
            "the other handler's close() returns",
            closed_rx.recv(),
        )
        .await
        .unwrap(),
    ];
    returned.sort_unstable();
    assert_eq!(returned, ["current", "retired"]);
    within(STEP, "close() from outside", client.close()).await;
    assert_eq!(
        client.live_tasks(),
        0,
        "close() from outside returned before the drain"
    );
    within(STEP, "the retired stream's wait()", retired.wait()).await;
    server.wait_open(0).await;
}

/// `StreamManager::wait()` from a managed stream's handler returns (it
/// stops the manager) instead of waiting for its own task; a `wait()` from
/// outside then drains. Before the fix the handler's call never returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manager_wait_from_a_handler_does_not_deadlock() {
    let server = TestServer::start();
    let client = Client::new(&server.base_url()).unwrap();
    let slot: Arc<Mutex<Option<StreamManager>>> = Arc::default();
    let (returned_tx, mut returned_rx) = mpsc::unbounded_channel::<()>();
    let make = {
        let slot = slot.clone();
        move || {
            let slot = slot.clone();
            let returned_tx = returned_tx.clone();
            move |_event: Event| {
                let manager = slot.lock().unwrap().clone();
                let returned_tx = returned_tx.clone();
                async move {
                    if let Some(manager) = manager {
                        manager.wait().await;
                        let _ = returned_tx.send(());
                    }
                }
            }
        }
    };
    // `connected` may reach the handler before the slot is filled; the
    // `shell_output` sent below is the trigger.
    let manager = StreamManager::start(client.clone(), make, ManagerConfig::default());
    *slot.lock().unwrap() = Some(manager.clone());
    let conn = server.next_conn().await;
    conn.send_text(support::shell_output("go"));
    within(
        STEP,
        "StreamManager::wait() called from the handler returns",
        returned_rx.recv(),
    )
    .await
    .unwrap();
    within(STEP, "StreamManager::wait() from outside", manager.wait()).await;
    assert_eq!(manager.live_tasks(), 0);
    assert_eq!(client.live_tasks(), 0);
    drop(slot.lock().unwrap().take());
    server.wait_open(0).await;
}

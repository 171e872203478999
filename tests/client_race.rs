//! `Client::close()` racing `stream_workspace()` against a real server: the
//! seed bug's shape (kandev PR #1272), repeated. Whatever the interleaving,
//! close() must not hang, must leave no task behind, and must leave no
//! connection open on the server.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{STEP, ServerConfig, TestServer, within};
use tokio::sync::mpsc;
use wsdrain::{Client, Error, Event, StreamEnd, WorkspaceStream};

const ITERATIONS: usize = 200;

#[derive(Debug, Default)]
struct Outcomes {
    /// The dial finished first: close() found the stream and drained it.
    connected_then_drained: usize,
    /// close() ran during the dial: the new connection was dropped.
    closed_during_dial: usize,
}

impl Outcomes {
    fn record(
        &mut self,
        iteration: usize,
        result: wsdrain::Result<WorkspaceStream>,
    ) -> Option<WorkspaceStream> {
        match result {
            Ok(stream) => {
                assert!(
                    stream.is_closed(),
                    "iteration {iteration}: close() returned, the stream must be closed"
                );
                self.connected_then_drained += 1;
                Some(stream)
            }
            Err(Error::ClosedDuringDial) => {
                self.closed_during_dial += 1;
                None
            }
            Err(other) => panic!("iteration {iteration}: unexpected {other:?}"),
        }
    }
}

async fn nothing(_: Event) {}

/// After one iteration: the stream (if any) has ended, no task is alive, a
/// closed client stays closed, and the server has no open connection left.
async fn check_drained(
    server: &TestServer,
    client: &Client,
    stream: Option<WorkspaceStream>,
    iteration: usize,
) {
    assert_eq!(
        client.live_tasks(),
        0,
        "iteration {iteration}: a task outlived close()"
    );
    if let Some(stream) = stream {
        // Its tasks are gone already: wait() resolves at once.
        let end = within(
            Duration::from_millis(100),
            "wait() after close",
            stream.wait(),
        )
        .await;
        assert!(matches!(end, StreamEnd::Closed), "{end:?}");
    }
    assert!(client.workspace_stream().is_none());
    let again = client.stream_workspace(nothing).await;
    assert!(matches!(again, Err(Error::ClientClosed)), "{again:?}");
    server.wait_open(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_racing_stream_workspace_after_upgrade_200_times() {
    let server = TestServer::start();
    let mut outcomes = Outcomes::default();
    let started = Instant::now();
    for iteration in 0..ITERATIONS {
        let client = Client::new(&server.base_url()).unwrap();
        let dial = tokio::spawn({
            let client = client.clone();
            async move { client.stream_workspace(nothing).await }
        });
        // The server has read the upgrade request: the dial is in flight.
        let upgrade = server.next_upgrade().await;
        assert!(upgrade.accepted);
        within(
            Duration::from_secs(2),
            "close() racing the dial",
            client.close(),
        )
        .await;
        assert_eq!(
            client.live_tasks(),
            0,
            "iteration {iteration}: close() returned with tasks alive"
        );
        let result = within(STEP, "the racing stream_workspace", dial)
            .await
            .expect("stream_workspace panicked");
        let stream = outcomes.record(iteration, result);
        check_drained(&server, &client, stream, iteration).await;
    }
    let elapsed = started.elapsed();
    eprintln!(
        "close() racing stream_workspace (notified after upgrade): {ITERATIONS} iterations in \
         {elapsed:?} ({:?}/iteration); outcomes: {outcomes:?}",
        elapsed / ITERATIONS as u32
    );
    assert_eq!(
        outcomes.connected_then_drained + outcomes.closed_during_dial,
        ITERATIONS
    );
    assert_eq!(server.upgrades().len(), ITERATIONS);
}

/// The same race, with close() fired by the server itself the moment it
/// reads the upgrade request, before it answers: close() then nearly always
/// lands inside the dial, the schedule of the seed bug.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_fired_from_the_servers_upgrade_hook_200_times() {
    type Slot = Arc<Mutex<Option<Client>>>;
    let slot: Slot = Arc::default();
    let (closed_tx, mut closed_rx) = mpsc::unbounded_channel::<usize>();
    let runtime = tokio::runtime::Handle::current();
    let hook_slot = slot.clone();
    let server = TestServer::start_with(ServerConfig::default().on_upgrade(move |_| {
        if let Some(client) = hook_slot.lock().unwrap().take() {
            let closed_tx = closed_tx.clone();
            // Runs on the test runtime, concurrently with the dial.
            runtime.spawn(async move {
                client.close().await;
                let _ = closed_tx.send(client.live_tasks());
            });
        }
    }));

    let mut outcomes = Outcomes::default();
    let started = Instant::now();
    for iteration in 0..ITERATIONS {
        let client = Client::new(&server.base_url()).unwrap();
        *slot.lock().unwrap() = Some(client.clone());
        let result = within(STEP, "stream_workspace", client.stream_workspace(nothing)).await;
        let live_at_close = within(STEP, "close() fired by the hook", closed_rx.recv())
            .await
            .unwrap();
        assert_eq!(
            live_at_close, 0,
            "iteration {iteration}: close() returned with tasks alive"
        );
        let stream = outcomes.record(iteration, result);
        check_drained(&server, &client, stream, iteration).await;
    }
    let elapsed = started.elapsed();
    eprintln!(
        "close() fired from the upgrade hook: {ITERATIONS} iterations in {elapsed:?}; \
         outcomes: {outcomes:?}"
    );
    assert_eq!(
        outcomes.connected_then_drained + outcomes.closed_during_dial,
        ITERATIONS
    );
}

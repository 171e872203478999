//! `StreamManager` against a real server: reconnecting after the server
//! drops or closes the stream, giving up, and draining on stop/wait.

mod support;

use std::time::{Duration, Instant};

use support::{STEP, ServerConfig, TestServer, eventually, refused_base_url, within};
use tokio::sync::mpsc;
use wsdrain::protocol::Message;
use wsdrain::{Client, ClientConfig, Error, Event, ManagerConfig, StreamManager};

fn fast() -> ManagerConfig {
    ManagerConfig::default().with_backoff(Duration::from_millis(10), Duration::from_millis(50))
}

/// The handler of one managed stream.
type BoxedHandler = Box<dyn FnMut(Event) -> std::future::Ready<()> + Send>;

/// A handler factory whose handlers report `(generation, event)`.
fn numbered_handlers() -> (
    impl FnMut() -> BoxedHandler + Send + 'static,
    mpsc::UnboundedReceiver<(usize, Event)>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut generation = 0;
    let make = move || {
        generation += 1;
        let tx = tx.clone();
        let number = generation;
        Box::new(move |event: Event| {
            let _ = tx.send((number, event));
            std::future::ready(())
        }) as BoxedHandler
    };
    (make, rx)
}

/// A manager on a client of a server set up to refuse it, once it has given
/// up (`gave_up()` is set) and its `wait()` has returned.
async fn until_it_gives_up(
    server: ServerConfig,
    client: ClientConfig,
    manager: ManagerConfig,
) -> (TestServer, Client, StreamManager) {
    let server = TestServer::start_with(server);
    let client = Client::with_config(&server.base_url(), client).unwrap();
    let (make, _events) = numbered_handlers();
    let manager = StreamManager::start(client.clone(), make, manager);
    eventually(STEP, "the manager to give up", || {
        manager.gave_up().is_some()
    })
    .await;
    within(STEP, "manager wait()", manager.wait()).await;
    (server, client, manager)
}

async fn next_event(rx: &mut mpsc::UnboundedReceiver<(usize, Event)>) -> (usize, Message) {
    match within(STEP, "the next managed event", rx.recv()).await {
        Some((generation, Event::Message(envelope))) => (generation, envelope.message),
        other => panic!("unexpected {other:?}"),
    }
}

/// stop() + wait() drains the manager, and the client keeps working.
async fn stop_and_drain(manager: &StreamManager, client: &Client, server: &TestServer) {
    manager.stop();
    within(STEP, "manager wait()", manager.wait()).await;
    assert_eq!(manager.live_tasks(), 0, "manager tasks outlived wait()");
    assert_eq!(client.live_tasks(), 0, "stream tasks outlived wait()");
    assert!(manager.gave_up().is_none());
    assert!(!client.is_closed(), "the manager leaves the client open");
    server.wait_open(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_an_abrupt_disconnect() {
    let server = TestServer::start();
    let client = Client::new(&server.base_url()).unwrap();
    let (make, mut events) = numbered_handlers();
    let manager = StreamManager::start(client.clone(), make, fast());

    let first = server.next_conn().await;
    assert_eq!(next_event(&mut events).await, (1, Message::Connected));
    first.drop_abruptly();

    let second = server.next_conn().await;
    assert_eq!(next_event(&mut events).await, (2, Message::Connected));
    // Counted once stream_workspace has returned to the supervisor, which
    // may be a moment after the reader delivered `connected`.
    eventually(STEP, "two connects", || manager.connects() == 2).await;
    server.wait_open(1).await;

    // The new stream is live both ways.
    second.send_text(support::shell_output("hello again"));
    assert_eq!(
        next_event(&mut events).await,
        (
            2,
            Message::ShellOutput {
                data: "hello again".into()
            }
        )
    );
    let stream = client.workspace_stream().expect("the managed stream");
    stream.write_shell_input("typed").await.unwrap();
    assert_eq!(second.next_of_type("shell_input").await["data"], "typed");

    stop_and_drain(&manager, &client, &server).await;
    second.wait_closed_by_client().await;

    // The client is still usable after the manager is gone.
    let (handler, mut direct) = support::recorder();
    let _stream = client.stream_workspace(handler).await.unwrap();
    direct.expect_connected().await;
    within(STEP, "close()", client.close()).await;
    assert_eq!(client.live_tasks(), 0);
    server.wait_open(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_a_normal_server_close_several_times() {
    let server = TestServer::start();
    let client = Client::new(&server.base_url()).unwrap();
    let (make, mut events) = numbered_handlers();
    let manager = StreamManager::start(client.clone(), make, fast());

    for generation in 1..=5 {
        let conn = server.next_conn().await;
        assert_eq!(
            next_event(&mut events).await,
            (generation, Message::Connected)
        );
        if generation < 5 {
            conn.close();
            assert_eq!(conn.wait_closed().await, support::ConnEnd::Eof);
        }
    }
    eventually(STEP, "five connects", || manager.connects() == 5).await;
    assert_eq!(server.upgrades().len(), 5);
    stop_and_drain(&manager, &client, &server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_alone_stops_and_drains() {
    let server = TestServer::start();
    let client = Client::new(&server.base_url()).unwrap();
    let (make, mut events) = numbered_handlers();
    let manager = StreamManager::start(client.clone(), make, fast());
    let conn = server.next_conn().await;
    assert_eq!(next_event(&mut events).await, (1, Message::Connected));

    within(STEP, "manager wait()", manager.wait()).await;
    assert_eq!(manager.live_tasks(), 0);
    assert_eq!(client.live_tasks(), 0);
    conn.wait_closed_by_client().await;
    server.wait_open(0).await;
    // Nothing reconnects afterwards.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server.upgrades().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_interrupts_a_long_backoff() {
    let client = Client::new(&refused_base_url()).unwrap();
    let config =
        ManagerConfig::default().with_backoff(Duration::from_secs(60), Duration::from_secs(60));
    let (make, _events) = numbered_handlers();
    let manager = StreamManager::start(client.clone(), make, config);
    // Let the first dial fail and the manager settle into its backoff.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(manager.connects(), 0);
    let t0 = Instant::now();
    manager.stop();
    within(Duration::from_secs(1), "manager wait()", manager.wait()).await;
    assert!(t0.elapsed() < Duration::from_secs(1));
    assert_eq!(manager.live_tasks(), 0);
    assert_eq!(client.live_tasks(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gives_up_after_max_consecutive_failures() {
    let client = Client::new(&refused_base_url()).unwrap();
    let (make, _events) = numbered_handlers();
    let manager = StreamManager::start(
        client.clone(),
        make,
        fast().with_max_consecutive_failures(3),
    );
    eventually(STEP, "the manager to give up", || {
        manager.gave_up().is_some()
    })
    .await;
    match manager.gave_up() {
        Some(Error::RetriesExhausted { attempts, last }) => {
            assert_eq!(*attempts, 3);
            assert!(
                matches!(**last, Error::ConnectionRefused { .. }),
                "{last:?}"
            );
        }
        other => panic!("expected RetriesExhausted, got {other:?}"),
    }
    within(STEP, "manager wait()", manager.wait()).await;
    assert_eq!(manager.live_tasks(), 0);
    assert_eq!(client.live_tasks(), 0);
}

/// A server that refuses the token (a real 401 on 127.0.0.1): retrying
/// with the same token cannot succeed, so the manager gives up at once with
/// `Unauthorized`, after one attempt, with no retry limit configured. (It
/// used to retry a 401 for ever.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_stops_the_manager_at_once() {
    let (server, client, manager) = until_it_gives_up(
        ServerConfig::default().with_token("right"),
        ClientConfig::default().with_token("wrong"),
        fast(),
    )
    .await;
    assert!(
        matches!(manager.gave_up(), Some(Error::Unauthorized)),
        "{:?}",
        manager.gave_up()
    );
    assert_eq!(server.upgrades().len(), 1, "no retry of a 401");
    assert_eq!(server.open_connections(), 0);
    assert_eq!(manager.live_tasks(), 0);
    assert!(!client.is_closed(), "the manager leaves the client open");
}

/// A 404 (the path, or a Go server's answer to another instance id) is
/// permanent too: the manager reports it instead of retrying.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_404_for_another_instance_id_stops_the_manager() {
    let (server, _client, manager) = until_it_gives_up(
        ServerConfig::default().with_instance_id("exec-1"),
        ClientConfig::default().with_instance_id("exec-2"),
        fast(),
    )
    .await;
    assert!(
        matches!(
            manager.gave_up(),
            Some(Error::UpgradeRejected { status: 404 })
        ),
        "{:?}",
        manager.gave_up()
    );
    assert_eq!(server.upgrades().len(), 1);
}

/// A 503 (a server at its connection cap) can succeed later: the manager
/// keeps retrying, up to its limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_is_retried() {
    let (server, _client, manager) = until_it_gives_up(
        ServerConfig::default().refuse_with(503),
        ClientConfig::default(),
        fast().with_max_consecutive_failures(3),
    )
    .await;
    match manager.gave_up() {
        Some(Error::RetriesExhausted { attempts: 3, last }) => {
            assert!(
                matches!(**last, Error::UpgradeRejected { status: 503 }),
                "{last:?}"
            )
        }
        other => panic!("expected RetriesExhausted after 3, got {other:?}"),
    }
    assert_eq!(server.upgrades().len(), 3);
}

/// Someone else holds the client's one stream: the manager cannot own it,
/// and retrying would only poll until that stream ends and then race its
/// owner. It gives up with `AlreadyConnected` and leaves that stream alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_whose_stream_is_taken_stops_the_manager() {
    let server = TestServer::start();
    let client = Client::new(&server.base_url()).unwrap();
    let (handler, _events) = support::recorder();
    let theirs = client.stream_workspace(handler).await.unwrap();
    let (make, _managed) = numbered_handlers();
    let manager = StreamManager::start(client.clone(), make, fast());
    eventually(STEP, "the manager to give up", || {
        manager.gave_up().is_some()
    })
    .await;
    assert!(
        matches!(manager.gave_up(), Some(Error::AlreadyConnected)),
        "{:?}",
        manager.gave_up()
    );
    within(STEP, "manager wait()", manager.wait()).await;
    assert_eq!(manager.connects(), 0);
    assert!(!theirs.is_closed(), "the other stream is left alone");
    within(STEP, "close()", client.close()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_client_under_the_manager_ends_it() {
    let server = TestServer::start();
    let client = Client::new(&server.base_url()).unwrap();
    let (make, mut events) = numbered_handlers();
    let manager = StreamManager::start(client.clone(), make, fast());
    let conn = server.next_conn().await;
    assert_eq!(next_event(&mut events).await, (1, Message::Connected));

    within(STEP, "client close()", client.close()).await;
    assert_eq!(client.live_tasks(), 0);
    conn.wait_closed_by_client().await;
    eventually(STEP, "the manager to notice", || {
        manager.gave_up().is_some()
    })
    .await;
    assert!(matches!(manager.gave_up(), Some(Error::ClientClosed)));
    within(STEP, "manager wait()", manager.wait()).await;
    assert_eq!(manager.live_tasks(), 0);
    assert_eq!(manager.connects(), 1);
    server.wait_open(0).await;
}

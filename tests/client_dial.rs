//! Dialing a real server: the bearer token on the upgrade request, and how
//! each way a dial can fail is reported.

mod support;

use std::time::{Duration, Instant};

use support::{STEP, ServerConfig, SilentListener, TestServer, recorder, refused_base_url, within};
use wsdrain::{Client, ClientConfig, Error};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_token_is_sent_on_the_upgrade_request() {
    let server = TestServer::start();
    let config = ClientConfig::default().with_token("s3cret-t0ken");
    let client = Client::with_config(&server.base_url(), config).unwrap();
    let (handler, mut events) = recorder();
    let _stream = client.stream_workspace(handler).await.unwrap();
    events.expect_connected().await;
    let conn = server.next_conn().await;
    assert_eq!(conn.authorization(), Some("Bearer s3cret-t0ken"));
    let upgrade = server.next_upgrade().await;
    assert_eq!(upgrade.path, wsdrain::STREAM_PATH);
    assert_eq!(
        upgrade.authorization.as_deref(),
        Some("Bearer s3cret-t0ken")
    );
    within(STEP, "close()", client.close()).await;

    // Without a token, no Authorization header at all.
    let client = Client::new(&server.base_url()).unwrap();
    let (handler, mut events) = recorder();
    let _stream = client.stream_workspace(handler).await.unwrap();
    events.expect_connected().await;
    assert_eq!(server.next_conn().await.authorization(), None);
    within(STEP, "close()", client.close()).await;
    server.wait_open(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_is_surfaced_as_unauthorized() {
    let server = TestServer::start_with(ServerConfig::default().with_token("right"));
    for token in [None, Some("wrong"), Some("Right")] {
        let mut config = ClientConfig::default();
        if let Some(token) = token {
            config = config.with_token(token);
        }
        let client = Client::with_config(&server.base_url(), config).unwrap();
        let (handler, _events) = recorder();
        let result = within(STEP, "stream_workspace", client.stream_workspace(handler)).await;
        assert!(
            matches!(result, Err(Error::Unauthorized)),
            "token {token:?}: {result:?}"
        );
        assert!(!result.unwrap_err().is_transient());
        assert_eq!(client.live_tasks(), 0);
        assert_eq!(client.spawned_tasks(), 0);
        assert!(client.workspace_stream().is_none());
        let upgrade = server.next_upgrade().await;
        assert!(!upgrade.accepted);
        assert_eq!(upgrade.authorization, token.map(|t| format!("Bearer {t}")));
    }
    assert_eq!(server.open_connections(), 0, "no upgrade without the token");

    // The right token gets through.
    let config = ClientConfig::default().with_token("right");
    let client = Client::with_config(&server.base_url(), config).unwrap();
    let (handler, mut events) = recorder();
    let _stream = client.stream_workspace(handler).await.unwrap();
    events.expect_connected().await;
    assert!(server.next_upgrade().await.accepted);
    server.wait_open(1).await;
    within(STEP, "close()", client.close()).await;
    server.wait_open(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_is_surfaced_as_connection_refused() {
    let url = refused_base_url();
    let client = Client::new(&url).unwrap();
    let (handler, _events) = recorder();
    let result = within(STEP, "stream_workspace", client.stream_workspace(handler)).await;
    match result {
        Err(error @ Error::ConnectionRefused { .. }) => {
            assert!(error.is_transient());
            let Error::ConnectionRefused { addr } = &error else {
                unreachable!()
            };
            assert!(addr.contains(url.trim_start_matches("http://")), "{addr}");
        }
        other => panic!("expected ConnectionRefused, got {other:?}"),
    }
    assert_eq!(client.live_tasks(), 0);
    assert_eq!(client.spawned_tasks(), 0);
    within(Duration::from_secs(1), "close()", client.close()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_the_upgrade_is_a_handshake_timeout() {
    let silent = SilentListener::start().await;
    let timeout = Duration::from_millis(200);
    let config = ClientConfig::default().with_connect_timeout(timeout);
    let client = Client::with_config(&silent.base_url(), config).unwrap();
    let (handler, _events) = recorder();
    let t0 = Instant::now();
    let result = within(STEP, "stream_workspace", client.stream_workspace(handler)).await;
    let took = t0.elapsed();
    match result {
        Err(Error::HandshakeTimeout(after)) => assert_eq!(after, timeout),
        other => panic!("expected HandshakeTimeout, got {other:?}"),
    }
    assert!(
        took >= timeout && took < Duration::from_secs(2),
        "took {took:?}"
    );
    assert_eq!(
        silent.accepted(),
        1,
        "the TCP connection itself was accepted"
    );
    assert_eq!(client.live_tasks(), 0);
    assert!(client.workspace_stream().is_none());
    within(Duration::from_secs(1), "close()", client.close()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_does_not_wait_for_a_dial_stuck_in_the_handshake() {
    // close() never waits for a dial in flight; this one then times out
    // and starts nothing.
    let silent = SilentListener::start().await;
    let config = ClientConfig::default().with_connect_timeout(Duration::from_millis(500));
    let client = Client::with_config(&silent.base_url(), config).unwrap();
    let dial = tokio::spawn({
        let client = client.clone();
        async move {
            let (handler, _events) = recorder();
            client.stream_workspace(handler).await
        }
    });
    support::eventually(STEP, "the dial to reach the listener", || {
        silent.accepted() == 1
    })
    .await;
    let t0 = Instant::now();
    within(Duration::from_millis(200), "close()", client.close()).await;
    assert!(t0.elapsed() < Duration::from_millis(200));
    let result = within(STEP, "the stuck dial", dial).await.unwrap();
    assert!(
        matches!(result, Err(Error::HandshakeTimeout(_))),
        "{result:?}"
    );
    assert_eq!(client.live_tasks(), 0);
    assert_eq!(client.spawned_tasks(), 0);
}

#[tokio::test]
async fn a_token_that_cannot_be_a_header_is_an_invalid_token_error() {
    // Nothing listens there: the token is refused before any dial.
    let config = ClientConfig::default().with_token("s3cret\n");
    let client = Client::with_config(&refused_base_url(), config).unwrap();
    let error = client
        .stream_workspace(|_: wsdrain::Event| async {})
        .await
        .unwrap_err();
    assert!(matches!(error, Error::InvalidToken), "{error:?}");
    assert_eq!(client.live_tasks(), 0);
}

/// `with_instance_id` sends `X-Instance-ID` on the upgrade, as kandev's Go
/// client sends its execution id; an empty id sends nothing, like Go's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_instance_id_is_sent_on_the_upgrade_request() {
    let server = TestServer::start_with(ServerConfig::default().with_instance_id("exec-7"));
    for (id, sent) in [
        (Some("exec-7"), Some("exec-7")),
        (Some(""), None),
        (None, None),
    ] {
        let mut config = ClientConfig::default();
        if let Some(id) = id {
            config = config.with_instance_id(id);
        }
        let client = Client::with_config(&server.base_url(), config).unwrap();
        let (handler, mut events) = recorder();
        let _stream = client.stream_workspace(handler).await.unwrap();
        events.expect_connected().await;
        let upgrade = server.next_upgrade().await;
        assert_eq!(upgrade.instance_id.as_deref(), sent, "{id:?}");
        within(STEP, "close()", client.close()).await;
    }

    // A Go server running another instance answers 404: not transient.
    let config = ClientConfig::default().with_instance_id("exec-8");
    let client = Client::with_config(&server.base_url(), config).unwrap();
    let (handler, _events) = recorder();
    let result = within(STEP, "stream_workspace", client.stream_workspace(handler)).await;
    match result {
        Err(error @ Error::UpgradeRejected { status: 404 }) => assert!(!error.is_transient()),
        other => panic!("expected a 404, got {other:?}"),
    }
    assert_eq!(client.spawned_tasks(), 0);

    // An id that cannot be a header value is a configuration error.
    let config = ClientConfig::default().with_instance_id("exec\n9");
    let client = Client::with_config(&server.base_url(), config).unwrap();
    let (handler, _events) = recorder();
    let result = within(STEP, "stream_workspace", client.stream_workspace(handler)).await;
    assert!(
        matches!(result, Err(Error::InvalidInstanceId)),
        "{result:?}"
    );
    server.wait_open(0).await;
}

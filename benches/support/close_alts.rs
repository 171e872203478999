//! The close bench's alternatives, shared with `examples/close_one.rs`
//! (one alternative alone, for profiling).

use std::hint::black_box;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_util::sync::CancellationToken;
use wsdrain::protocol::Envelope;
use wsdrain::{Client, Event};

pub const SETTLE_MESSAGES: usize = 1000;

#[derive(Clone, Copy, PartialEq)]
pub enum Load {
    Idle,
    Receiving,
}

/// Open a client stream, settle, and time `Client::close()`.
pub async fn wsdrain_close(url: String, load: Load) -> Duration {
    let client = Client::new(&url).unwrap();
    let (tx, settled) = oneshot::channel();
    let mut tx = Some(tx);
    let mut received = 0usize;
    let _stream = client
        .stream_workspace(move |event: Event| {
            if let Event::Message(envelope) = event {
                black_box(envelope);
                received += 1;
                if received == SETTLE_MESSAGES
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(());
                }
            }
            std::future::ready(())
        })
        .await
        .unwrap();
    match load {
        Load::Idle => tokio::time::sleep(Duration::from_millis(1)).await,
        Load::Receiving => settled.await.unwrap(),
    }
    let start = Instant::now();
    client.close().await;
    let elapsed = start.elapsed();
    assert_eq!(client.live_tasks(), 0, "close() returned before the drain");
    elapsed
}

/// The plain equivalent: reader task + token; close = cancel, Close frame,
/// join the reader; with `release`, dropping the sink (the last handle of
/// the socket, so its fd is closed) is timed too, as the drain barrier's
/// tasks release the connection before `close()` returns.
pub async fn plain_close(ws_url: String, load: Load, release: bool) -> Duration {
    let (socket, _) = tokio_tungstenite::connect_async_with_config(ws_url, None, true)
        .await
        .unwrap();
    let (mut sink, mut stream) = socket.split();
    let token = CancellationToken::new();
    let (tx, settled) = oneshot::channel();
    let reader = tokio::spawn({
        let token = token.clone();
        async move {
            let mut tx = Some(tx);
            let mut received = 0usize;
            loop {
                tokio::select! {
                    () = token.cancelled() => break,
                    frame = stream.next() => match frame {
                        Some(Ok(WsMessage::Text(text))) => {
                            black_box(Envelope::decode(text.as_str()).unwrap());
                            received += 1;
                            if received == SETTLE_MESSAGES && let Some(tx) = tx.take() {
                                let _ = tx.send(());
                            }
                        }
                        Some(Ok(_)) => {}
                        None | Some(Err(_)) => break,
                    },
                }
            }
        }
    });
    match load {
        Load::Idle => tokio::time::sleep(Duration::from_millis(1)).await,
        Load::Receiving => settled.await.unwrap(),
    }
    let start = Instant::now();
    token.cancel();
    let _ = sink.close().await;
    reader.await.unwrap();
    if release {
        drop(sink);
    }
    start.elapsed()
}

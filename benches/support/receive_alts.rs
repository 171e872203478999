//! The receive bench's alternatives that `examples/recv_small.rs` runs
//! too (one copy: the example profiles exactly what the bench times).
//! Included with `#[path]` by both; `crate::support` is the bench support.

use std::hint::black_box;
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use wsdrain::protocol::Envelope;
use wsdrain::{Client, Event, WorkspaceStream};

use crate::support::BenchServer;

pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub(crate) struct Wsdrain {
    pub(crate) client: Client,
    pub(crate) stream: WorkspaceStream,
    pub(crate) bursts: mpsc::UnboundedReceiver<()>,
}

impl Wsdrain {
    pub(crate) fn connect(rt: &Runtime, server: &BenchServer, count: usize) -> Self {
        rt.block_on(async {
            let client = Client::new(&server.base_url()).unwrap();
            let (tx, bursts) = mpsc::unbounded_channel();
            let mut left = count;
            let stream = client
                .stream_workspace(move |event: Event| {
                    if let Event::Message(envelope) = event {
                        black_box(envelope);
                        left -= 1;
                        if left == 0 {
                            left = count;
                            let _ = tx.send(());
                        }
                    }
                    std::future::ready(())
                })
                .await
                .unwrap();
            Self {
                client,
                stream,
                bursts,
            }
        })
    }

    pub(crate) fn run(&mut self, rt: &Runtime, iters: u64) -> Duration {
        rt.block_on(async {
            let start = Instant::now();
            for _ in 0..iters {
                self.stream.write_shell_input("go").await.unwrap();
                self.bursts.recv().await.unwrap();
            }
            start.elapsed()
        })
    }

    pub(crate) fn close(self, rt: &Runtime) {
        rt.block_on(self.client.close());
        assert_eq!(self.client.live_tasks(), 0);
    }
}

pub(crate) async fn dial(server: &BenchServer) -> Socket {
    // Same as the client's dial: Nagle off.
    let (socket, _) = tokio_tungstenite::connect_async_with_config(server.ws_url(), None, true)
        .await
        .unwrap();
    socket
}

pub(crate) fn request() -> WsMessage {
    WsMessage::Text(
        Envelope::new(wsdrain::protocol::Message::ShellInput { data: "go".into() })
            .encode()
            .into(),
    )
}

pub(crate) struct PlainSplit {
    pub(crate) sink: SplitSink<Socket, WsMessage>,
    pub(crate) bursts: mpsc::UnboundedReceiver<()>,
    pub(crate) reader: tokio::task::JoinHandle<()>,
}

impl PlainSplit {
    pub(crate) fn connect(rt: &Runtime, server: &BenchServer, count: usize) -> Self {
        rt.block_on(async {
            let (sink, stream) = dial(server).await.split();
            let (tx, bursts) = mpsc::unbounded_channel();
            let reader = tokio::spawn(read_loop(stream, tx, count));
            Self {
                sink,
                bursts,
                reader,
            }
        })
    }

    pub(crate) fn run(&mut self, rt: &Runtime, iters: u64) -> Duration {
        rt.block_on(async {
            let start = Instant::now();
            for _ in 0..iters {
                self.sink.send(request()).await.unwrap();
                self.bursts.recv().await.unwrap();
            }
            start.elapsed()
        })
    }

    pub(crate) fn close(mut self, rt: &Runtime) {
        rt.block_on(async {
            let _ = self.sink.close().await;
            let _ = self.reader.await;
        });
    }
}

pub(crate) async fn read_loop(
    mut stream: SplitStream<Socket>,
    bursts: mpsc::UnboundedSender<()>,
    count: usize,
) {
    let mut left = count;
    while let Some(frame) = stream.next().await {
        match frame {
            Ok(WsMessage::Text(text)) => {
                let envelope = Envelope::decode(text.as_str()).unwrap();
                black_box(envelope);
                left -= 1;
                if left == 0 {
                    left = count;
                    let _ = bursts.send(());
                }
            }
            Ok(WsMessage::Close(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

pub(crate) struct PlainTasks {
    pub(crate) requests: mpsc::UnboundedSender<Envelope>,
    pub(crate) bursts: mpsc::UnboundedReceiver<()>,
    pub(crate) reader: tokio::task::JoinHandle<()>,
    pub(crate) writer: tokio::task::JoinHandle<()>,
}

impl PlainTasks {
    pub(crate) fn connect(rt: &Runtime, server: &BenchServer, count: usize) -> Self {
        rt.block_on(async {
            let (mut sink, stream) = dial(server).await.split();
            let (tx, bursts) = mpsc::unbounded_channel();
            let reader = tokio::spawn(read_loop(stream, tx, count));
            let (requests, mut input) = mpsc::unbounded_channel::<Envelope>();
            let writer = tokio::spawn(async move {
                while let Some(envelope) = input.recv().await {
                    if sink
                        .send(WsMessage::Text(envelope.encode().into()))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
                let _ = sink.close().await;
            });
            Self {
                requests,
                bursts,
                reader,
                writer,
            }
        })
    }

    pub(crate) fn run(&mut self, rt: &Runtime, iters: u64) -> Duration {
        rt.block_on(async {
            let start = Instant::now();
            for _ in 0..iters {
                let go = wsdrain::protocol::Message::ShellInput { data: "go".into() };
                self.requests.send(Envelope::new(go)).unwrap();
                self.bursts.recv().await.unwrap();
            }
            start.elapsed()
        })
    }

    pub(crate) fn close(self, rt: &Runtime) {
        drop(self.requests);
        rt.block_on(async {
            let _ = self.writer.await;
            let _ = self.reader.await;
        });
    }
}

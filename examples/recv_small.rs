//! The receive bench's small case alone, for profiling (issue 12).
//!
//! `cargo run --release --example recv_small -- ALT N BURSTS` runs one
//! alternative (`wsdrain`, `split`, `tasks`: as in benches/receive.rs) for BURSTS bursts of N small messages,
//! after one warm-up burst, and prints the time per burst and per message.
//! `ALT` = `all` times every alternative interleaved (21 rounds).

#[path = "../benches/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use support::{Alt, BenchServer, Mode, interleaved};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use wsdrain::protocol::Envelope;
use wsdrain::{Client, Event, WorkspaceStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

struct Wsdrain {
    client: Client,
    stream: WorkspaceStream,
    bursts: mpsc::UnboundedReceiver<()>,
}

impl Wsdrain {
    fn connect(rt: &Runtime, server: &BenchServer, count: usize) -> Self {
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

    fn run(&mut self, rt: &Runtime, iters: u64) -> Duration {
        rt.block_on(async {
            let start = Instant::now();
            for _ in 0..iters {
                self.stream.write_shell_input("go").await.unwrap();
                self.bursts.recv().await.unwrap();
            }
            start.elapsed()
        })
    }
}

fn request() -> WsMessage {
    WsMessage::Text(
        Envelope::new(wsdrain::protocol::Message::ShellInput { data: "go".into() })
            .encode()
            .into(),
    )
}

struct PlainSplit {
    sink: SplitSink<Socket, WsMessage>,
    bursts: mpsc::UnboundedReceiver<()>,
}

impl PlainSplit {
    fn connect(rt: &Runtime, server: &BenchServer, count: usize) -> Self {
        rt.block_on(async {
            let (socket, _) =
                tokio_tungstenite::connect_async_with_config(server.ws_url(), None, true)
                    .await
                    .unwrap();
            let (sink, stream) = socket.split();
            let (tx, bursts) = mpsc::unbounded_channel();
            tokio::spawn(read_loop(stream, tx, count));
            Self { sink, bursts }
        })
    }

    fn run(&mut self, rt: &Runtime, iters: u64) -> Duration {
        rt.block_on(async {
            let start = Instant::now();
            for _ in 0..iters {
                self.sink.send(request()).await.unwrap();
                self.bursts.recv().await.unwrap();
            }
            start.elapsed()
        })
    }
}

async fn read_loop(
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

/// `plain_split` with the request sent by a writer task (benches/receive.rs).
struct PlainTasks {
    requests: mpsc::UnboundedSender<Envelope>,
    bursts: mpsc::UnboundedReceiver<()>,
}

impl PlainTasks {
    fn connect(rt: &Runtime, server: &BenchServer, count: usize) -> Self {
        rt.block_on(async {
            let (socket, _) =
                tokio_tungstenite::connect_async_with_config(server.ws_url(), None, true)
                    .await
                    .unwrap();
            let (mut sink, stream) = socket.split();
            let (tx, bursts) = mpsc::unbounded_channel();
            tokio::spawn(read_loop(stream, tx, count));
            let (requests, mut input) = mpsc::unbounded_channel::<Envelope>();
            tokio::spawn(async move {
                while let Some(envelope) = input.recv().await {
                    if sink
                        .send(WsMessage::Text(envelope.encode().into()))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            });
            Self { requests, bursts }
        })
    }

    fn run(&mut self, rt: &Runtime, iters: u64) -> Duration {
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
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let alt = args.first().map(String::as_str).unwrap_or("all");
    let count: usize = args.get(1).map_or(10_000, |s| s.parse().unwrap());
    let bursts: u64 = args.get(2).map_or(20, |s| s.parse().unwrap());
    let rt = support::client_runtime();
    let server = BenchServer::start(Mode::BlastOnRequest {
        frame: support::small_message().into(),
        count,
    });
    let mut wsdrain = Wsdrain::connect(&rt, &server, count);
    let mut split = PlainSplit::connect(&rt, &server, count);
    let mut tasks = PlainTasks::connect(&rt, &server, count);
    let per = |name: &str, t: Duration| {
        let ns = t.as_nanos() as f64 / bursts as f64;
        println!(
            "{name}: {} per burst, {} per message",
            support::fmt_ns(ns),
            support::fmt_ns(ns / count as f64)
        );
    };
    match alt {
        "wsdrain" => {
            wsdrain.run(&rt, 1);
            per("wsdrain", wsdrain.run(&rt, bursts));
        }
        "split" => {
            split.run(&rt, 1);
            per("plain_split", split.run(&rt, bursts));
        }
        "tasks" => {
            tasks.run(&rt, 1);
            per("plain_tasks", tasks.run(&rt, bursts));
        }
        _ => {
            let m = interleaved(
                &format!("receive/small ({count} msgs per op)"),
                bursts,
                21,
                &mut [
                    Alt::new("wsdrain", |n| wsdrain.run(&rt, n)),
                    Alt::new("plain_split", |n| split.run(&rt, n)),
                    Alt::new("plain_tasks", |n| tasks.run(&rt, n)),
                ],
            );
            m.print_throughput_ratio("wsdrain", 0, "plain_split", 1);
            m.print_throughput_ratio("wsdrain", 0, "plain_tasks", 2);
        }
    }
    rt.block_on(wsdrain.client.close());
}

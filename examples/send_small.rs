//! The send bench's throughput case alone, for profiling (issue 12).
//!
//! `cargo run --release --example send_small -- ALT BATCHES` runs one
//! alternative (`wsdrain`, `batched`: `wsdrain` and `plain_batched` in
//! benches/send.rs; `tasks`: a plain writer task built as wsdrain's is, see
//! [`plain_writer`]) for BATCHES batches of 1,000 `shell_input` messages (64 B
//! of data), after one warm-up batch, and prints the time per batch and per
//! message. Each batch is sent from a task on the client's 2-worker runtime
//! and ends when the server has received its last message, as in the bench.
//! `ALT` = `all` times all three interleaved (21 rounds).

#[path = "../benches/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use support::{Alt, BenchServer, Mode, interleaved};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use wsdrain::protocol::{Envelope, Message};
use wsdrain::{Client, WorkspaceStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Receipts = mpsc::UnboundedReceiver<Instant>;

const BATCH: u64 = 1000;

/// 64 bytes of shell input (benches/send.rs).
fn data() -> &'static str {
    "ls -la --color=never /work/main/src && git status --short; date\n"
}

/// What `plain_batched` feeds: built and encoded per message, as in the bench.
fn encoded() -> WsMessage {
    WsMessage::Text(
        Envelope::new(Message::ShellInput {
            data: data().to_owned(),
        })
        .encode()
        .into(),
    )
}

enum Sender {
    Wsdrain(WorkspaceStream),
    Batched(SplitSink<Socket, WsMessage>),
    Tasks(mpsc::Sender<Envelope>),
}

/// What wsdrain does, with tokio's own parts and nothing else: senders
/// queue an `Envelope` in a bounded channel of 64 (a stream's default input
/// queue); a writer task takes up to 64 with `recv_many`, encodes and feeds
/// each, and after a full batch yields and takes more (up to 16 batches)
/// before its one flush (`run_writer` in src/stream.rs, without the close
/// signal). If this costs what wsdrain costs over `plain_batched`, the gap
/// is the hand-off to a writer task, not wsdrain's implementation of it.
async fn plain_writer(mut sink: SplitSink<Socket, WsMessage>, mut input: mpsc::Receiver<Envelope>) {
    let mut batch = Vec::with_capacity(64);
    while input.recv_many(&mut batch, 64).await > 0 {
        let mut batches = 1;
        loop {
            let full = batch.len() == 64;
            for envelope in batch.drain(..) {
                sink.feed(WsMessage::Text(envelope.encode().into()))
                    .await
                    .unwrap();
            }
            if !full || batches == 16 {
                break;
            }
            tokio::task::yield_now().await;
            while batch.len() < 64 {
                match input.try_recv() {
                    Ok(envelope) => batch.push(envelope),
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                break;
            }
            batches += 1;
        }
        sink.flush().await.unwrap();
    }
}

struct Side {
    sender: Option<Sender>,
    receipts: Option<Receipts>,
}

impl Side {
    /// `iters` batches of `BATCH` messages, from a task on `rt`; the time
    /// until the server got the last one (benches/send.rs `throughput`).
    fn run(&mut self, rt: &Runtime, iters: u64) -> Duration {
        let mut sender = self.sender.take().unwrap();
        let mut receipts = self.receipts.take().unwrap();
        let (sender, receipts, elapsed) = rt
            .block_on(rt.spawn(async move {
                let start = Instant::now();
                for _ in 0..iters {
                    match &mut sender {
                        Sender::Wsdrain(stream) => {
                            for _ in 0..BATCH {
                                stream.write_shell_input(data()).await.unwrap();
                            }
                        }
                        Sender::Batched(sink) => {
                            for _ in 0..BATCH {
                                sink.feed(encoded()).await.unwrap();
                            }
                            sink.flush().await.unwrap();
                        }
                        Sender::Tasks(input) => {
                            for _ in 0..BATCH {
                                let data = data().to_owned();
                                let envelope = Envelope::new(Message::ShellInput { data });
                                input.send(envelope).await.unwrap();
                            }
                        }
                    }
                    for _ in 0..BATCH {
                        receipts.recv().await.unwrap();
                    }
                }
                (sender, receipts, start.elapsed())
            }))
            .unwrap();
        self.sender = Some(sender);
        self.receipts = Some(receipts);
        elapsed
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let alt = args.first().map(String::as_str).unwrap_or("all");
    let batches: u64 = args.get(1).map_or(20, |s| s.parse().unwrap());
    let rt = support::client_runtime();

    let (wsdrain_tx, wsdrain_rx) = mpsc::unbounded_channel();
    let wsdrain_server = BenchServer::start(Mode::Sink {
        receipts: wsdrain_tx,
    });
    let (plain_tx, plain_rx) = mpsc::unbounded_channel();
    let plain_server = BenchServer::start(Mode::Sink { receipts: plain_tx });

    let client = Client::new(&wsdrain_server.base_url()).unwrap();
    let stream = rt
        .block_on(client.stream_workspace(|_| std::future::ready(())))
        .unwrap();
    let mut wsdrain = Side {
        sender: Some(Sender::Wsdrain(stream)),
        receipts: Some(wsdrain_rx),
    };
    let (sink, _stream) = rt.block_on(async {
        let (socket, _) =
            tokio_tungstenite::connect_async_with_config(plain_server.ws_url(), None, true)
                .await
                .unwrap();
        socket.split()
    });
    let mut batched = Side {
        sender: Some(Sender::Batched(sink)),
        receipts: Some(plain_rx),
    };

    let (tasks_tx, tasks_rx) = mpsc::unbounded_channel();
    let tasks_server = BenchServer::start(Mode::Sink { receipts: tasks_tx });
    let input = rt.block_on(async {
        let (socket, _) =
            tokio_tungstenite::connect_async_with_config(tasks_server.ws_url(), None, true)
                .await
                .unwrap();
        let (sink, read_half) = socket.split();
        let (input, queue) = mpsc::channel(64);
        tokio::spawn(async move {
            // The read half lives as long as the writer, as the other
            // alternatives keep theirs.
            let _read_half = read_half;
            plain_writer(sink, queue).await
        });
        input
    });
    let mut tasks = Side {
        sender: Some(Sender::Tasks(input)),
        receipts: Some(tasks_rx),
    };

    let per = |name: &str, t: Duration| {
        let ns = t.as_nanos() as f64 / batches as f64;
        println!(
            "{name}: {} per batch, {} per message",
            support::fmt_ns(ns),
            support::fmt_ns(ns / BATCH as f64)
        );
    };
    match alt {
        "wsdrain" => {
            wsdrain.run(&rt, 1);
            per("wsdrain", wsdrain.run(&rt, batches));
        }
        "batched" => {
            batched.run(&rt, 1);
            per("plain_batched", batched.run(&rt, batches));
        }
        "tasks" => {
            tasks.run(&rt, 1);
            per("plain_tasks", tasks.run(&rt, batches));
        }
        _ => {
            let m = interleaved(
                "send/throughput (per batch of 1,000)",
                batches,
                21,
                &mut [
                    Alt::new("wsdrain", |n| wsdrain.run(&rt, n)),
                    Alt::new("plain_batched", |n| batched.run(&rt, n)),
                    Alt::new("plain_tasks", |n| tasks.run(&rt, n)),
                ],
            );
            m.print_ratio("wsdrain", 0, "plain_batched", 1);
            m.print_ratio("wsdrain", 0, "plain_tasks", 2);
            m.print_ratio("plain_tasks", 2, "plain_batched", 1);
        }
    }
    rt.block_on(client.close());
}

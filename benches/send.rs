//! Send path: `WorkspaceStream::write_shell_input` against a plain
//! tokio-tungstenite writer sending the same encoded messages
//! (`Envelope::new(ShellInput { data }).encode()`, 64 bytes of data) to the
//! same loopback server, which timestamps the arrival of every frame.
//!
//! - `throughput`: one op = a batch of 1,000 messages, from the first send
//!   until the server has received the last one.
//! - `latency`: one message at a time, from the call until the server has
//!   received it (one process, one monotonic clock); p50/p99 in the summary.
//!
//! Alternatives:
//! - `wsdrain`: `write_shell_input` (queues; the stream's writer task encodes
//!   and sends: it takes everything queued and flushes once per burst);
//! - `plain_send`: `SinkExt::send` per message (one flush per message),
//!   directly from the calling task;
//! - `plain_batched` (throughput only): `feed` each message, one `flush` at
//!   the end of the batch: the headroom a batching writer would have.
//! - `plain_tasks` (throughput only): wsdrain's design built from tokio
//!   parts: the sender queues an `Envelope` into a bounded `mpsc` of 64 (a
//!   stream's default input queue); a writer task takes up to 64 with
//!   `recv_many`, encodes and feeds each, and after a full batch yields and
//!   takes more (up to 16 batches) before its one flush (`run_writer`
//!   without the close signal). `plain_batched` has no hand-off to a
//!   writer task at all; this one has the same hand-off as wsdrain, so
//!   wsdrain/plain_tasks measures wsdrain's implementation of the design
//!   (docs/performance.md, section 4).
//!
//! Every sender runs inside a task on the same 2-worker runtime, as
//! application code would. Run: `cargo bench --bench send`.

mod support;

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use support::{Alt, BenchServer, Mode, fmt_dur, interleaved, percentiles, ratio, size};
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

/// 64 bytes of shell input.
fn data() -> &'static str {
    "ls -la --color=never /work/main/src && git status --short; date\n"
}

fn encoded() -> WsMessage {
    WsMessage::Text(
        Envelope::new(Message::ShellInput {
            data: data().to_owned(),
        })
        .encode()
        .into(),
    )
}

#[derive(Clone, Copy, PartialEq)]
enum How {
    Wsdrain,
    PlainSend,
    PlainBatched,
    PlainTasks,
}

/// A sender and the receipts of the frames it sent, moved into a task for
/// each run and back.
enum Sender {
    Wsdrain(WorkspaceStream),
    Plain(SplitSink<Socket, WsMessage>),
    Tasks(mpsc::Sender<Envelope>),
}

/// A shell input as `write_shell_input(data())` queues it.
fn envelope() -> Envelope {
    Envelope::new(Message::ShellInput {
        data: data().to_owned(),
    })
}

/// `plain_tasks`' writer task: `run_writer` (src/stream.rs) with tokio's
/// parts and without the close signal.
async fn plain_writer(mut sink: SplitSink<Socket, WsMessage>, mut input: mpsc::Receiver<Envelope>) {
    let mut batch = Vec::with_capacity(64);
    while input.recv_many(&mut batch, 64).await > 0 {
        let mut batches = 1;
        loop {
            let full = batch.len() == 64;
            for envelope in batch.drain(..) {
                if sink
                    .feed(WsMessage::Text(envelope.encode().into()))
                    .await
                    .is_err()
                {
                    return;
                }
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
        if sink.flush().await.is_err() {
            return;
        }
    }
}

struct Bench {
    sender: Option<Sender>,
    receipts: Option<Receipts>,
}

impl Bench {
    /// `iters` batches of `BATCH` messages; the time until the server got
    /// the last one.
    fn throughput(&mut self, rt: &Runtime, how: How, iters: u64) -> Duration {
        let mut sender = self.sender.take().unwrap();
        let mut receipts = self.receipts.take().unwrap();
        let (sender, receipts, elapsed) = rt
            .block_on(rt.spawn(async move {
                let start = Instant::now();
                for _ in 0..iters {
                    for _ in 0..BATCH {
                        match (&mut sender, how) {
                            (Sender::Wsdrain(stream), _) => {
                                stream.write_shell_input(data()).await.unwrap()
                            }
                            (Sender::Plain(sink), How::PlainBatched) => {
                                sink.feed(encoded()).await.unwrap()
                            }
                            (Sender::Plain(sink), _) => sink.send(encoded()).await.unwrap(),
                            (Sender::Tasks(input), _) => input.send(envelope()).await.unwrap(),
                        }
                    }
                    if let (Sender::Plain(sink), How::PlainBatched) = (&mut sender, how) {
                        sink.flush().await.unwrap();
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

    /// `iters` messages one at a time; each message's latency.
    fn latencies(&mut self, rt: &Runtime, iters: u64) -> Vec<Duration> {
        let mut sender = self.sender.take().unwrap();
        let mut receipts = self.receipts.take().unwrap();
        let (sender, receipts, samples) = rt
            .block_on(rt.spawn(async move {
                let mut samples = Vec::with_capacity(iters as usize);
                for _ in 0..iters {
                    let start = Instant::now();
                    match &mut sender {
                        Sender::Wsdrain(stream) => stream.write_shell_input(data()).await.unwrap(),
                        Sender::Plain(sink) => sink.send(encoded()).await.unwrap(),
                        Sender::Tasks(input) => input.send(envelope()).await.unwrap(),
                    }
                    let arrived = receipts.recv().await.unwrap();
                    samples.push(arrived.saturating_duration_since(start));
                }
                (sender, receipts, samples)
            }))
            .unwrap();
        self.sender = Some(sender);
        self.receipts = Some(receipts);
        samples
    }

    fn latency_total(&mut self, rt: &Runtime, iters: u64) -> Duration {
        self.latencies(rt, iters).into_iter().sum()
    }
}

fn main() {
    let mut c: Criterion = support::criterion(Duration::from_secs(3), 20);
    let rt = support::client_runtime();

    // One server per alternative, so receipts never mix.
    let (wsdrain_tx, wsdrain_rx) = mpsc::unbounded_channel();
    let wsdrain_server = BenchServer::start(Mode::Sink {
        receipts: wsdrain_tx,
    });
    let (plain_tx, plain_rx) = mpsc::unbounded_channel();
    let plain_server = BenchServer::start(Mode::Sink { receipts: plain_tx });
    let (tasks_tx, tasks_rx) = mpsc::unbounded_channel();
    let tasks_server = BenchServer::start(Mode::Sink { receipts: tasks_tx });

    let client = Client::new(&wsdrain_server.base_url()).unwrap();
    let stream = rt
        .block_on(client.stream_workspace(|_| std::future::ready(())))
        .unwrap();
    let mut wsdrain = Bench {
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
    let input = rt.block_on(async {
        let (socket, _) =
            tokio_tungstenite::connect_async_with_config(tasks_server.ws_url(), None, true)
                .await
                .unwrap();
        let (sink, read_half) = socket.split();
        let (input, queue) = mpsc::channel(64);
        tokio::spawn(async move {
            // Kept as long as the writer runs, as the others keep theirs.
            let _read_half = read_half;
            plain_writer(sink, queue).await
        });
        input
    });
    let mut tasks = Bench {
        sender: Some(Sender::Tasks(input)),
        receipts: Some(tasks_rx),
    };
    // Two alternatives share this connection: a RefCell lends it to each.
    let plain = std::cell::RefCell::new(Bench {
        sender: Some(Sender::Plain(sink)),
        receipts: Some(plain_rx),
    });

    let mut g = c.benchmark_group("send/throughput");
    g.throughput(Throughput::Elements(BATCH));
    g.bench_function("wsdrain write_shell_input x1000", |b| {
        b.iter_custom(|n| wsdrain.throughput(&rt, How::Wsdrain, n))
    });
    g.bench_function("plain_send x1000", |b| {
        b.iter_custom(|n| plain.borrow_mut().throughput(&rt, How::PlainSend, n))
    });
    g.bench_function("plain_batched x1000", |b| {
        b.iter_custom(|n| plain.borrow_mut().throughput(&rt, How::PlainBatched, n))
    });
    g.bench_function("plain_tasks x1000", |b| {
        b.iter_custom(|n| tasks.throughput(&rt, How::PlainTasks, n))
    });
    g.finish();

    let mut g = c.benchmark_group("send/latency");
    g.bench_function("wsdrain write_shell_input", |b| {
        b.iter_custom(|n| wsdrain.latency_total(&rt, n))
    });
    g.bench_function("plain_send", |b| {
        b.iter_custom(|n| plain.borrow_mut().latency_total(&rt, n))
    });
    g.finish();
    c.final_summary();

    let rounds = size(21, 2) as usize;
    let m = interleaved(
        "send/throughput (per message, batches of 1,000)",
        size(10, 1),
        rounds,
        &mut [
            Alt::new("wsdrain", |n| {
                wsdrain.throughput(&rt, How::Wsdrain, n) / BATCH as u32
            }),
            Alt::new("plain_send", |n| {
                plain.borrow_mut().throughput(&rt, How::PlainSend, n) / BATCH as u32
            }),
            Alt::new("plain_batched", |n| {
                plain.borrow_mut().throughput(&rt, How::PlainBatched, n) / BATCH as u32
            }),
            Alt::new("plain_tasks", |n| {
                tasks.throughput(&rt, How::PlainTasks, n) / BATCH as u32
            }),
        ],
    );
    for (i, name) in ["wsdrain", "plain_send", "plain_batched", "plain_tasks"]
        .iter()
        .enumerate()
    {
        println!(
            "[summary] send/throughput {name}: {:.0} msg/s",
            1e9 / m.median(i)
        );
    }
    m.print_ratio("wsdrain", 0, "plain_send", 1);
    m.print_ratio("wsdrain", 0, "plain_batched", 2);
    m.print_ratio("wsdrain", 0, "plain_tasks", 3);

    // Latency percentiles: interleaved blocks of 500 samples.
    let per_block = size(500, 20);
    let (mut ws, mut pl) = (Vec::new(), Vec::new());
    for _ in 0..size(8, 1) {
        ws.extend(wsdrain.latencies(&rt, per_block));
        pl.extend(plain.borrow_mut().latencies(&rt, per_block));
    }
    let (w50, w99, wmax) = percentiles(&mut ws);
    let (p50, p99, pmax) = percentiles(&mut pl);
    println!(
        "[summary] send/latency ({} samples each; load {}): wsdrain p50 {} p99 {} max {}; plain_send p50 {} p99 {} max {}",
        ws.len(),
        support::load(),
        fmt_dur(w50),
        fmt_dur(w99),
        fmt_dur(wmax),
        fmt_dur(p50),
        fmt_dur(p99),
        fmt_dur(pmax)
    );
    ratio(
        "p50 wsdrain",
        w50.as_nanos() as f64,
        "plain_send",
        p50.as_nanos() as f64,
    );
    ratio(
        "p99 wsdrain",
        w99.as_nanos() as f64,
        "plain_send",
        p99.as_nanos() as f64,
    );

    rt.block_on(client.close());
    assert_eq!(client.live_tasks(), 0);
}

//! Receive path: messages per second from a loopback WebSocket server
//! through `wsdrain::Client` and its handler, against plain
//! tokio-tungstenite read loops doing the same `Envelope::decode` of the
//! same frames from the same server.
//!
//! The server (benches/support) answers each text frame from the client
//! with a burst of N pre-encoded frames (one flush). One op = one burst:
//! send the request, then receive and decode all N messages. The connection
//! is set up once, outside the timing.
//!
//! Alternatives:
//! - `wsdrain`: `Client::stream_workspace` with a handler that decodes nothing
//!   itself (the reader task decodes) and signals the N-th message;
//!   the request goes through `WorkspaceStream::write_shell_input`.
//! - `plain_split`: tokio-tungstenite, split into sink and stream, the read
//!   loop on its own task (the shape a user needs for a two-way stream),
//!   `Envelope::decode` per frame, signals the N-th message.
//! - `plain_tasks`: `plain_split` with the request sent by a writer task of
//!   its own (fed by a channel, encoding there), as wsdrain's request is:
//!   the same two tasks on the client's runtime. With the request sent from
//!   outside the runtime (`plain_split`) the reader is the runtime's only
//!   task and stays on one worker; with a writer task (wsdrain) the writer
//!   wakes on the other worker and the reader's wake-up follows it, so the
//!   reader runs on both (perf, 2026-12-02: 3,780 and 1,445 samples on the
//!   two workers for wsdrain, 2,138 and 1,763 for `plain_tasks`, 4,879 and
//!   5 for `plain_split`). So far `plain_tasks` has not measured slower
//!   than `plain_split`: this is not what the small-message gap is made of
//!   (docs/performance.md, section 3).
//! - `plain_inline`: tokio-tungstenite unsplit, request and read loop inline
//!   on one task: the leanest possible reader.
//!
//! Messages: `small` = `shell_output` with 64 bytes of data (N = 10,000 per
//! burst); `large` = `git_status` with 1,000 paths (~41 KB, N = 200).
//!
//! Run: `cargo bench --bench receive`.

mod support;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use futures_util::{SinkExt, StreamExt};
use support::{Alt, BenchServer, Mode, interleaved, size};
use tokio::runtime::Runtime;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use wsdrain::protocol::Envelope;

#[path = "support/receive_alts.rs"]
mod alts;

use alts::*;

struct PlainInline {
    socket: Option<Socket>,
    count: usize,
}

impl PlainInline {
    fn connect(rt: &Runtime, server: &BenchServer, count: usize) -> Self {
        Self {
            socket: Some(rt.block_on(dial(server))),
            count,
        }
    }

    fn run(&mut self, rt: &Runtime, iters: u64) -> Duration {
        let mut socket = self.socket.take().unwrap();
        let count = self.count;
        // On a worker thread, like the other two readers.
        let (socket, elapsed) = rt
            .block_on(rt.spawn(async move {
                let start = Instant::now();
                for _ in 0..iters {
                    socket.send(request()).await.unwrap();
                    let mut received = 0;
                    while received < count {
                        match socket.next().await {
                            Some(Ok(WsMessage::Text(text))) => {
                                black_box(Envelope::decode(text.as_str()).unwrap());
                                received += 1;
                            }
                            Some(Ok(_)) => {}
                            other => panic!("connection ended: {other:?}"),
                        }
                    }
                }
                (socket, start.elapsed())
            }))
            .unwrap();
        self.socket = Some(socket);
        elapsed
    }

    fn close(mut self, rt: &Runtime) {
        if let Some(mut socket) = self.socket.take() {
            rt.block_on(async {
                let _ = socket.close(None).await;
            });
        }
    }
}

struct Case {
    name: &'static str,
    frame: String,
    count: usize,
}

fn main() {
    let mut c: Criterion = support::criterion(Duration::from_secs(3), 20);
    let rt = support::client_runtime();
    let cases = [
        Case {
            name: "small",
            frame: support::small_message(),
            count: size(10_000, 100) as usize,
        },
        Case {
            name: "large",
            frame: support::large_message(),
            count: size(200, 5) as usize,
        },
    ];
    let mut summary = Vec::new();
    for case in &cases {
        let server = BenchServer::start(Mode::BlastOnRequest {
            frame: case.frame.clone().into(),
            count: case.count,
        });
        let mut wsdrain = Wsdrain::connect(&rt, &server, case.count);
        let mut split = PlainSplit::connect(&rt, &server, case.count);
        let mut tasks = PlainTasks::connect(&rt, &server, case.count);
        let mut inline = PlainInline::connect(&rt, &server, case.count);

        let mut g = c.benchmark_group(format!("receive/{}", case.name));
        g.throughput(Throughput::Elements(case.count as u64));
        let param = format!("{}x{}B", case.count, case.frame.len());
        g.bench_function(BenchmarkId::new("wsdrain", &param), |b| {
            b.iter_custom(|n| wsdrain.run(&rt, n))
        });
        g.bench_function(BenchmarkId::new("plain_split", &param), |b| {
            b.iter_custom(|n| split.run(&rt, n))
        });
        g.bench_function(BenchmarkId::new("plain_tasks", &param), |b| {
            b.iter_custom(|n| tasks.run(&rt, n))
        });
        g.bench_function(BenchmarkId::new("plain_inline", &param), |b| {
            b.iter_custom(|n| inline.run(&rt, n))
        });
        g.finish();

        let m = interleaved(
            &format!(
                "receive/{} ({} msgs of {} B per op)",
                case.name,
                case.count,
                case.frame.len()
            ),
            size(if case.name == "small" { 4 } else { 6 }, 1),
            size(21, 2) as usize,
            &mut [
                Alt::new("wsdrain", |n| wsdrain.run(&rt, n)),
                Alt::new("plain_split", |n| split.run(&rt, n)),
                Alt::new("plain_inline", |n| inline.run(&rt, n)),
                Alt::new("plain_tasks", |n| tasks.run(&rt, n)),
            ],
        );
        summary.push((case, m));

        wsdrain.close(&rt);
        split.close(&rt);
        tasks.close(&rt);
        inline.close(&rt);
        drop(server);
    }
    c.final_summary();

    for (case, m) in &summary {
        let per_s = |i: usize| case.count as f64 / (m.median(i) / 1e9);
        let mb = |msgs: f64| msgs * case.frame.len() as f64 / 1e6;
        println!(
            "[summary] receive/{}: wsdrain {:.0} msg/s ({:.1} MB/s), plain_split {:.0} msg/s ({:.1} MB/s), plain_inline {:.0} msg/s ({:.1} MB/s), plain_tasks {:.0} msg/s ({:.1} MB/s)",
            case.name,
            per_s(0),
            mb(per_s(0)),
            per_s(1),
            mb(per_s(1)),
            per_s(2),
            mb(per_s(2)),
            per_s(3),
            mb(per_s(3))
        );
        m.print_throughput_ratio(&format!("{}: wsdrain", case.name), 0, "plain_split", 1);
        m.print_throughput_ratio(&format!("{}: wsdrain", case.name), 0, "plain_inline", 2);
        m.print_throughput_ratio(&format!("{}: wsdrain", case.name), 0, "plain_tasks", 3);
    }
}

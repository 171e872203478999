//! Shared by the benches: run mode, interleaved timing with a printed ratio
//! summary, latency percentiles, the benchmark messages, and a tiny
//! tokio-tungstenite server that runs on its own thread and runtime.
//!
//! Every bench compares alternatives twice: once as a criterion group (the
//! statistics, the HTML report) and once with `std::time` in *interleaved*
//! rounds (A, B, C, A, B, C, ...; the median per alternative), which is what
//! the printed `ratio X/Y = ...` lines come from. Interleaving matters on a
//! shared 2-core machine: a burst of load hits every alternative alike
//! instead of skewing whichever ran during it. The order rotates from round
//! to round (running first was measurably faster in the receive bench), and
//! a ratio is the median of the per-round ratios.

#![allow(dead_code)] // each bench uses a different part of this module

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::{Message as WsMessage, Utf8Bytes};
use wsdrain::protocol::{Envelope, GitStatus, Message};

/// `cargo bench` passes `--bench`; `cargo test --benches` does not, and
/// criterion then runs each benchmark once as a test. The summaries follow:
/// full size under `cargo bench`, a token size under `cargo test`.
pub fn full_run() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test" || a == "--list")
}

/// `n` under `cargo bench`, `small` under `cargo test --benches`.
pub fn size(n: u64, small: u64) -> u64 {
    if full_run() { n } else { small }
}

/// The 1, 5 and 15 minute load averages, as `/proc/loadavg` shows them.
pub fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// A criterion runner for this machine: short warm-up and measurement, so
/// that every bench together stays within a few minutes.
pub fn criterion(measurement: Duration, samples: usize) -> criterion::Criterion {
    criterion::Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(measurement)
        .sample_size(samples)
        .configure_from_args()
}

/// One alternative of a comparison: a name and a routine that runs
/// `iters` operations and returns the time they took.
pub struct Alt<'a> {
    pub name: &'static str,
    pub run: Box<dyn FnMut(u64) -> Duration + 'a>,
}

impl<'a> Alt<'a> {
    pub fn new(name: &'static str, run: impl FnMut(u64) -> Duration + 'a) -> Self {
        Self {
            name,
            run: Box::new(run),
        }
    }
}

/// The per-op times (ns) of every alternative, one sample per round; the
/// rounds were interleaved, so sample `i` of every alternative ran under
/// about the same machine load.
pub struct Rounds {
    pub samples: Vec<Vec<f64>>,
}

impl Rounds {
    /// Median time per op of alternative `i`, in ns.
    pub fn median(&self, i: usize) -> f64 {
        median(&mut self.samples[i].clone())
    }

    /// Median over rounds of the per-round time ratio `i / j`: robust to
    /// load that drifts between rounds (each ratio pairs two neighbours).
    pub fn paired(&self, i: usize, j: usize) -> f64 {
        let mut ratios: Vec<f64> = self.samples[i]
            .iter()
            .zip(&self.samples[j])
            .map(|(a, b)| a / b)
            .collect();
        median(&mut ratios)
    }

    /// Print `ratio X/Y = r` (a time ratio: below 1.0 means X is faster),
    /// the paired median, with the spread of the per-round ratios.
    pub fn print_ratio(&self, x: &str, i: usize, y: &str, j: usize) -> f64 {
        let r = self.paired(i, j);
        let mut ratios: Vec<f64> = self.samples[i]
            .iter()
            .zip(&self.samples[j])
            .map(|(a, b)| a / b)
            .collect();
        ratios.sort_by(f64::total_cmp);
        let q = |f: f64| ratios[((ratios.len() - 1) as f64 * f).round() as usize];
        println!(
            "ratio {x}/{y} = {r:.2} (time; per-round ratios: quartiles {:.2}..{:.2}, n {})",
            q(0.25),
            q(0.75),
            ratios.len()
        );
        r
    }

    /// Like `print_ratio`, as a throughput ratio (above 1.0: X is faster).
    pub fn print_throughput_ratio(&self, x: &str, i: usize, y: &str, j: usize) -> f64 {
        let mut ratios: Vec<f64> = self.samples[i]
            .iter()
            .zip(&self.samples[j])
            .map(|(a, b)| b / a)
            .collect();
        let r = median(&mut ratios);
        let q = |f: f64| ratios[((ratios.len() - 1) as f64 * f).round() as usize];
        println!(
            "ratio {x}/{y} = {r:.2} (throughput; per-round ratios: quartiles {:.2}..{:.2}, n {})",
            q(0.25),
            q(0.75),
            ratios.len()
        );
        r
    }
}

/// Time every alternative in `rounds` interleaved rounds of `iters`
/// operations each (after one untimed warm-up round); prints one line with
/// the median time per op of each alternative.
pub fn interleaved(title: &str, iters: u64, rounds: usize, alts: &mut [Alt<'_>]) -> Rounds {
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); alts.len()];
    for alt in alts.iter_mut() {
        (alt.run)(iters.div_ceil(4).max(1));
    }
    let n = alts.len();
    for round in 0..rounds {
        for i in round_order(round, n) {
            let t = (alts[i].run)(iters);
            samples[i].push(t.as_nanos() as f64 / iters as f64);
        }
    }
    let rounds_out = Rounds { samples };
    let shown: Vec<String> = alts
        .iter()
        .enumerate()
        .map(|(i, a)| format!("{} {}", a.name, fmt_ns(rounds_out.median(i))))
        .collect();
    println!(
        "[summary] {title}: {} per op (median of {rounds} interleaved rounds x {iters} ops; load {})",
        shown.join(", "),
        load()
    );
    rounds_out
}

/// Interleaved rounds of blocks, for comparisons whose samples are single
/// latencies (a close, a send): each round waits `pause`, then runs
/// `block(i)` once for every alternative `i`, group by group, each group in
/// the order `round_order` gives (alternatives are compared only within
/// their group). Returns every sample of each alternative, and the blocks'
/// medians as rounds to pair: this VM's latency switches between states
/// faster than a long block, so pooled medians of long blocks can compare
/// one state with the other.
pub fn block_rounds(
    rounds: usize,
    groups: &[&[usize]],
    pause: Duration,
    mut block: impl FnMut(usize) -> Vec<Duration>,
) -> (Vec<Vec<Duration>>, Rounds) {
    let n = groups
        .iter()
        .flat_map(|g| g.iter())
        .max()
        .map_or(0, |i| i + 1);
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); n];
    let mut medians: Vec<Vec<f64>> = vec![Vec::new(); n];
    for round in 0..rounds {
        std::thread::sleep(pause);
        for group in groups {
            for k in round_order(round, group.len()) {
                let i = group[k];
                let times = block(i);
                let mut ns: Vec<f64> = times.iter().map(|t| t.as_nanos() as f64).collect();
                medians[i].push(median(&mut ns));
                samples[i].extend(times);
            }
        }
    }
    (samples, Rounds { samples: medians })
}

/// The order in which round `round` runs `n` alternatives. Running first,
/// or right after a given neighbour, is measurably not neutral on this
/// machine (a close right after a close under load, with the flooding
/// server still winding down, is slower). So the start rotates every round,
/// and every other round runs backwards: each alternative follows each of
/// its two cyclic neighbours in half the rounds, instead of always the same.
pub fn round_order(round: usize, n: usize) -> impl Iterator<Item = usize> {
    let backwards = round % 2 == 1;
    (0..n).map(move |k| {
        let step = if backwards { n - k } else { k };
        (round / 2 + step) % n
    })
}

/// Print `ratio X/Y = r` (a time ratio: below 1.0 means X is faster).
pub fn ratio(x: &str, x_ns: f64, y: &str, y_ns: f64) -> f64 {
    let r = x_ns / y_ns;
    println!("ratio {x}/{y} = {r:.2}");
    r
}

pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// `(p50, p99, max)` of latency samples (nearest rank).
pub fn percentiles(samples: &mut [Duration]) -> (Duration, Duration, Duration) {
    samples.sort();
    let at = |q: f64| {
        let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
        samples[rank - 1]
    };
    (at(0.50), at(0.99), samples[samples.len() - 1])
}

pub fn fmt_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} us", ns / 1e3)
    } else {
        format!("{ns:.2} ns")
    }
}

pub fn fmt_dur(d: Duration) -> String {
    fmt_ns(d.as_nanos() as f64)
}

/// The client's runtime: multi-threaded, one worker per core (2 here).
pub fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Tells [`spawn_batches`] that one task of the batch has run.
pub struct Finished(std::sync::Arc<tokio::sync::Semaphore>);

impl Finished {
    /// This task has run.
    pub fn signal(self) {
        self.0.add_permits(1);
    }
}

/// `iters` batches of `batch` tasks, each batch spawned from inside a task
/// on `rt` (as application code would) and awaited to completion; returns
/// the time they took. `spawn_one` spawns one task, which must call
/// [`Finished::signal`] when it runs (the `facade/spawn` and `probe/task`
/// groups differ only in what it spawns).
pub fn spawn_batches<S>(
    rt: &tokio::runtime::Runtime,
    iters: u64,
    batch: u64,
    spawn_one: S,
) -> Duration
where
    S: Fn(Finished) + Send + 'static,
{
    let permits = u32::try_from(batch).expect("batch fits a semaphore");
    rt.block_on(async move {
        tokio::spawn(async move {
            let start = Instant::now();
            for _ in 0..iters {
                let left = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
                for _ in 0..batch {
                    spawn_one(Finished(left.clone()));
                }
                drop(left.acquire_many(permits).await.unwrap());
            }
            start.elapsed()
        })
        .await
        .unwrap()
    })
}

// ---------------------------------------------------------------------------
// Messages

/// `shell_output` whose `data` is 64 bytes.
pub fn small_message() -> String {
    let data: String = "0123456789abcdef".repeat(4);
    assert_eq!(data.len(), 64);
    Envelope {
        timestamp: 1_700_000_000_000,
        message: Message::ShellOutput { data },
    }
    .encode()
}

/// `git_status` with 1,000 paths (modified, added, deleted, untracked).
pub fn large_message() -> String {
    let paths = |prefix: &str, n: usize| -> Vec<String> {
        (0..n)
            .map(|i| format!("{prefix}/module_{:03}/src/file_{i:04}.rs", i % 97))
            .collect()
    };
    let status = GitStatus {
        timestamp: "2026-11-24T03:25:25.815Z".into(),
        modified: paths("crates/core", 500),
        added: paths("crates/new", 200),
        deleted: paths("crates/old", 100),
        untracked: paths("scratch", 200),
        ahead: 3,
        behind: 1,
        branch: "feature/bench".into(),
        remote_branch: "origin/feature/bench".into(),
        head_commit: "883ee8414d6b2a5c9f0e1d7a3b6c4e2f1a0b9c8d".into(),
        ..GitStatus::default()
    };
    Envelope {
        timestamp: 1_700_000_000_000,
        message: Message::GitStatus(Box::new(status)),
    }
    .encode()
}

// ---------------------------------------------------------------------------
// The bench server

/// What the bench server does with each connection.
#[derive(Clone)]
pub enum Mode {
    /// On each text frame from the client, send `count` copies of `frame`
    /// (buffered, one flush at the end), then wait for the next request.
    BlastOnRequest { frame: Utf8Bytes, count: usize },
    /// Report the arrival time of every text frame from the client.
    Sink {
        receipts: mpsc::UnboundedSender<Instant>,
    },
    /// From the upgrade on, send `frame` in a loop until the connection ends.
    Flood { frame: Utf8Bytes },
    /// Send nothing; read until the client goes away.
    Idle,
}

/// A plain tokio-tungstenite server on its own thread and current-thread
/// runtime (so its work never lands in the client's runtime). Accepts any
/// path, so both `wsdrain::Client` and a plain `connect_async` reach it.
pub struct BenchServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BenchServer {
    pub fn start(mode: Mode) -> Self {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("bench-server".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("server runtime");
                rt.block_on(async move {
                    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
                    addr_tx.send(listener.local_addr().unwrap()).unwrap();
                    let mut stop_rx = stop_rx;
                    loop {
                        tokio::select! {
                            _ = &mut stop_rx => break,
                            accepted = listener.accept() => {
                                let Ok((tcp, _)) = accepted else { continue };
                                let _ = tcp.set_nodelay(true);
                                tokio::spawn(serve(tcp, mode.clone()));
                            }
                        }
                    }
                });
                // Dropping the runtime cancels the connections still open.
            })
            .expect("server thread");
        let addr = addr_rx.recv().expect("server address");
        Self {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// `http://HOST:PORT`, for `wsdrain::Client::new`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The same endpoint as `ws://` URL, for plain tokio-tungstenite.
    pub fn ws_url(&self) -> String {
        format!("ws://{}{}", self.addr, wsdrain::STREAM_PATH)
    }
}

impl Drop for BenchServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(tcp: tokio::net::TcpStream, mode: Mode) {
    let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
        return;
    };
    let (mut sink, mut stream) = ws.split();
    match mode {
        Mode::BlastOnRequest { frame, count } => {
            while let Some(Ok(msg)) = stream.next().await {
                match msg {
                    WsMessage::Text(_) => {
                        for _ in 0..count {
                            if sink.feed(WsMessage::Text(frame.clone())).await.is_err() {
                                return;
                            }
                        }
                        if sink.flush().await.is_err() {
                            return;
                        }
                    }
                    WsMessage::Close(_) => break,
                    _ => {}
                }
            }
        }
        Mode::Sink { receipts } => {
            while let Some(Ok(msg)) = stream.next().await {
                match msg {
                    WsMessage::Text(_) => {
                        let _ = receipts.send(Instant::now());
                    }
                    WsMessage::Close(_) => break,
                    _ => {}
                }
            }
        }
        Mode::Flood { frame } => {
            let flood = tokio::spawn(async move {
                loop {
                    for _ in 0..64 {
                        if sink.feed(WsMessage::Text(frame.clone())).await.is_err() {
                            return;
                        }
                    }
                    if sink.flush().await.is_err() {
                        return;
                    }
                }
            });
            while let Some(Ok(msg)) = stream.next().await {
                if let WsMessage::Close(_) = msg {
                    break;
                }
            }
            flood.abort();
        }
        Mode::Idle => {
            while let Some(Ok(msg)) = stream.next().await {
                if let WsMessage::Close(_) = msg {
                    break;
                }
            }
        }
    }
}

//! Close latency: how long `Client::close()` (the drain barrier: both tasks
//! of the stream have exited when it returns) takes on loopback, for an
//! idle stream and for a stream under full receive load, against what a
//! user would write with plain tokio-tungstenite: a reader task with a
//! `CancellationToken`, closed by `cancel()`, `sink.close()` (Close frame)
//! and awaiting the reader's `JoinHandle`.
//!
//! Each sample opens a fresh connection (not timed), lets it settle (idle:
//! 1 ms, both tasks parked; load: until 1,000 messages of a server that
//! floods 64-byte `shell_output` frames have been handled), then times the
//! close alone. The summary prints p50/p99/max of every sample, taken in
//! interleaved rounds (a block of each case per round, idle cases apart
//! from the cases under load, the order varied per round),
//! and each p50 ratio paired per round: the median over rounds of the ratio
//! of the two cases' block medians, with the quartiles of those ratios.
//!
//! Alternatives:
//! - `wsdrain idle (task)`: `Client::close()` called from a tokio task;
//! - `wsdrain idle (block_on)`: called from `Runtime::block_on` on a
//!   non-worker thread (like `#[tokio::main]`'s body);
//! - `plain idle (task)`: token + Close frame + join, from a task;
//! - `plain+release idle (task)`: the same, and the sink dropped inside the
//!   timing (the socket's fd closed): what the drain barrier includes, as
//!   its tasks own the connection and exit before `close()` returns;
//! - `wsdrain load (task)` / `plain load (task)` / `plain+release load
//!   (task)`: the same under load.
//!
//! Run: `cargo bench --bench close`.

#[path = "support/close_alts.rs"]
mod alts;
mod support;

use std::time::Duration;

use alts::{Load, plain_close, wsdrain_close};
use criterion::Criterion;
use support::{BenchServer, Mode, fmt_dur, percentiles, ratio, size};
use tokio::runtime::Runtime;

#[derive(Clone, Copy)]
enum Alt {
    WsdrainTask,
    WsdrainBlockOn,
    PlainTask,
    PlainTaskRelease,
}

struct Servers {
    idle: BenchServer,
    flood: BenchServer,
}

fn sample(rt: &Runtime, servers: &Servers, alt: Alt, load: Load) -> Duration {
    let server = match load {
        Load::Idle => &servers.idle,
        Load::Receiving => &servers.flood,
    };
    match alt {
        Alt::WsdrainTask => rt
            .block_on(rt.spawn(wsdrain_close(server.base_url(), load)))
            .unwrap(),
        Alt::WsdrainBlockOn => rt.block_on(wsdrain_close(server.base_url(), load)),
        Alt::PlainTask => rt
            .block_on(rt.spawn(plain_close(server.ws_url(), load, false)))
            .unwrap(),
        Alt::PlainTaskRelease => rt
            .block_on(rt.spawn(plain_close(server.ws_url(), load, true)))
            .unwrap(),
    }
}

fn total(rt: &Runtime, servers: &Servers, alt: Alt, load: Load, iters: u64) -> Duration {
    (0..iters).map(|_| sample(rt, servers, alt, load)).sum()
}

fn main() {
    // Each sample spends most of its wall time in the (untimed) connection
    // and settling: keep criterion's timed budget small.
    let mut c: Criterion = criterion::Criterion::default()
        .warm_up_time(Duration::from_millis(50))
        .measurement_time(Duration::from_millis(100))
        .sample_size(10)
        .configure_from_args();
    let rt = support::client_runtime();
    let servers = Servers {
        idle: BenchServer::start(Mode::Idle),
        flood: BenchServer::start(Mode::Flood {
            frame: support::small_message().into(),
        }),
    };

    let cases: [(&str, Alt, Load); 7] = [
        ("wsdrain idle (task)", Alt::WsdrainTask, Load::Idle),
        ("wsdrain idle (block_on)", Alt::WsdrainBlockOn, Load::Idle),
        ("plain idle (task)", Alt::PlainTask, Load::Idle),
        (
            "plain+release idle (task)",
            Alt::PlainTaskRelease,
            Load::Idle,
        ),
        ("wsdrain load (task)", Alt::WsdrainTask, Load::Receiving),
        ("plain load (task)", Alt::PlainTask, Load::Receiving),
        (
            "plain+release load (task)",
            Alt::PlainTaskRelease,
            Load::Receiving,
        ),
    ];

    let mut g = c.benchmark_group("close");
    for (name, alt, load) in cases {
        g.bench_function(name, |b| {
            b.iter_custom(|n| total(&rt, &servers, alt, load, n))
        });
    }
    g.finish();
    c.final_summary();

    // Interleaved rounds (`block_rounds`): the ratios are paired per round
    // and the percentiles pool every sample. This VM's close latency
    // switches between two states seconds apart (plain idle p50 about 11 us
    // in one, 23 us in the other); with long blocks and pooled medians, one
    // case could land in the fast state and another in the slow one, which
    // read as a 2x gap that no code made. Idle cases are compared with idle
    // ones and run apart from the flooding server's connections, after a
    // pause that lets it wind down.
    let (rounds, block) = (size(40, 2) as usize, size(10, 2) as usize);
    let (mut samples, m) = support::block_rounds(
        rounds,
        &[&[0, 1, 2, 3], &[4, 5, 6]],
        Duration::from_millis(20),
        |i| {
            let (_, alt, load) = cases[i];
            (0..block)
                .map(|_| sample(&rt, &servers, alt, load))
                .collect()
        },
    );
    let mut p = Vec::new();
    for ((name, _, _), s) in cases.iter().zip(samples.iter_mut()) {
        let (p50, p99, max) = percentiles(s);
        println!(
            "[summary] close/{name}: p50 {} p99 {} max {} ({} samples in {rounds} interleaved rounds; load {})",
            fmt_dur(p50),
            fmt_dur(p99),
            fmt_dur(max),
            s.len(),
            support::load()
        );
        p.push(p99.as_nanos() as f64);
    }
    m.print_ratio("p50 wsdrain idle", 0, "plain idle", 2);
    m.print_ratio("p50 wsdrain load", 4, "plain load", 5);
    m.print_ratio("p50 wsdrain idle", 0, "plain+release idle", 3);
    m.print_ratio("p50 wsdrain load", 4, "plain+release load", 6);
    m.print_ratio("p50 plain+release idle", 3, "plain idle", 2);
    m.print_ratio("p50 plain+release load", 6, "plain load", 5);
    // A p99 cannot be paired per block of ten: pooled.
    ratio("p99 (pooled) wsdrain idle", p[0], "plain idle", p[2]);
    ratio("p99 (pooled) wsdrain load", p[4], "plain load", p[5]);
}

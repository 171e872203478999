//! The release cost of the probe's bookkeeping for one client task: what
//! every spawn, start and exit of a reader, writer or manager task pays.
//!
//! - `probe/bookkeeping`: `Probe::spawned` + `started` + `exited` for one
//!   task, with one other task live (a stream has two), on one thread.
//! - `probe/task`: a task spawned on the client runtime and run to its
//!   exit, with that bookkeeping, against the same task without it
//!   (batches of 256, as in `facade/spawn`).
//!
//! Before the probe split (commit 13ad6bf) every one of those calls took a
//! `std::sync::Mutex` and kept a per-task list, in release too; since, a
//! release build keeps two atomic counters and nothing else (the oracles
//! exist in model, debug and test builds only). The figures before and
//! after are in docs/performance.md.
//!
//! Run: `cargo bench --bench probe`.

mod support;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use support::{Alt, interleaved, size};
use wsdrain::probe::{Probe, Role};

const BATCH: u64 = 256;

fn bookkeeping(iters: u64) -> Duration {
    let probe = Probe::new("client");
    let other = probe.spawned(Role::Writer, Some(1));
    let probe = black_box(&probe);
    let start = Instant::now();
    for _ in 0..iters {
        let ticket = probe.spawned(Role::Reader, Some(1));
        probe.started(ticket);
        probe.exited(ticket);
    }
    let elapsed = start.elapsed();
    probe.exited(other);
    black_box(probe.live_tasks());
    elapsed
}

/// `iters` batches of `BATCH` tasks, each with (or without) the probe's
/// bookkeeping, each batch awaited to completion.
fn tasks(rt: &tokio::runtime::Runtime, iters: u64, probed: bool) -> Duration {
    let probe = Arc::new(Probe::new("client"));
    support::spawn_batches(rt, iters, BATCH, move |finished| {
        if probed {
            let probe = probe.clone();
            let ticket = probe.spawned(Role::Reader, Some(1));
            wsdrain::sync::spawn(async move {
                probe.started(ticket);
                finished.signal();
                probe.exited(ticket);
            });
        } else {
            wsdrain::sync::spawn(async move { finished.signal() });
        }
    })
}

fn main() {
    let mut c: Criterion = support::criterion(Duration::from_secs(2), 30);
    let rt = support::client_runtime();

    let mut g = c.benchmark_group("probe/bookkeeping");
    g.throughput(Throughput::Elements(1));
    g.bench_function("spawned+started+exited", |b| b.iter_custom(bookkeeping));
    g.finish();

    let mut g = c.benchmark_group("probe/task");
    g.throughput(Throughput::Elements(BATCH));
    g.bench_function("spawn+exit x256, probed", |b| {
        b.iter_custom(|n| tasks(&rt, n, true))
    });
    g.bench_function("spawn+exit x256, bare", |b| {
        b.iter_custom(|n| tasks(&rt, n, false))
    });
    g.finish();
    c.final_summary();

    let rounds = size(21, 2) as usize;
    println!("load average: {}", support::load());
    let m = interleaved(
        "probe/bookkeeping (spawned+started+exited, one task)",
        size(2_000_000, 1000),
        rounds,
        &mut [Alt::new("probe", bookkeeping)],
    );
    println!(
        "probe bookkeeping per task: {}",
        support::fmt_ns(m.median(0))
    );
    let m = interleaved(
        "probe/task (batch of 256 tasks spawned and run to exit)",
        size(400, 2),
        rounds,
        &mut [
            Alt::new("probed", |n| tasks(&rt, n, true)),
            Alt::new("bare", |n| tasks(&rt, n, false)),
        ],
    );
    m.print_ratio("probed", 0, "bare", 1);
    println!(
        "per task: probed {}, bare {}",
        support::fmt_ns(m.median(0) / BATCH as f64),
        support::fmt_ns(m.median(1) / BATCH as f64)
    );
}

//! `wsdrain::sync::WaitGroup` against what users would pick instead:
//! `crossbeam_utils::sync::WaitGroup` (clone/drop) and
//! `tokio_util::task::TaskTracker` (token/drop).
//!
//! - `uncontended`: one add/done pair (clone/drop, token/drop) on one thread.
//! - `contended_pairs`: two threads doing pairs on the same group at once
//!   (the counter's cache line bounces between the cores).
//! - `fan_in_1000`: 1,000 tokio tasks each finish (done/drop) while one
//!   waiter waits for all of them; the whole round trip per 1,000 tasks,
//!   spawning included.
//!
//! Run: `cargo bench --bench waitgroup`.

mod support;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use support::{Alt, interleaved, size};
use tokio_util::task::TaskTracker;
use wsdrain::sync::WaitGroup;

type CbWaitGroup = crossbeam_utils::sync::WaitGroup;

const FAN_IN: u64 = 1000;

// --- uncontended: one pair per op --------------------------------------------

fn wsdrain_pair(iters: u64) -> Duration {
    let wg = WaitGroup::new();
    let wg = black_box(&wg);
    let start = Instant::now();
    for _ in 0..iters {
        wg.add(1);
        wg.done();
    }
    start.elapsed()
}

fn crossbeam_pair(iters: u64) -> Duration {
    let wg = CbWaitGroup::new();
    let wg = black_box(&wg);
    let start = Instant::now();
    for _ in 0..iters {
        drop(black_box(wg.clone()));
    }
    start.elapsed()
}

fn tracker_pair(iters: u64) -> Duration {
    let tracker = TaskTracker::new();
    let tracker = black_box(&tracker);
    let start = Instant::now();
    for _ in 0..iters {
        drop(black_box(tracker.token()));
    }
    start.elapsed()
}

// --- contended: two threads, pairs on one group --------------------------------

/// Run `op` `iters` times on each of two threads at once (released together
/// by a barrier); the time until both are done, per op of one thread.
fn on_two_threads<S: Sync>(shared: &S, iters: u64, op: impl Fn(&S) + Sync) -> Duration {
    let barrier = std::sync::Barrier::new(3);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                barrier.wait();
                for _ in 0..iters {
                    op(shared);
                }
                barrier.wait();
            });
        }
        barrier.wait();
        let start = Instant::now();
        barrier.wait();
        start.elapsed()
    })
}

fn wsdrain_contended(iters: u64) -> Duration {
    on_two_threads(&WaitGroup::new(), iters, |wg| {
        wg.add(1);
        wg.done();
    })
}

fn crossbeam_contended(iters: u64) -> Duration {
    on_two_threads(&CbWaitGroup::new(), iters, |wg| drop(black_box(wg.clone())))
}

fn tracker_contended(iters: u64) -> Duration {
    on_two_threads(&TaskTracker::new(), iters, |t| drop(black_box(t.token())))
}

// --- fan-in: 1,000 tasks finish while one waits --------------------------------

fn wsdrain_fan_in(rt: &tokio::runtime::Runtime, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        let wg = Arc::new(WaitGroup::new());
        for _ in 0..FAN_IN {
            wg.add(1);
            let wg = wg.clone();
            rt.spawn(async move { wg.done() });
        }
        rt.block_on(wg.wait());
    }
    start.elapsed()
}

fn crossbeam_fan_in(rt: &tokio::runtime::Runtime, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        let wg = CbWaitGroup::new();
        for _ in 0..FAN_IN {
            let token = wg.clone();
            rt.spawn(async move { drop(token) });
        }
        // Blocks this (non-runtime) thread, as crossbeam's wait does.
        wg.wait();
    }
    start.elapsed()
}

fn tracker_fan_in(rt: &tokio::runtime::Runtime, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        let tracker = TaskTracker::new();
        for _ in 0..FAN_IN {
            let token = tracker.token();
            rt.spawn(async move { drop(token) });
        }
        tracker.close();
        rt.block_on(tracker.wait());
    }
    start.elapsed()
}

fn main() {
    let mut c: Criterion = support::criterion(Duration::from_secs(2), 30);
    let rt = support::client_runtime();

    let mut g = c.benchmark_group("waitgroup/uncontended");
    g.throughput(Throughput::Elements(1));
    g.bench_function("wsdrain add+done", |b| b.iter_custom(wsdrain_pair));
    g.bench_function("crossbeam clone+drop", |b| b.iter_custom(crossbeam_pair));
    g.bench_function("tokio_util token+drop", |b| b.iter_custom(tracker_pair));
    g.finish();

    let mut g = c.benchmark_group("waitgroup/contended_pairs");
    g.throughput(Throughput::Elements(1));
    g.bench_function("wsdrain add+done", |b| b.iter_custom(wsdrain_contended));
    g.bench_function("crossbeam clone+drop", |b| {
        b.iter_custom(crossbeam_contended)
    });
    g.bench_function("tokio_util token+drop", |b| {
        b.iter_custom(tracker_contended)
    });
    g.finish();

    let mut g = c.benchmark_group("waitgroup/fan_in");
    g.throughput(Throughput::Elements(FAN_IN));
    g.bench_function(BenchmarkId::new("wsdrain", FAN_IN), |b| {
        b.iter_custom(|n| wsdrain_fan_in(&rt, n))
    });
    g.bench_function(BenchmarkId::new("crossbeam", FAN_IN), |b| {
        b.iter_custom(|n| crossbeam_fan_in(&rt, n))
    });
    g.bench_function(BenchmarkId::new("tokio_util", FAN_IN), |b| {
        b.iter_custom(|n| tracker_fan_in(&rt, n))
    });
    g.finish();
    c.final_summary();

    // The summary: std::time, interleaved rounds, medians.
    let rounds = size(21, 2) as usize;
    let m = interleaved(
        "waitgroup/uncontended (one pair)",
        size(2_000_000, 1000),
        rounds,
        &mut [
            Alt::new("wsdrain", wsdrain_pair),
            Alt::new("crossbeam", crossbeam_pair),
            Alt::new("tokio_util", tracker_pair),
        ],
    );
    m.print_ratio("wsdrain", 0, "crossbeam", 1);
    m.print_ratio("wsdrain", 0, "tokio_util", 2);

    let m = interleaved(
        "waitgroup/contended_pairs (2 threads, per pair of one thread)",
        size(500_000, 1000),
        rounds,
        &mut [
            Alt::new("wsdrain", wsdrain_contended),
            Alt::new("crossbeam", crossbeam_contended),
            Alt::new("tokio_util", tracker_contended),
        ],
    );
    m.print_ratio("wsdrain", 0, "crossbeam", 1);
    m.print_ratio("wsdrain", 0, "tokio_util", 2);

    let m = interleaved(
        "waitgroup/fan_in (1,000 tasks finish while one waits; per round)",
        size(20, 1),
        rounds,
        &mut [
            Alt::new("wsdrain", |n| wsdrain_fan_in(&rt, n)),
            Alt::new("crossbeam", |n| crossbeam_fan_in(&rt, n)),
            Alt::new("tokio_util", |n| tracker_fan_in(&rt, n)),
        ],
    );
    m.print_ratio("wsdrain", 0, "crossbeam", 1);
    m.print_ratio("wsdrain", 0, "tokio_util", 2);
}

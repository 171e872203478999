//! The cost of the sync facade in the real build: each facade call against
//! the direct std/tokio call it stands for. Expected ratio: 1.0 within noise
//! (the leaves are type aliases or `#[inline]` newtypes).
//!
//! - `mutex`: `wsdrain::sync::Mutex::lock` vs `std::sync::Mutex::lock().unwrap()`
//!   (lock, increment, unlock; uncontended).
//! - `current_task`: `wsdrain::sync::current_task()` vs `tokio::task::try_id()`
//!   (what `Client::close` asks on every call), inside a task.
//! - `spawn`: `wsdrain::sync::spawn` vs `tokio::spawn` (a batch of 256 tasks,
//!   spawned and run to completion).
//!
//! Not measured: the atomics. In the real build `wsdrain::sync::atomic::*`
//! *are* std's types (a `pub use`), so a ratio could only print 1.00.
//!
//! Run: `cargo bench --bench facade`.

mod support;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use support::{Alt, interleaved, size};

const SPAWN_BATCH: u64 = 256;

fn facade_mutex(iters: u64) -> Duration {
    let m = wsdrain::sync::Mutex::new(0u64);
    let m = black_box(&m);
    let start = Instant::now();
    for _ in 0..iters {
        *m.lock() += 1;
    }
    let elapsed = start.elapsed();
    black_box(*m.lock());
    elapsed
}

fn std_mutex(iters: u64) -> Duration {
    let m = std::sync::Mutex::new(0u64);
    let m = black_box(&m);
    let start = Instant::now();
    for _ in 0..iters {
        *m.lock().unwrap() += 1;
    }
    let elapsed = start.elapsed();
    black_box(*m.lock().unwrap());
    elapsed
}

fn facade_current_task(rt: &tokio::runtime::Runtime, iters: u64) -> Duration {
    rt.block_on(async move {
        tokio::spawn(async move {
            let start = Instant::now();
            for _ in 0..iters {
                black_box(wsdrain::sync::current_task());
            }
            start.elapsed()
        })
        .await
        .unwrap()
    })
}

fn tokio_current_task(rt: &tokio::runtime::Runtime, iters: u64) -> Duration {
    rt.block_on(async move {
        tokio::spawn(async move {
            let start = Instant::now();
            for _ in 0..iters {
                black_box(tokio::task::try_id());
            }
            start.elapsed()
        })
        .await
        .unwrap()
    })
}

/// `iters` batches of `SPAWN_BATCH` tasks, each batch awaited to completion.
fn spawn_batches(rt: &tokio::runtime::Runtime, iters: u64, facade: bool) -> Duration {
    support::spawn_batches(rt, iters, SPAWN_BATCH, move |finished| {
        let task = async move { finished.signal() };
        if facade {
            wsdrain::sync::spawn(task);
        } else {
            drop(tokio::spawn(task));
        }
    })
}

fn main() {
    let mut c: Criterion = support::criterion(Duration::from_secs(2), 30);
    let rt = support::client_runtime();

    let mut g = c.benchmark_group("facade/mutex");
    g.throughput(Throughput::Elements(1));
    g.bench_function("wsdrain::sync::Mutex::lock", |b| {
        b.iter_custom(facade_mutex)
    });
    g.bench_function("std::sync::Mutex::lock", |b| b.iter_custom(std_mutex));
    g.finish();

    let mut g = c.benchmark_group("facade/current_task");
    g.throughput(Throughput::Elements(1));
    g.bench_function("wsdrain::sync::current_task", |b| {
        b.iter_custom(|n| facade_current_task(&rt, n))
    });
    g.bench_function("tokio::task::try_id", |b| {
        b.iter_custom(|n| tokio_current_task(&rt, n))
    });
    g.finish();

    let mut g = c.benchmark_group("facade/spawn");
    g.throughput(Throughput::Elements(SPAWN_BATCH));
    g.bench_function("wsdrain::sync::spawn x256", |b| {
        b.iter_custom(|n| spawn_batches(&rt, n, true))
    });
    g.bench_function("tokio::spawn x256", |b| {
        b.iter_custom(|n| spawn_batches(&rt, n, false))
    });
    g.finish();
    c.final_summary();

    let rounds = size(21, 2) as usize;
    let m = interleaved(
        "facade/mutex (lock, +1, unlock)",
        size(5_000_000, 1000),
        rounds,
        &mut [Alt::new("facade", facade_mutex), Alt::new("std", std_mutex)],
    );
    m.print_ratio("facade", 0, "std", 1);
    let m = interleaved(
        "facade/current_task (in a task)",
        size(5_000_000, 1000),
        rounds,
        &mut [
            Alt::new("facade", |n| facade_current_task(&rt, n)),
            Alt::new("tokio", |n| tokio_current_task(&rt, n)),
        ],
    );
    m.print_ratio("facade", 0, "tokio", 1);
    let m = interleaved(
        "facade/spawn (batch of 256 tasks, run to completion)",
        size(400, 2),
        rounds,
        &mut [
            Alt::new("facade", |n| spawn_batches(&rt, n, true)),
            Alt::new("tokio", |n| spawn_batches(&rt, n, false)),
        ],
    );
    m.print_ratio("facade", 0, "tokio", 1);
}

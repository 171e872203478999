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
//! - `queue hand-off`: not a facade-to-direct pair but the send path's
//!   hand-off between the sending task and the stream's writer: 1,000 items
//!   through the facade's `Queue` (capacity 64, taken up to 64 at a time
//!   with `recv_many`, as the writer does) against tokio's `mpsc` (same
//!   capacity, `recv_many`), with both tasks on one thread, on two threads
//!   (every hand-off crosses cores), and on the client's 2-worker runtime.
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

/// Items per hand-off op.
const HANDOFF: u64 = 1000;
/// The stream input queue's default capacity, and the writer's batch.
const QUEUE: usize = 64;

#[derive(Clone, Copy)]
enum Place {
    /// Both tasks on one current-thread runtime.
    OneThread,
    /// Producer and consumer each on its own thread and runtime.
    TwoThreads,
    /// Both spawned on the client's 2-worker runtime.
    Workers,
}

/// One side of a channel: the facade's `Queue` or tokio's `mpsc`.
enum Chan {
    Facade(std::sync::Arc<wsdrain::sync::Queue<u64>>),
    Tokio(
        tokio::sync::mpsc::Sender<u64>,
        Option<tokio::sync::mpsc::Receiver<u64>>,
    ),
}

impl Chan {
    fn new(facade: bool) -> Self {
        if facade {
            Chan::Facade(std::sync::Arc::new(wsdrain::sync::Queue::new(QUEUE)))
        } else {
            let (tx, rx) = tokio::sync::mpsc::channel(QUEUE);
            Chan::Tokio(tx, Some(rx))
        }
    }

    /// The consumer: takes `n` items, up to `QUEUE` at a time.
    fn consumer(&mut self, n: u64) -> impl std::future::Future<Output = Instant> + Send + 'static {
        let (queue, rx) = match self {
            Chan::Facade(q) => (Some(q.clone()), None),
            Chan::Tokio(_, rx) => (None, rx.take()),
        };
        async move {
            let mut buf = Vec::with_capacity(QUEUE);
            let mut got = 0;
            let mut rx = rx;
            while got < n {
                buf.clear();
                got += match (&queue, &mut rx) {
                    (Some(q), _) => q.recv_many(&mut buf, QUEUE).await,
                    (None, Some(rx)) => rx.recv_many(&mut buf, QUEUE).await,
                    (None, None) => unreachable!(),
                } as u64;
                black_box(&buf);
            }
            Instant::now()
        }
    }

    /// The producer: sends `n` items, waiting for room.
    fn producer(&self, n: u64) -> impl std::future::Future<Output = ()> + Send + 'static {
        let (queue, tx) = match self {
            Chan::Facade(q) => (Some(q.clone()), None),
            Chan::Tokio(tx, _) => (None, Some(tx.clone())),
        };
        async move {
            for i in 0..n {
                match (&queue, &tx) {
                    (Some(q), _) => q.send(i).await.unwrap(),
                    (None, Some(tx)) => tx.send(i).await.unwrap(),
                    (None, None) => unreachable!(),
                }
            }
        }
    }
}

/// `iters` ops of `HANDOFF` items from a producer task to a consumer task.
fn queue_handoff(rt: &tokio::runtime::Runtime, place: Place, facade: bool, iters: u64) -> Duration {
    let n = iters * HANDOFF;
    let mut chan = Chan::new(facade);
    let consumer = chan.consumer(n);
    let producer = chan.producer(n);
    match place {
        Place::OneThread => {
            let local = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            local.block_on(async move {
                let consumer = tokio::spawn(consumer);
                let start = Instant::now();
                producer.await;
                consumer.await.unwrap() - start
            })
        }
        Place::TwoThreads => {
            let ready = std::sync::Arc::new(std::sync::Barrier::new(2));
            let thread = std::thread::spawn({
                let ready = ready.clone();
                move || {
                    let local = tokio::runtime::Builder::new_current_thread()
                        .build()
                        .unwrap();
                    local.block_on(async move {
                        ready.wait();
                        consumer.await
                    })
                }
            });
            let local = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            ready.wait();
            let start = Instant::now();
            local.block_on(producer);
            thread.join().unwrap() - start
        }
        Place::Workers => rt
            .block_on(rt.spawn(async move {
                let consumer = tokio::spawn(consumer);
                let start = Instant::now();
                producer.await;
                consumer.await.unwrap() - start
            }))
            .unwrap(),
    }
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
    let m = interleaved(
        "facade/queue hand-off (per item, 1,000 items per op, capacity 64, recv_many 64)",
        size(20, 1),
        rounds,
        &mut [
            Alt::new("Queue one thread", |n| {
                queue_handoff(&rt, Place::OneThread, true, n) / HANDOFF as u32
            }),
            Alt::new("Queue two threads", |n| {
                queue_handoff(&rt, Place::TwoThreads, true, n) / HANDOFF as u32
            }),
            Alt::new("Queue 2 workers", |n| {
                queue_handoff(&rt, Place::Workers, true, n) / HANDOFF as u32
            }),
            Alt::new("mpsc one thread", |n| {
                queue_handoff(&rt, Place::OneThread, false, n) / HANDOFF as u32
            }),
            Alt::new("mpsc two threads", |n| {
                queue_handoff(&rt, Place::TwoThreads, false, n) / HANDOFF as u32
            }),
            Alt::new("mpsc 2 workers", |n| {
                queue_handoff(&rt, Place::Workers, false, n) / HANDOFF as u32
            }),
        ],
    );
    m.print_ratio("Queue two threads", 1, "Queue one thread", 0);
    m.print_ratio("Queue 2 workers", 2, "Queue one thread", 0);
    m.print_ratio("Queue one thread", 0, "mpsc one thread", 3);
    m.print_ratio("Queue two threads", 1, "mpsc two threads", 4);
    m.print_ratio("Queue 2 workers", 2, "mpsc 2 workers", 5);
}

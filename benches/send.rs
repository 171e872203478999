//! Send path: `WorkspaceStream::write_shell_input` against a plain
//! tokio-tungstenite writer sending the same encoded messages
//! (`Envelope::new(ShellInput { data }).encode()`, 64 bytes of data) to the
//! same loopback server, which timestamps the arrival of every frame.
//!
//! - `throughput`: one op = a batch of 1,000 messages, from the first send
//!   until the server has received the last one.
//! - `latency`: one message at a time, from the call until the server has
//!   received it (one process, one monotonic clock); p50/p99 in the summary,
//!   from 40 interleaved rounds of 100 samples each, the p50 ratio paired
//!   per round.
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

use std::time::Duration;

use criterion::{Criterion, Throughput};
use support::{Alt, fmt_dur, interleaved, percentiles, ratio, size};

#[path = "support/send_alts.rs"]
mod alts;

use alts::{BATCH, Connections, How, connect};

fn main() {
    let mut c: Criterion = support::criterion(Duration::from_secs(3), 20);
    let rt = support::client_runtime();

    let Connections {
        client,
        mut wsdrain,
        plain,
        mut tasks,
        servers: _servers,
    } = connect(&rt);
    // Two alternatives share this connection: a RefCell lends it to each.
    let plain = std::cell::RefCell::new(plain);

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

    // Latency: interleaved rounds of a block of each (`block_rounds`); the
    // p50 ratio is paired per round, as the close bench's, since this VM's
    // latency switches between states faster than a long block; the
    // percentiles pool every sample.
    let rounds = size(40, 2) as usize;
    let per_block = size(100, 20);
    let (mut samples, m) = support::block_rounds(rounds, &[&[0, 1]], Duration::ZERO, |i| {
        if i == 0 {
            wsdrain.latencies(&rt, per_block)
        } else {
            plain.borrow_mut().latencies(&rt, per_block)
        }
    });
    let (w50, w99, wmax) = percentiles(&mut samples[0]);
    let (p50, p99, pmax) = percentiles(&mut samples[1]);
    println!(
        "[summary] send/latency ({} samples each in {rounds} interleaved rounds; load {}): wsdrain p50 {} p99 {} max {}; plain_send p50 {} p99 {} max {}",
        samples[0].len(),
        support::load(),
        fmt_dur(w50),
        fmt_dur(w99),
        fmt_dur(wmax),
        fmt_dur(p50),
        fmt_dur(p99),
        fmt_dur(pmax)
    );
    m.print_ratio("p50 wsdrain", 0, "plain_send", 1);
    // A p99 cannot be paired per block of a hundred: pooled.
    ratio(
        "p99 (pooled) wsdrain",
        w99.as_nanos() as f64,
        "plain_send",
        p99.as_nanos() as f64,
    );

    rt.block_on(client.close());
    assert_eq!(client.live_tasks(), 0);
}

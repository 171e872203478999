//! The send bench's throughput case alone, for profiling (issue 12).
//!
//! `cargo run --release --example send_small -- ALT BATCHES` runs one
//! alternative (`wsdrain`, `batched`: `wsdrain` and `plain_batched` in
//! benches/send.rs; `tasks`: `plain_tasks`, a plain writer task built as wsdrain's is) for BATCHES batches of 1,000 `shell_input` messages (64 B
//! of data), after one warm-up batch, and prints the time per batch and per
//! message. Each batch is sent from a task on the client's 2-worker runtime
//! and ends when the server has received its last message, as in the bench.
//! `ALT` = `all` times all three interleaved (21 rounds).

#[path = "../benches/support/mod.rs"]
mod support;

// The throughput case only: the latency half of the bench goes unused.
#[allow(dead_code)]
#[path = "../benches/support/send_alts.rs"]
mod alts;

use std::time::Duration;

use alts::{BATCH, Connections, How, connect};
use support::{Alt, interleaved};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let alt = args.first().map(String::as_str).unwrap_or("all");
    let batches: u64 = args.get(1).map_or(20, |s| s.parse().unwrap());
    let rt = support::client_runtime();

    let Connections {
        client,
        mut wsdrain,
        plain: mut batched,
        mut tasks,
        servers: _servers,
    } = connect(&rt);

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
            wsdrain.throughput(&rt, How::Wsdrain, 1);
            per("wsdrain", wsdrain.throughput(&rt, How::Wsdrain, batches));
        }
        "batched" => {
            batched.throughput(&rt, How::PlainBatched, 1);
            per(
                "plain_batched",
                batched.throughput(&rt, How::PlainBatched, batches),
            );
        }
        "tasks" => {
            tasks.throughput(&rt, How::PlainTasks, 1);
            per(
                "plain_tasks",
                tasks.throughput(&rt, How::PlainTasks, batches),
            );
        }
        _ => {
            let m = interleaved(
                "send/throughput (per batch of 1,000)",
                batches,
                21,
                &mut [
                    Alt::new("wsdrain", |n| wsdrain.throughput(&rt, How::Wsdrain, n)),
                    Alt::new("plain_batched", |n| {
                        batched.throughput(&rt, How::PlainBatched, n)
                    }),
                    Alt::new("plain_tasks", |n| tasks.throughput(&rt, How::PlainTasks, n)),
                ],
            );
            m.print_ratio("wsdrain", 0, "plain_batched", 1);
            m.print_ratio("wsdrain", 0, "plain_tasks", 2);
            m.print_ratio("plain_tasks", 2, "plain_batched", 1);
        }
    }
    rt.block_on(client.close());
}

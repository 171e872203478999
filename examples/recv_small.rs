//! The receive bench's small case alone, for profiling (issue 12).
//!
//! `cargo run --release --example recv_small -- ALT N BURSTS` runs one
//! alternative (`wsdrain`, `split`, `tasks`: as in benches/receive.rs) for BURSTS bursts of N small messages,
//! after one warm-up burst, and prints the time per burst and per message.
//! `ALT` = `all` times every alternative interleaved (21 rounds).

#[path = "../benches/support/receive_alts.rs"]
mod alts;
#[path = "../benches/support/mod.rs"]
mod support;

use std::time::Duration;

use alts::{PlainSplit, PlainTasks, Wsdrain};
use support::{Alt, BenchServer, Mode, interleaved};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let alt = args.first().map(String::as_str).unwrap_or("all");
    let count: usize = args.get(1).map_or(10_000, |s| s.parse().unwrap());
    let bursts: u64 = args.get(2).map_or(20, |s| s.parse().unwrap());
    let rt = support::client_runtime();
    let server = BenchServer::start(Mode::BlastOnRequest {
        frame: support::small_message().into(),
        count,
    });
    let mut wsdrain = Wsdrain::connect(&rt, &server, count);
    let mut split = PlainSplit::connect(&rt, &server, count);
    let mut tasks = PlainTasks::connect(&rt, &server, count);
    let per = |name: &str, t: Duration| {
        let ns = t.as_nanos() as f64 / bursts as f64;
        println!(
            "{name}: {} per burst, {} per message",
            support::fmt_ns(ns),
            support::fmt_ns(ns / count as f64)
        );
    };
    match alt {
        "wsdrain" => {
            wsdrain.run(&rt, 1);
            per("wsdrain", wsdrain.run(&rt, bursts));
        }
        "split" => {
            split.run(&rt, 1);
            per("plain_split", split.run(&rt, bursts));
        }
        "tasks" => {
            tasks.run(&rt, 1);
            per("plain_tasks", tasks.run(&rt, bursts));
        }
        _ => {
            let m = interleaved(
                &format!("receive/small ({count} msgs per op)"),
                bursts,
                21,
                &mut [
                    Alt::new("wsdrain", |n| wsdrain.run(&rt, n)),
                    Alt::new("plain_split", |n| split.run(&rt, n)),
                    Alt::new("plain_tasks", |n| tasks.run(&rt, n)),
                ],
            );
            m.print_throughput_ratio("wsdrain", 0, "plain_split", 1);
            m.print_throughput_ratio("wsdrain", 0, "plain_tasks", 2);
        }
    }
    wsdrain.close(&rt);
    split.close(&rt);
    tasks.close(&rt);
}

//! The close bench's idle case for one alternative alone, for profiling
//! (issue 12): `cargo run --release --example close_one -- ALT N` opens a
//! stream, lets it settle and closes it, N times, and prints the median
//! close time. `ALT` is `wsdrain` (`Client::close()` from a task), `plain`
//! (token + Close frame + join) or `release` (plain, and the socket closed
//! inside the timing), as in benches/close.rs; `load` after `ALT` runs the
//! bench's under-load case instead.

#[path = "../benches/support/close_alts.rs"]
mod alts;
#[path = "../benches/support/mod.rs"]
mod support;

use std::time::Duration;

use alts::{Load, plain_close, wsdrain_close};
use support::{BenchServer, Mode};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let alt = args.first().map(String::as_str).unwrap_or("wsdrain");
    let load = if args.iter().any(|a| a == "load") {
        Load::Receiving
    } else {
        Load::Idle
    };
    let count: usize = args
        .iter()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1000);
    let rt = support::client_runtime();
    let server = BenchServer::start(match load {
        Load::Idle => Mode::Idle,
        Load::Receiving => Mode::Flood {
            frame: support::small_message().into(),
        },
    });
    let mut times: Vec<Duration> = (0..count)
        .map(|_| match alt {
            "wsdrain" => rt
                .block_on(rt.spawn(wsdrain_close(server.base_url(), load)))
                .unwrap(),
            "plain" => rt
                .block_on(rt.spawn(plain_close(server.ws_url(), load, false)))
                .unwrap(),
            "release" => rt
                .block_on(rt.spawn(plain_close(server.ws_url(), load, true)))
                .unwrap(),
            other => panic!("unknown alternative {other:?}: wsdrain, plain or release"),
        })
        .collect();
    let (p50, p99, max) = support::percentiles(&mut times);
    println!(
        "{alt}: p50 {} p99 {} max {} ({count} closes)",
        support::fmt_dur(p50),
        support::fmt_dur(p99),
        support::fmt_dur(max)
    );
}

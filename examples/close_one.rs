//! The close bench's cases for one load, for profiling (issue 12):
//! `cargo run --release --example close_one -- ALT N` opens a stream, lets
//! it settle and closes it, N times, and prints the close time's
//! percentiles. `ALT` is `wsdrain` (`Client::close()` from a task), `plain`
//! (token + Close frame + join) or `release` (plain, and the socket closed
//! inside the timing), as in benches/close.rs; `all` runs the three in
//! interleaved rounds (N closes of each, in blocks of ten) and prints the
//! p50 ratios paired per round, as the bench does. `load` after `ALT` runs
//! the bench's under-load case instead.

#[path = "../benches/support/close_alts.rs"]
mod alts;
#[path = "../benches/support/mod.rs"]
mod support;

use std::time::Duration;

use alts::{Load, plain_close, wsdrain_close};
use support::{BenchServer, Mode};
use tokio::runtime::Runtime;

const ALTS: [&str; 3] = ["wsdrain", "plain", "release"];
const BLOCK: usize = 10;

fn close_once(rt: &Runtime, server: &BenchServer, alt: &str, load: Load) -> Duration {
    match alt {
        "wsdrain" => rt
            .block_on(rt.spawn(wsdrain_close(server.base_url(), load)))
            .unwrap(),
        "plain" => rt
            .block_on(rt.spawn(plain_close(server.ws_url(), load, false)))
            .unwrap(),
        "release" => rt
            .block_on(rt.spawn(plain_close(server.ws_url(), load, true)))
            .unwrap(),
        other => panic!("unknown alternative {other:?}: wsdrain, plain, release or all"),
    }
}

fn print_percentiles(alt: &str, times: &mut [Duration]) {
    let (p50, p99, max) = support::percentiles(times);
    println!(
        "{alt}: p50 {} p99 {} max {} ({} closes)",
        support::fmt_dur(p50),
        support::fmt_dur(p99),
        support::fmt_dur(max),
        times.len()
    );
}

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
    if alt != "all" {
        let mut times: Vec<Duration> = (0..count)
            .map(|_| close_once(&rt, &server, alt, load))
            .collect();
        print_percentiles(alt, &mut times);
        return;
    }
    let (mut times, m) =
        support::block_rounds(count.div_ceil(BLOCK), &[&[0, 1, 2]], Duration::ZERO, |i| {
            (0..BLOCK)
                .map(|_| close_once(&rt, &server, ALTS[i], load))
                .collect()
        });
    for (alt, times) in ALTS.iter().zip(times.iter_mut()) {
        print_percentiles(alt, times);
    }
    m.print_ratio("p50 wsdrain", 0, "plain", 1);
    m.print_ratio("p50 wsdrain", 0, "plain+release", 2);
    m.print_ratio("p50 plain+release", 2, "plain", 1);
}

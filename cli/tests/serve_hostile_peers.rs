//! `wsdrain serve` against hostile or vanished WebSocket peers on raw
//! sockets: a ping flooder that never reads, a client that resets while its
//! shell reads no input, frames that break the protocol.
#![cfg(unix)]

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::*;

/// A peer floods pings and reads nothing. Each ping asks for a pong; they
/// must not pile up in the server's memory (they grew it to 1 GB before).
#[test]
fn ping_flood_from_a_non_reading_peer_keeps_memory_bounded() {
    const FLOOD: usize = 64 << 20;
    let dir = tempfile::tempdir().unwrap();
    // The flooder reads nothing, so the server's next write (a keepalive
    // ping at the latest) waits on it: --write-timeout drops it.
    let serve = Serve::start(dir.path(), &["--write-timeout", "3s"]);
    let (status, _, mut tcp) = upgrade(serve.addr, &serve.auth());
    assert_eq!(status, 101);
    // Let the connection settle (shell started) before the baseline.
    std::thread::sleep(Duration::from_millis(500));
    let baseline = rss_kib(serve.pid());

    let pid = serve.pid();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_kib(pid));
                std::thread::sleep(Duration::from_millis(20));
            }
            peak
        })
    };
    let ping = frame(0x9, &[0x55; 125], true);
    let burst: Vec<u8> = ping
        .iter()
        .copied()
        .cycle()
        .take(ping.len() * 512)
        .collect();
    tcp.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    let start = Instant::now();
    let mut sent = 0;
    let mut ended_by_server = false;
    while sent < FLOOD && start.elapsed() < Duration::from_secs(60) {
        match tcp.write_all(&burst) {
            Ok(()) => sent += burst.len(),
            Err(_) => {
                ended_by_server = true;
                break;
            }
        }
    }
    let took = start.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.join().unwrap();
    let growth = peak.saturating_sub(baseline);
    eprintln!(
        "ping flood: {} MiB of pings in {took:.1?} (server ended it: {ended_by_server}); serve RSS {baseline} KiB before, peak {peak} KiB, growth {growth} KiB",
        sent >> 20
    );
    assert!(
        growth < 24 * 1024,
        "serve grew by {growth} KiB under a ping flood"
    );
    // The flooder is dropped: its unsent data reached the write buffer limit,
    // or the socket took none of it for --write-timeout.
    wait_until("the flooder is dropped", PATIENCE, || {
        serve.stderr().contains("dropping")
    });
}

/// The client sends input its shell does not read (a foreground `sleep`),
/// then its connection resets. The server notices at once, answers pings
/// meanwhile, and ends the shell and the sleep.
#[test]
fn a_dead_client_is_noticed_while_its_shell_reads_no_input() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &[]);
    let (status, _, mut tcp) = upgrade(serve.addr, &serve.auth());
    assert_eq!(status, 101);
    expect_json(&mut tcp, "connected", |v| v["type"] == "connected");
    // A length unique to this run, so leftovers of other runs never match.
    let sleep = format!("sleep {}", 100_000 + std::process::id() % 100_000);
    tcp.write_all(&shell_input(&format!("{sleep}\n"))).unwrap();
    wait_until("sleep runs", PATIENCE, || {
        !processes_matching(&sleep).is_empty()
    });
    // Complete lines the shell does not read, more than the terminal buffers
    // (in canonical mode a full buffer without a newline drops input rather
    // than blocking): the pty write blocks.
    let chunk = format!("{}\n", "x".repeat(63)).repeat(256);
    for _ in 0..8 {
        tcp.write_all(&shell_input(&chunk)).unwrap();
    }
    // The reader still reads: an application ping is answered.
    tcp.write_all(&text(r#"{"type":"ping","timestamp":0}"#))
        .unwrap();
    expect_json(&mut tcp, "pong while the pty is full", |v| {
        v["type"] == "pong"
    });

    let started = Instant::now();
    reset(tcp);
    wait_until("the sleep is ended", PATIENCE, || {
        processes_matching(&sleep).is_empty()
    });
    let noticed = started.elapsed();
    wait_until("the disconnect is logged", PATIENCE, || {
        serve.stderr().contains("client disconnected")
    });
    eprintln!("dead client: shell session ended {noticed:?} after the reset");
}

fn expect_close(serve: &Serve, bytes: &[u8], code: u16, what: &str) {
    let (status, _, mut tcp) = upgrade(serve.addr, &serve.auth());
    assert_eq!(status, 101);
    expect_json(&mut tcp, "connected", |v| v["type"] == "connected");
    tcp.write_all(bytes).unwrap();
    let got = read_close(&mut tcp);
    assert_eq!(got, Some(Some(code)), "{what}: close frame");
}

#[test]
fn protocol_errors_close_with_their_status_code() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &[]);
    // A client frame must be masked: 1002.
    expect_close(&serve, &frame(0x1, b"{}", false), 1002, "unmasked frame");
    // An unknown opcode: 1002.
    expect_close(&serve, &frame(0x3, b"", true), 1002, "reserved opcode");
    // A text frame that is not UTF-8: 1007.
    expect_close(
        &serve,
        &frame(0x1, b"\"\xff\xfe\"", true),
        1007,
        "bad UTF-8",
    );
    // A frame over the 1 MiB limit (only its header is needed): 1009.
    let mut big = vec![0x81, 0x80 | 127];
    big.extend_from_slice(&(2u64 << 20).to_be_bytes());
    big.extend_from_slice(&[0, 0, 0, 0]);
    expect_close(&serve, &big, 1009, "oversized frame");
}

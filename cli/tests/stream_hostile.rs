//! `wsdrain stream` (the real binary) against servers that misbehave, or
//! that behave like kandev's Go server: a ping flood from a server that never
//! reads, Close frames with error codes, a connection ended without a Close
//! frame, a stdout that fails, signals while stdin stays open, and the
//! `X-Instance-ID` header. Every server here is a thread on 127.0.0.1.
//!
//! Every wait is bounded; every child is killed and reaped on drop.
#![cfg(unix)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Message, WebSocket, accept_hdr};

const BIN: &str = env!("CARGO_BIN_EXE_wsdrain");
/// Generous: CI has 2 cores and runs tests in parallel.
const PATIENCE: Duration = Duration::from_secs(30);
const CONNECTED: &str = r#"{"type":"connected","timestamp":1}"#;

/// A running `wsdrain stream`; killed and reaped on drop.
struct Proc {
    child: Child,
    stderr: Arc<Mutex<String>>,
    stderr_done: Receiver<()>,
}

impl Proc {
    fn spawn(args: &[&str], stdin: Stdio, stdout: Stdio) -> Proc {
        let mut child = Command::new(BIN)
            .arg("stream")
            .args(args)
            .env_remove("WSDRAIN_TOKEN")
            .env_remove("RUST_LOG")
            .env_remove("WSDRAIN_LOG")
            .stdin(stdin)
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn wsdrain");
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let mut err = child.stderr.take().unwrap();
        let (done, stderr_done) = channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                sink.lock().unwrap().push_str(&text);
            }
            let _ = done.send(());
        });
        Proc {
            child,
            stderr,
            stderr_done,
        }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The exit code and how long the wait took; panics after `limit`.
    fn wait_exit(&mut self, limit: Duration) -> (i32, Duration) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let _ = self.stderr_done.recv_timeout(PATIENCE);
                let code = status
                    .code()
                    .unwrap_or_else(|| panic!("killed: {status:?}"));
                return (code, start.elapsed());
            }
            assert!(
                start.elapsed() < limit,
                "wsdrain stream did not exit within {limit:?}; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own live child.
        assert_eq!(unsafe { libc::kill(self.pid(), signal) }, 0);
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Accept one connection, or panic after [`PATIENCE`] (a client that never
/// connects must fail the test, not hang it).
fn accept_one(listener: &TcpListener) -> TcpStream {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + PATIENCE;
    loop {
        match listener.accept() {
            Ok((tcp, _)) => {
                tcp.set_nonblocking(false).unwrap();
                return tcp;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "no client connected");
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// The resident set size of `pid`, in bytes (None once it is gone).
fn rss(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The upgrade request's headers, lower-case names.
type Headers = Vec<(String, String)>;

/// A one-connection WebSocket server on 127.0.0.1: `script` runs on the
/// accepted socket. Returns the base URL and the upgrade request's headers.
fn ws_server(
    script: impl FnOnce(WebSocket<TcpStream>) + Send + 'static,
) -> (String, Receiver<Headers>, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (headers_tx, headers) = channel();
    let server = std::thread::spawn(move || {
        let tcp = accept_one(&listener);
        tcp.set_read_timeout(Some(PATIENCE)).unwrap();
        #[allow(clippy::result_large_err)] // tungstenite's callback signature
        let callback = |request: &Request, response: Response| {
            let seen = request
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                .collect();
            let _ = headers_tx.send(seen);
            Ok(response)
        };
        let ws = accept_hdr(tcp, callback).unwrap();
        script(ws);
    });
    (url, headers, server)
}

/// Send `connected`, then close with `code` and `reason`, and finish the
/// close handshake.
fn close_with(code: u16, reason: &'static str) -> impl FnOnce(WebSocket<TcpStream>) + Send {
    move |mut ws| {
        ws.send(Message::text(CONNECTED)).unwrap();
        ws.close(Some(CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        }))
        .unwrap();
        while ws.read().is_ok() {}
    }
}

/// A server that closes with a policy-violation code: the code and reason
/// reach stderr and the exit code says the close was not normal. (This used
/// to exit 0 with nothing on stderr, like a clean close.)
#[test]
fn an_error_close_code_is_shown_and_has_its_own_exit_code() {
    for (code, reason) in [
        (1008, "policy: token revoked"),
        (1011, "internal error"),
        (1002, ""),
    ] {
        let (url, _, server) = ws_server(close_with(code, reason));
        let mut client = Proc::spawn(&["--url", &url, "--no-stdin"], Stdio::null(), Stdio::null());
        let (exit, _) = client.wait_exit(PATIENCE);
        server.join().unwrap();
        let stderr = client.stderr();
        assert_eq!(exit, 7, "close {code}; stderr:\n{stderr}");
        assert!(stderr.contains(&format!("code {code}")), "{stderr}");
        assert!(stderr.contains(&format!("{reason:?}")), "{stderr}");
    }
}

/// A normal close (1000 or 1001) exits 0, and still says what the server said.
#[test]
fn a_normal_close_code_exits_0_and_is_shown() {
    for code in [1000, 1001] {
        let (url, _, server) = ws_server(close_with(code, "bye"));
        let mut client = Proc::spawn(&["--url", &url, "--no-stdin"], Stdio::null(), Stdio::null());
        let (exit, _) = client.wait_exit(PATIENCE);
        server.join().unwrap();
        let stderr = client.stderr();
        assert_eq!(exit, 0, "close {code}; stderr:\n{stderr}");
        assert!(stderr.contains(&format!("code {code}")), "{stderr}");
        assert!(stderr.contains("\"bye\""), "{stderr}");
    }
}

/// kandev's Go server ends a stream by closing the TCP connection with no
/// Close frame. That is reported as what it is, with its own exit code,
/// not as a transport error (it used to exit 1 with "transport error").
#[test]
fn a_go_style_end_without_close_frame_is_reported_as_such() {
    let (url, _, server) = ws_server(|mut ws| {
        ws.send(Message::text(CONNECTED)).unwrap();
        ws.flush().unwrap();
        // Drop the socket: FIN, no Close frame.
    });
    let mut client = Proc::spawn(&["--url", &url, "--no-stdin"], Stdio::null(), Stdio::null());
    let (exit, _) = client.wait_exit(PATIENCE);
    server.join().unwrap();
    let stderr = client.stderr();
    assert_eq!(exit, 8, "stderr:\n{stderr}");
    assert!(stderr.contains("without a Close frame"), "{stderr}");
    assert!(!stderr.contains("transport error"), "{stderr}");
}

/// Output that cannot be written (a full disk) is an error exit with a
/// message. (It used to exit 0 with nothing on stderr: data lost silently.)
#[test]
fn a_stdout_error_is_an_error_exit() {
    let (url, _, server) = ws_server(|mut ws| {
        ws.send(Message::text(CONNECTED)).unwrap();
        for i in 0..100 {
            let line = format!(r#"{{"type":"shell_output","timestamp":2,"data":"line {i}"}}"#);
            if ws.send(Message::text(line)).is_err() {
                return;
            }
        }
        let _ = ws.close(None);
        while ws.read().is_ok() {}
    });
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let mut client = Proc::spawn(&["--url", &url, "--no-stdin"], Stdio::null(), full.into());
    let (exit, _) = client.wait_exit(PATIENCE);
    server.join().unwrap();
    let stderr = client.stderr();
    assert_eq!(exit, 1, "stderr:\n{stderr}");
    assert!(stderr.contains("cannot write to stdout"), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
}

/// A closed pipe on stdout (`| head`) stays a normal, quiet end.
#[test]
fn a_closed_stdout_pipe_is_a_normal_end() {
    let (url, _, server) = ws_server(|mut ws| {
        ws.send(Message::text(CONNECTED)).unwrap();
        // Until the client goes away.
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            let line = r#"{"type":"shell_output","timestamp":2,"data":"more"}"#;
            if ws.send(Message::text(line)).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let mut client = Proc::spawn(
        &["--url", &url, "--no-stdin"],
        Stdio::null(),
        Stdio::piped(),
    );
    drop(client.child.stdout.take()); // the reader is gone
    let (exit, _) = client.wait_exit(PATIENCE);
    server.join().unwrap();
    let stderr = client.stderr();
    assert_eq!(exit, 0, "stderr:\n{stderr}");
    assert!(!stderr.contains("error"), "{stderr}");
}

/// SIGINT and SIGTERM end the stream promptly while stdin is a pipe from a
/// producer that keeps it open (`producer | wsdrain stream`).
#[test]
fn signals_return_promptly_while_a_producer_keeps_stdin_open() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let (url, _, server) = ws_server(|mut ws| {
            ws.send(Message::text(CONNECTED)).unwrap();
            // Read what the client sends until it goes away.
            while ws.read().is_ok() {}
        });
        let mut producer = Command::new("sh")
            .args(["-c", "echo 'echo hi'; exec sleep 60"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let pipe = producer.stdout.take().unwrap();
        let mut client = Proc::spawn(&["--url", &url], pipe.into(), Stdio::null());
        // Let it connect and forward the line.
        std::thread::sleep(Duration::from_millis(500));
        client.signal(signal);
        let (exit, took) = client.wait_exit(PATIENCE);
        let still_producing = producer.try_wait().unwrap().is_none();
        let _ = producer.kill();
        let _ = producer.wait();
        server.join().unwrap();
        assert_eq!(exit, 0, "signal {signal}; stderr:\n{}", client.stderr());
        assert!(
            still_producing,
            "the producer had to stay alive for the test"
        );
        // A couple of seconds on a loaded machine; the producer sleeps 60 s.
        assert!(
            took < Duration::from_secs(5),
            "signal {signal}: took {took:?}"
        );
    }
}

/// `--instance-id` sends `X-Instance-ID` on the upgrade, as kandev's Go
/// client sends its execution id.
#[test]
fn instance_id_is_sent_on_the_upgrade() {
    let (url, headers, server) = ws_server(close_with(1000, ""));
    let mut client = Proc::spawn(
        &["--url", &url, "--no-stdin", "--instance-id", "exec-42"],
        Stdio::null(),
        Stdio::null(),
    );
    let (exit, _) = client.wait_exit(PATIENCE);
    assert_eq!(exit, 0, "stderr:\n{}", client.stderr());
    server.join().unwrap();
    let headers = headers.recv_timeout(PATIENCE).unwrap();
    let sent: Vec<&str> = headers
        .iter()
        .filter(|(k, _)| k == "x-instance-id")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(sent, ["exec-42"], "{headers:?}");
}

/// Read an HTTP upgrade request from `tcp` and accept it by hand.
fn raw_upgrade(tcp: &mut TcpStream) {
    let mut request = Vec::new();
    let mut byte = [0u8; 1];
    while !request.ends_with(b"\r\n\r\n") {
        assert_eq!(tcp.read(&mut byte).unwrap(), 1, "request cut short");
        request.push(byte[0]);
        assert!(request.len() < 16 * 1024, "request too long");
    }
    let request = String::from_utf8(request).unwrap();
    let key = request
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("sec-websocket-key")
                .then(|| value.trim().to_owned())
        })
        .expect("a Sec-WebSocket-Key");
    let accept = derive_accept_key(key.as_bytes());
    write!(
        tcp,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    )
    .unwrap();
}

/// A hostile server floods ping frames and never reads: each ping makes the
/// client queue a pong it cannot send. The client's memory stays bounded and
/// the stream ends with a clear error. (The old client grew to 2.1 GB in
/// 10 s and never ended.)
#[test]
fn a_ping_flood_from_a_server_that_never_reads_is_bounded_and_ends_the_stream() {
    const BOUND: u64 = 64 << 20;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let mut tcp = accept_one(&listener);
        raw_upgrade(&mut tcp);
        // One unmasked Ping frame with the largest control payload (125 B).
        let mut frame = vec![0x89, 125];
        frame.extend([b'p'; 125]);
        let burst: Vec<u8> = frame.repeat(64);
        tcp.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
        let deadline = Instant::now() + PATIENCE;
        let mut sent = 0u64;
        // Never read: the client's pongs pile up on its side.
        while Instant::now() < deadline {
            match tcp.write_all(&burst) {
                Ok(()) => sent += 64,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
                Err(_) => break, // the client went away
            }
        }
        sent
    });
    let mut client = Proc::spawn(&["--url", &url, "--no-stdin"], Stdio::null(), Stdio::null());
    let pid = client.pid();
    let start = Instant::now();
    let mut peak = 0u64;
    while client.child.try_wait().unwrap().is_none() {
        if let Some(now) = rss(pid) {
            peak = peak.max(now);
        }
        if peak > BOUND || start.elapsed() > PATIENCE {
            break; // drop kills it; the asserts below report
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    eprintln!(
        "wsdrain stream under a ping flood: peak RSS {} KiB, ended after {:?}",
        peak / 1024,
        start.elapsed()
    );
    assert!(peak <= BOUND, "peak RSS {} MiB", peak >> 20);
    let (exit, _) = client.wait_exit(PATIENCE);
    let pings = server.join().unwrap();
    let stderr = client.stderr();
    assert_eq!(exit, 1, "stderr:\n{stderr}");
    assert!(stderr.contains("pings"), "{stderr}");
    eprintln!("the server sent at least {pings} pings");
}

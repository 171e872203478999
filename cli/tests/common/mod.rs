//! Shared by the hostile-peer tests: the real `wsdrain serve` as a child
//! process, and a raw-socket WebSocket peer that does exactly what it is
//! told (forged headers, unmasked frames, floods), on 127.0.0.1 only.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_wsdrain");
/// Generous: CI has 2 cores and runs tests in parallel.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// `$XDG_RUNTIME_DIR` of every process these tests start (token files go there).
pub fn runtime_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("xdg-runtime");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `wsdrain ARGS` with the environment every process of these tests gets:
/// no inherited token or log filter, debug logs, and [`runtime_dir`] (where
/// `serve` saves a generated token and `stream` finds it for a loopback URL).
/// Output is piped; stdin is the caller's choice (piped by default).
pub fn wsdrain_command(args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_remove("WSDRAIN_TOKEN")
        .env_remove("RUST_LOG")
        .env("WSDRAIN_LOG", "wsdrain=debug")
        .env("XDG_RUNTIME_DIR", runtime_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// A child's stderr, collected on a thread as it is written.
pub struct StderrSink {
    text: Arc<Mutex<String>>,
    /// Set at EOF: everything the process wrote is in `text`.
    done: Arc<AtomicBool>,
}

impl StderrSink {
    /// Take the child's piped stderr and start collecting it.
    pub fn attach(child: &mut Child) -> StderrSink {
        let text = Arc::new(Mutex::new(String::new()));
        let done = Arc::new(AtomicBool::new(false));
        let (sink, eof) = (text.clone(), done.clone());
        let mut err = child.stderr.take().expect("stderr piped");
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
            eof.store(true, Ordering::Release);
        });
        StderrSink { text, done }
    }

    /// What was written so far.
    pub fn text(&self) -> String {
        self.text.lock().unwrap().clone()
    }

    /// Wait (at most `limit`) until stderr reached EOF.
    pub fn wait_eof(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.done.load(Ordering::Acquire) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// The child's stdout lines, read on a thread (so the child never blocks
/// on a full pipe) and handed over on a channel that ends at EOF.
pub fn stdout_lines(child: &mut Child) -> Receiver<String> {
    let stdout = BufReader::new(child.stdout.take().expect("stdout piped"));
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    lines
}

/// A running `wsdrain serve`; killed and reaped on drop.
pub struct Serve {
    pub child: Child,
    pub addr: SocketAddr,
    /// The token from the token line (generated ones only).
    pub token: Option<String>,
    /// The second stdout line (token or warning).
    pub token_line: String,
    stderr: StderrSink,
}

impl Serve {
    /// `wsdrain serve --workspace DIR --shell /bin/sh EXTRA...`.
    pub fn start(workspace: &Path, extra: &[&str]) -> Serve {
        Self::start_with(workspace, extra, |_| {})
    }

    /// Like [`Serve::start`], with a last word on the command.
    pub fn start_with(workspace: &Path, extra: &[&str], tweak: impl FnOnce(&mut Command)) -> Serve {
        let mut command = wsdrain_command(&["serve", "--workspace", workspace.to_str().unwrap()]);
        command
            .args(["--shell", "/bin/sh"])
            .args(extra)
            .stdin(Stdio::null());
        tweak(&mut command);
        let mut child = command.spawn().expect("spawn wsdrain serve");
        let stderr = StderrSink::attach(&mut child);
        // Keep draining stdout so the server never blocks on it.
        let lines = stdout_lines(&mut child);
        let first = lines.recv_timeout(PATIENCE).unwrap_or_default();
        let addr = first
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                panic!(
                    "unexpected first line {first:?}; stderr:\n{}",
                    stderr.text()
                )
            })
            .parse()
            .unwrap();
        let token_line = lines
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_default();
        let token = token_line
            .strip_prefix("token ")
            .and_then(|rest| rest.split_whitespace().next())
            .filter(|t| t.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(str::to_owned);
        Serve {
            child,
            addr,
            token,
            token_line: token_line.trim().to_owned(),
            stderr,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// `Authorization` header for the server's token (none without one).
    pub fn auth(&self) -> Vec<(String, String)> {
        self.token
            .iter()
            .map(|t| ("Authorization".to_owned(), format!("Bearer {t}")))
            .collect()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

/// A WebSocket upgrade request for the stream path, with `headers` (a
/// `Host` among them, or the right one is added).
pub fn upgrade_request(addr: SocketAddr, headers: &[(String, String)]) -> String {
    let mut request = format!("GET {} HTTP/1.1\r\n", wsdrain::STREAM_PATH);
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        request.push_str(&format!("Host: {addr}\r\n"));
    }
    request.push_str(
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request
}

pub fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

/// Send `request`; the response's status and head+body as text, and the
/// socket (open, after the head, when the status is 101).
pub fn send_request(addr: SocketAddr, request: &str) -> (u16, String, TcpStream) {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(PATIENCE)).unwrap();
    tcp.write_all(request.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tcp.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    let mut text = String::from_utf8_lossy(&head).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if status != 101 {
        let mut body = String::new();
        let _ = tcp.read_to_string(&mut body);
        text.push_str(&body);
    }
    (status, text, tcp)
}

/// Upgrade with `extra` headers; the status and the socket.
pub fn upgrade(addr: SocketAddr, extra: &[(String, String)]) -> (u16, String, TcpStream) {
    send_request(addr, &upgrade_request(addr, extra))
}

/// One client frame (FIN set), masked unless told otherwise.
pub fn frame(opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = vec![0x80 | opcode];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        let key = [0x12, 0x34, 0x56, 0x78];
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

/// A masked text frame of one protocol message.
pub fn text(json: &str) -> Vec<u8> {
    frame(0x1, json.as_bytes(), true)
}

/// Read one server frame: opcode and payload (`None` at EOF or error).
pub fn read_frame(tcp: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut head = [0u8; 2];
    tcp.read_exact(&mut head).ok()?;
    let len = match head[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            tcp.read_exact(&mut b).ok()?;
            u16::from_be_bytes(b) as usize
        }
        127 => {
            let mut b = [0u8; 8];
            tcp.read_exact(&mut b).ok()?;
            u64::from_be_bytes(b) as usize
        }
        n => n as usize,
    };
    let mut payload = vec![0u8; len];
    tcp.read_exact(&mut payload).ok()?;
    Some((head[0] & 0x0f, payload))
}

/// Read frames until a close frame; its status code (`Some(None)` for an
/// empty close frame, `None` if the socket ended without one).
pub fn read_close(tcp: &mut TcpStream) -> Option<Option<u16>> {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        let (opcode, payload) = read_frame(tcp)?;
        if opcode == 0x8 {
            return Some(
                (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]])),
            );
        }
    }
    None
}

/// Read text frames until one parses to JSON satisfying `pred`.
pub fn expect_json(
    tcp: &mut TcpStream,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        let Some((opcode, payload)) = read_frame(tcp) else {
            panic!("socket ended before {what}");
        };
        if opcode != 0x1 {
            continue;
        }
        let value: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        if pred(&value) {
            return value;
        }
    }
    panic!("timed out waiting for {what}");
}

/// Accumulate `shell_output` until it contains `needle`.
pub fn expect_shell_output(tcp: &mut TcpStream, needle: &str) -> String {
    let mut text = String::new();
    let deadline = Instant::now() + PATIENCE;
    while !text.contains(needle) {
        assert!(
            Instant::now() < deadline,
            "no shell output {needle:?}: {text:?}"
        );
        let value = expect_json(tcp, needle, |v| v["type"] == "shell_output");
        text.push_str(value["data"].as_str().unwrap_or(""));
    }
    text
}

/// `shell_input` of `data`, as a frame.
pub fn shell_input(data: &str) -> Vec<u8> {
    text(&serde_json::json!({"type": "shell_input", "timestamp": 0, "data": data}).to_string())
}

/// Pids of live processes whose command line contains `needle`.
pub fn processes_matching(needle: &str) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline.contains(needle) && alive(*pid)
        })
        .collect()
}

/// Whether a process exists (and is not a zombie).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Resident set size of a process, in KiB.
pub fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Reset the connection (RST, not FIN), as a crashed or vanished peer's
/// kernel does.
pub fn reset(tcp: TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt reads `linger` for its size; the fd is open.
    unsafe {
        libc::setsockopt(
            tcp.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    drop(tcp);
}

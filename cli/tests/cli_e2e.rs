//! End-to-end tests of the `wsdrain` binary: `serve` and `stream` run as
//! real processes, talking over loopback.
//!
//! Every wait is bounded by a deadline; every child is killed (and reaped)
//! when its guard drops, so a failing test cannot leave processes behind.
#![cfg(unix)]

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, ChildStdin, Command};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use common::{PATIENCE, StderrSink, alive, stdout_lines, wait_until, wsdrain_command};
use serde_json::Value;

/// A running `wsdrain` process; killed and reaped on drop.
struct Proc {
    name: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: StderrSink,
    /// Every stdout line read so far.
    seen: Vec<String>,
}

impl Proc {
    fn spawn(name: &'static str, args: &[&str], envs: &[(&str, &str)]) -> Proc {
        let mut command = wsdrain_command(args);
        command.envs(envs.iter().copied());
        let mut child = command.spawn().expect("spawn wsdrain");
        let stderr = StderrSink::attach(&mut child);
        let lines = stdout_lines(&mut child);
        let stdin = child.stdin.take();
        Proc {
            name,
            child,
            stdin,
            lines,
            stderr,
            seen: Vec::new(),
        }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// The next stdout line, or `None` at EOF; panics past the deadline.
    fn next_line(&mut self, deadline: Instant) -> Option<String> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(line) => {
                self.seen.push(line.clone());
                Some(line)
            }
            Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => panic!(
                "{}: timed out waiting for output; stdout so far:\n{}\nstderr:\n{}",
                self.name,
                self.seen.join("\n"),
                self.stderr()
            ),
        }
    }

    /// Read JSON lines until one satisfies `pred`; return it.
    fn expect_json(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let Some(line) = self.next_line(deadline) else {
                panic!(
                    "{}: stdout ended before {what}; stdout:\n{}\nstderr:\n{}",
                    self.name,
                    self.seen.join("\n"),
                    self.stderr()
                );
            };
            let value: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
                panic!("{}: stdout line is not JSON ({e}): {line:?}", self.name)
            });
            if pred(&value) {
                return value;
            }
        }
    }

    /// Accumulate `shell_output` until it contains `needle`.
    fn expect_shell_output(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        let mut text = String::new();
        while !text.contains(needle) {
            let Some(line) = self.next_line(deadline) else {
                panic!(
                    "{}: stdout ended before shell output {needle:?}; got {text:?}",
                    self.name
                );
            };
            let value: Value = serde_json::from_str(&line).unwrap();
            if value["type"] == "shell_output" {
                text.push_str(value["data"].as_str().unwrap_or(""));
            }
        }
        text
    }

    fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    fn close_stdin(&mut self) {
        self.stdin = None;
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe {
            libc::kill(self.pid(), signal);
        }
    }

    /// Wait for the exit within `limit`; the exit code and the time it took.
    fn wait_exit(&mut self, limit: Duration) -> (i32, Duration) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the stderr reader catch up with everything written.
                self.stderr.wait_eof(Duration::from_secs(5));
                let code = status.code().unwrap_or_else(|| {
                    panic!(
                        "{}: killed by a signal: {status:?}\nstderr:\n{}",
                        self.name,
                        self.stderr()
                    )
                });
                return (code, start.elapsed());
            }
            if start.elapsed() > limit {
                panic!(
                    "{}: did not exit within {limit:?}\nstdout:\n{}\nstderr:\n{}",
                    self.name,
                    self.seen.join("\n"),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Children of this process (from /proc), recursively.
    fn descendants(&self) -> Vec<i32> {
        let mut out = Vec::new();
        let mut todo = vec![self.pid()];
        while let Some(pid) = todo.pop() {
            let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
                continue;
            };
            for task in tasks.flatten() {
                let children =
                    std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
                for child in children.split_whitespace().filter_map(|c| c.parse().ok()) {
                    out.push(child);
                    todo.push(child);
                }
            }
        }
        out
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `wsdrain serve` on `dir` with a deterministic shell; its base URL.
fn serve(dir: &Path, extra: &[&str]) -> (Proc, String) {
    let mut args = vec![
        "serve",
        "--workspace",
        dir.to_str().unwrap(),
        "--shell",
        "/bin/sh",
    ];
    args.extend_from_slice(extra);
    let mut proc = Proc::spawn("serve", &args, &[]);
    let first = proc
        .next_line(Instant::now() + PATIENCE)
        .unwrap_or_else(|| panic!("serve exited at once; stderr:\n{}", proc.stderr()));
    let addr = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();
    (proc, format!("http://{addr}"))
}

fn stream(url: &str, extra: &[&str]) -> Proc {
    let mut args = vec!["stream", "--url", url];
    args.extend_from_slice(extra);
    Proc::spawn("stream", &args, &[])
}

fn is_type(kind: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["type"] == kind
}

fn file_change(path: &'static str, op: &'static str) -> impl Fn(&Value) -> bool {
    move |v| {
        v["type"] == "file_change"
            && v["file_change"]["path"] == path
            && v["file_change"]["operation"] == op
    }
}

/// The shell's pid, from `echo $$` (split so the echo of the command itself
/// does not match).
fn shell_pid(stream: &mut Proc) -> i32 {
    stream.send_line("echo pid=$$=di\"\"p");
    let text = stream.expect_shell_output("=dip");
    let start = text.rfind("pid=").unwrap() + 4;
    let rest = &text[start..];
    rest[..rest.find('=').unwrap()].parse().unwrap()
}

#[test]
fn file_changes_reach_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let (_serve, url) = serve(dir.path(), &[]);
    let mut client = stream(&url, &[]);
    let first = client.expect_json("connected", |_| true);
    assert_eq!(first["type"], "connected", "connected must come first");
    assert!(first["timestamp"].as_i64().unwrap() > 0);

    let file = dir.path().join("notes.txt");
    std::fs::write(&file, "one\n").unwrap();
    client.expect_json("create", file_change("notes.txt", "create"));
    std::thread::sleep(Duration::from_millis(300));
    std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap()
        .write_all(b"two\n")
        .unwrap();
    client.expect_json("write", file_change("notes.txt", "write"));
    std::thread::sleep(Duration::from_millis(300));
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    std::fs::rename(&file, dir.path().join("sub/moved.txt")).unwrap();
    client.expect_json("rename", file_change("notes.txt", "rename"));
    client.expect_json(
        "create at the new path",
        file_change("sub/moved.txt", "create"),
    );
    std::thread::sleep(Duration::from_millis(300));
    std::fs::remove_file(dir.path().join("sub/moved.txt")).unwrap();
    let removed = client.expect_json("remove", file_change("sub/moved.txt", "remove"));
    // Nested timestamps are RFC 3339 strings.
    assert!(
        removed["file_change"]["timestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );

    client.close_stdin();
    let (code, _) = client.wait_exit(PATIENCE);
    assert_eq!(code, 0, "stderr:\n{}", client.stderr());
}

#[test]
fn a_burst_of_writes_coalesces() {
    let dir = tempfile::tempdir().unwrap();
    let (_serve, url) = serve(dir.path(), &["--coalesce-window", "300ms"]);
    let mut client = stream(&url, &[]);
    client.expect_json("connected", is_type("connected"));
    let file = dir.path().join("burst.log");
    std::fs::write(&file, "").unwrap();
    client.expect_json("create", file_change("burst.log", "create"));
    std::thread::sleep(Duration::from_millis(500));
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap();
    for i in 0..200 {
        writeln!(f, "line {i}").unwrap();
        f.flush().unwrap();
    }
    drop(f);
    client.expect_json("write", file_change("burst.log", "write"));
    // A marker after the burst: every event of the burst is out before it.
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(dir.path().join("marker"), "").unwrap();
    client.expect_json("marker", file_change("marker", "create"));
    let writes = client
        .seen
        .iter()
        .filter(|l| l.contains("burst.log") && l.contains("\"write\""))
        .count();
    // 200 writes in well under a window or two: at most a few events.
    assert!(
        writes <= 3,
        "{writes} write events for one burst:\n{}",
        client.seen.join("\n")
    );
}

#[test]
fn shell_runs_commands() {
    let dir = tempfile::tempdir().unwrap();
    let (_serve, url) = serve(dir.path(), &[]);
    let mut client = stream(&url, &[]);
    client.expect_json("connected", is_type("connected"));
    client.send_line("echo hel\"\"lo");
    let text = client.expect_shell_output("hello\r\n");
    assert!(text.contains("hello"));
    // The shell runs in the workspace.
    client.send_line("pwd; echo e\"\"nd");
    let text = client.expect_shell_output("end\r\n");
    let canonical = std::fs::canonicalize(dir.path()).unwrap();
    assert!(text.contains(canonical.to_str().unwrap()), "{text:?}");
    // Its exit is reported with the code.
    client.send_line("exit 7");
    let exit = client.expect_json("shell_exit", is_type("shell_exit"));
    assert_eq!(exit["code"], 7);
    client.close_stdin();
    assert_eq!(client.wait_exit(PATIENCE).0, 0);
}

#[test]
fn stdin_eof_waits_until_the_server_has_every_line() {
    const LINES: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let (serve, url) = serve(dir.path(), &[]);
    let mut client = stream(&url, &[]);
    client.expect_json("connected", is_type("connected"));
    let mut input = String::new();
    for i in 0..LINES {
        input.push_str(&format!(": line {i}\n"));
    }
    // All at once, then EOF: without the flush barrier, most of this would
    // still be queued in the client when it closes.
    client
        .stdin
        .as_mut()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    client.close_stdin();
    let (code, _) = client.wait_exit(PATIENCE);
    assert_eq!(code, 0, "stderr:\n{}", client.stderr());
    // The server logs each shell_input it received (at debug).
    let received = || serve.stderr().matches("shell input received").count();
    wait_until("the server logged every line", PATIENCE, || {
        received() >= LINES
    });
    assert_eq!(received(), LINES);
}

#[test]
fn linger_keeps_printing_after_stdin_ends() {
    let dir = tempfile::tempdir().unwrap();
    let (_serve, url) = serve(dir.path(), &[]);
    let mut client = stream(&url, &["--linger", "2s"]);
    client.expect_json("connected", is_type("connected"));
    client.send_line("touch made-by-the-last-line");
    client.close_stdin();
    client.expect_json("the file", file_change("made-by-the-last-line", "create"));
    let (code, _) = client.wait_exit(PATIENCE);
    assert_eq!(code, 0, "stderr:\n{}", client.stderr());
}

#[test]
fn wrong_or_missing_token_exits_with_3() {
    let dir = tempfile::tempdir().unwrap();
    let (_serve, url) = serve(dir.path(), &["--token", "s3cret"]);
    for extra in [&["--token", "wrong"][..], &[][..]] {
        let mut client = stream(&url, extra);
        let (code, _) = client.wait_exit(PATIENCE);
        assert_eq!(code, 3, "stderr:\n{}", client.stderr());
        assert!(client.stderr().contains("401"), "{}", client.stderr());
        assert!(client.seen.is_empty() && client.next_line(Instant::now() + PATIENCE).is_none());
    }
    // The right one, from the environment.
    let mut client = Proc::spawn(
        "stream",
        &["stream", "--url", &url],
        &[("WSDRAIN_TOKEN", "s3cret")],
    );
    client.expect_json("connected", is_type("connected"));
}

#[test]
fn connection_refused_exits_with_4() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut client = stream(&format!("http://127.0.0.1:{port}"), &[]);
    let (code, _) = client.wait_exit(PATIENCE);
    assert_eq!(code, 4, "stderr:\n{}", client.stderr());
    assert!(client.stderr().contains("connection refused"));
}

#[test]
fn handshake_timeout_exits_with_5() {
    // Accepts connections and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let mut client = stream(&url, &["--connect-timeout", "300ms"]);
    let held = listener.accept().unwrap();
    let (code, took) = client.wait_exit(PATIENCE);
    drop(held);
    assert_eq!(code, 5, "stderr:\n{}", client.stderr());
    assert!(took < Duration::from_secs(10));
    assert!(client.stderr().contains("timed out"), "{}", client.stderr());
}

#[test]
fn oversized_message_exits_with_6() {
    let dir = tempfile::tempdir().unwrap();
    let (_serve, url) = serve(dir.path(), &[]);
    let mut client = stream(&url, &["--max-message-size", "1KiB"]);
    client.expect_json("connected", is_type("connected"));
    client.send_line("head -c 65536 /dev/zero | tr '\\0' x");
    let (code, _) = client.wait_exit(PATIENCE);
    assert_eq!(code, 6, "stderr:\n{}", client.stderr());
    assert!(
        client.stderr().contains("exceeds the limit"),
        "{}",
        client.stderr()
    );
}

#[test]
fn bad_usage_exits_with_2() {
    let mut client = stream("ftp://nowhere", &[]);
    assert_eq!(client.wait_exit(PATIENCE).0, 2);
    let mut client = stream("http://127.0.0.1:1", &["--connect-timeout", "soon"]);
    assert_eq!(client.wait_exit(PATIENCE).0, 2);
    // A non-loopback address without authentication is refused.
    let dir = tempfile::tempdir().unwrap();
    let mut serve = Proc::spawn(
        "serve",
        &[
            "serve",
            "--insecure-no-auth",
            "--addr",
            "0.0.0.0:0",
            "--workspace",
            dir.path().to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(serve.wait_exit(PATIENCE).0, 2);
    assert!(
        serve.stderr().contains("non-loopback"),
        "{}",
        serve.stderr()
    );
}

#[test]
fn sigint_on_stream_closes_and_exits_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let (serve, url) = serve(dir.path(), &[]);
    let mut client = stream(&url, &[]);
    client.expect_json("connected", is_type("connected"));
    let shell = shell_pid(&mut client);
    assert!(alive(shell));
    client.signal(libc::SIGINT);
    let (code, took) = client.wait_exit(PATIENCE);
    assert_eq!(code, 0, "stderr:\n{}", client.stderr());
    assert!(took < Duration::from_secs(1), "took {took:?}");
    // The server saw the client go and stopped its shell.
    wait_until("the shell is gone", PATIENCE, || !alive(shell));
    wait_until("the server logged the disconnect", PATIENCE, || {
        serve.stderr().contains("client disconnected")
    });
}

#[test]
fn sigint_on_serve_drains_everything() {
    let dir = tempfile::tempdir().unwrap();
    let (mut serve, url) = serve(dir.path(), &[]);
    let mut clients: Vec<Proc> = (0..3).map(|_| stream(&url, &[])).collect();
    let mut shells = Vec::new();
    for client in &mut clients {
        client.expect_json("connected", is_type("connected"));
        shells.push(shell_pid(client));
    }
    // A foreground job in one shell, which must go too.
    clients[0].send_line("sleep 300");
    std::thread::sleep(Duration::from_millis(300));
    let before = serve.descendants();
    assert!(before.len() >= 4, "shells and the sleep: {before:?}");

    serve.signal(libc::SIGINT);
    let (code, took) = serve.wait_exit(PATIENCE);
    assert_eq!(code, 0, "stderr:\n{}", serve.stderr());
    assert!(took < Duration::from_secs(5), "drain took {took:?}");
    for pid in before.iter().chain(&shells) {
        assert!(!alive(*pid), "process {pid} outlived the server");
    }
    assert!(serve.stderr().contains("server drained"));
    // Each stream sees the server close normally and exits 0.
    for client in &mut clients {
        let (code, _) = client.wait_exit(PATIENCE);
        assert_eq!(code, 0, "stderr:\n{}", client.stderr());
    }
}

#[test]
fn many_concurrent_streams() {
    const N: usize = 20;
    let dir = tempfile::tempdir().unwrap();
    let (serve, url) = serve(dir.path(), &[]);
    let mut clients: Vec<Proc> = (0..N).map(|_| stream(&url, &[])).collect();
    for client in &mut clients {
        client.expect_json("connected", is_type("connected"));
    }
    std::fs::write(dir.path().join("shared.txt"), "hi").unwrap();
    for client in &mut clients {
        client.expect_json("the change", file_change("shared.txt", "create"));
    }
    // Each has its own shell.
    for (i, client) in clients.iter_mut().enumerate() {
        client.send_line(&format!("echo client-{i}-o\"\"k"));
    }
    for (i, client) in clients.iter_mut().enumerate() {
        client.expect_shell_output(&format!("client-{i}-ok"));
    }
    for client in &mut clients {
        client.close_stdin();
    }
    for client in &mut clients {
        let (code, _) = client.wait_exit(PATIENCE);
        assert_eq!(code, 0, "stderr:\n{}", client.stderr());
    }
    wait_until("every shell is gone", PATIENCE, || {
        serve.descendants().is_empty()
    });
}

#[test]
fn git_workspace_emits_git_status() {
    let dir = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        Command::new("git")
            .args([
                "-c",
                "init.defaultBranch=trunk",
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
            ])
            .args(args)
            .current_dir(dir.path())
            .output()
    };
    match git(&["init", "-q"]) {
        Ok(out) if out.status.success() => {}
        _ => {
            eprintln!("git is not available: skipping");
            return;
        }
    }
    std::fs::write(dir.path().join("tracked.txt"), "v1\n").unwrap();
    assert!(git(&["add", "tracked.txt"]).unwrap().status.success());
    assert!(git(&["commit", "-qm", "first"]).unwrap().status.success());

    let (_serve, url) = serve(dir.path(), &["--git-interval", "100ms"]);
    let mut client = stream(&url, &[]);
    client.expect_json("connected", is_type("connected"));
    let status = client.expect_json("git_status", is_type("git_status"));
    assert_eq!(status["git_status"]["branch"], "trunk");
    assert_eq!(status["git_status"]["untracked"], serde_json::json!([]));

    std::fs::write(dir.path().join("tracked.txt"), "v2\n").unwrap();
    std::fs::write(dir.path().join("fresh.txt"), "new\n").unwrap();
    let status = client.expect_json("a dirty status", |v| {
        v["type"] == "git_status"
            && v["git_status"]["modified"] == serde_json::json!(["tracked.txt"])
            && v["git_status"]["untracked"] == serde_json::json!(["fresh.txt"])
    });
    assert!(status["git_status"]["head_commit"].as_str().unwrap().len() >= 40);
    // Changes under .git/ are not file events.
    assert!(!client.seen.iter().any(|l| l.contains("\"path\":\".git")));
}

#[test]
fn ping_interval_gets_pongs() {
    let dir = tempfile::tempdir().unwrap();
    let (_serve, url) = serve(dir.path(), &[]);
    let mut client = stream(&url, &["--ping-interval", "100ms", "--no-stdin"]);
    client.expect_json("connected", is_type("connected"));
    client.expect_json("pong", is_type("pong"));
    client.expect_json("another pong", is_type("pong"));
    client.signal(libc::SIGTERM);
    assert_eq!(client.wait_exit(PATIENCE).0, 0);
}

/// A fake server that sends garbage between valid messages: the stream
/// reports and skips it, and goes on.
#[test]
fn malformed_unknown_and_binary_frames_are_skipped() {
    use tokio_tungstenite::tungstenite::{Message, accept};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        let mut ws = accept(tcp).unwrap();
        for frame in [
            Message::text(r#"{"type":"connected","timestamp":1}"#),
            Message::text("{not json"),
            Message::text(r#"{"type":"hologram","timestamp":2}"#),
            Message::binary(vec![1u8, 2, 3]),
            Message::text(r#"{"type":"shell_output","timestamp":3,"data":"still here"}"#),
        ] {
            ws.send(frame).unwrap();
        }
        ws.close(None).unwrap();
        // Read until the close handshake completes.
        while ws.read().is_ok() {}
    });
    let mut client = stream(&url, &["--no-stdin"]);
    let (code, _) = client.wait_exit(PATIENCE);
    server.join().unwrap();
    while client.next_line(Instant::now() + PATIENCE).is_some() {}
    assert_eq!(code, 0, "stderr:\n{}", client.stderr());
    let types: Vec<String> = client
        .seen
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(types, ["connected", "shell_output"]);
    let stderr = client.stderr();
    assert!(stderr.contains("skipped a malformed message"), "{stderr}");
    assert!(stderr.contains("unknown type \"hologram\""), "{stderr}");
    assert!(
        stderr.contains("skipped a binary frame (3 bytes)"),
        "{stderr}"
    );
}

/// Throughput of serve -> stream on loopback, in file_change events per
/// second. Run with `cargo test --release --test cli_e2e -- --ignored --nocapture`.
#[test]
#[ignore = "benchmark"]
fn bench_events_per_second() {
    const FILES: usize = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let (_serve, url) = serve(
        dir.path(),
        &[
            "--event-buffer",
            "65536",
            "--queue-capacity",
            "4096",
            "--coalesce-window",
            "20ms",
        ],
    );
    let mut client = stream(&url, &["--no-stdin"]);
    client.expect_json("connected", is_type("connected"));
    std::thread::sleep(Duration::from_millis(200));
    let start = Instant::now();
    for i in 0..FILES {
        std::fs::write(dir.path().join(format!("f{i}")), "").unwrap();
    }
    let written = start.elapsed();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut events = 0;
    let mut refresh = false;
    while events < FILES {
        let line = client.next_line(deadline).expect("stream ended");
        if line.contains("\"file_change\"") {
            if line.contains("\"refresh\"") {
                refresh = true;
                break;
            }
            events += 1;
        }
    }
    let took = start.elapsed();
    eprintln!(
        "{events} file_change events in {took:?} ({:.0} events/s; files written in {written:?}){}",
        events as f64 / took.as_secs_f64(),
        if refresh {
            "; the watcher overflowed (refresh)"
        } else {
            ""
        }
    );
}

/// The ceiling of the `stream` side alone: a fake server sends pre-encoded
/// `file_change` messages as fast as it can; how fast are they printed?
#[test]
#[ignore = "benchmark"]
fn bench_stream_side_ceiling() {
    use tokio_tungstenite::tungstenite::{Message, accept};
    const EVENTS: usize = 200_000;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        let mut ws = accept(tcp).unwrap();
        ws.send(Message::text(r#"{"type":"connected","timestamp":1}"#))
            .unwrap();
        for i in 0..EVENTS {
            let text = format!(
                r#"{{"type":"file_change","timestamp":1795489727465,"file_change":{{"timestamp":"2026-11-24T03:08:47.465Z","path":"src/f{i}.rs","operation":"write"}}}}"#
            );
            ws.write(Message::text(text)).unwrap();
        }
        ws.flush().unwrap();
        ws.close(None).unwrap();
        while ws.read().is_ok() {}
    });
    let mut client = stream(&url, &["--no-stdin"]);
    client.expect_json("connected", is_type("connected"));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(120);
    let mut events = 0;
    while client.next_line(deadline).is_some() {
        events += 1;
    }
    let took = start.elapsed();
    server.join().unwrap();
    assert_eq!(events, EVENTS);
    eprintln!(
        "stream side: {events} events printed in {took:?} ({:.0} events/s)",
        events as f64 / took.as_secs_f64()
    );
}

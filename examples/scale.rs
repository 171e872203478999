//! Scale run: many concurrent workspace streams from one client process
//! against `wsdrain serve` running as a separate process; open them all,
//! keep them idle, close them all, and prove that nothing leaked.
//!
//! ```text
//! cargo run --release --example scale -- --streams 10000 [--queue-capacity N] [--read-buffer BYTES]
//!     [--concurrency 64] [--idle-secs 2] [--shell /usr/bin/true]
//!     [--server-bin PATH] [--connect-timeout-secs 60] [--shared-ptys] [--shells N]
//! ```
//!
//! * The server is `target/release/wsdrain serve --addr 127.0.0.1:0
//!   --workspace <tempdir> --shell <shell>`, built first with
//!   `cargo build --release --bin wsdrain` (unless `--server-bin` names one);
//!   its first stdout line, `listening on HOST:PORT`, gives the address.
//! * `serve` starts a connection's shell, on its own pty, when the
//!   connection first needs it (its first `shell_input` or `shell_resize`),
//!   so idle streams hold no pty. `--shells N` makes the first N streams
//!   send one `shell_input` once all are open, and waits until the server
//!   holds N ptys; with `--shell /bin/sh` each of them then keeps a live
//!   shell (the default shell, `/usr/bin/true`, exits at once). The
//!   kernel's pty limit (`/proc/sys/kernel/pty/max`, 4096 here) caps how
//!   many connections get a shell; the others get an `error` message from
//!   the server and stay open. So that a run never takes the ptys of
//!   everything else on the machine, the example first
//!   moves itself (and so the server) into a private mount namespace with a
//!   new devpts instance, which may only use `pty/max - pty/reserve` ptys
//!   (needs root; `--shared-ptys` skips it, and it falls back by itself).
//! * One `wsdrain::Client` per stream (a client has at most one stream),
//!   opened with at most `--concurrency` dials in flight.
//! * `RLIMIT_NOFILE` is raised to the hard limit first (the server inherits it).
//!
//! Printed: time to open, time to close, client RSS per idle stream, and the
//! leak checks: the sum of `Client::live_tasks()` right after the closes
//! returned (must be 0: the drain barrier), the runtime's
//! `num_alive_tasks()` and this process's open file descriptors, back to
//! their baseline; the server's open file descriptors and ptys, back to
//! their baseline once it has ended the connections. Exits 1 if a check
//! fails.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use wsdrain::protocol::Message;
use wsdrain::{Client, ClientConfig, Event};

struct Args {
    streams: usize,
    queue_capacity: Option<usize>,
    read_buffer: Option<usize>,
    concurrency: usize,
    idle: Duration,
    shell: String,
    server_bin: Option<PathBuf>,
    shared_ptys: bool,
    connect_timeout: Duration,
    shells: usize,
}

fn usage() -> ! {
    eprintln!(
        "usage: scale [--streams N] [--queue-capacity N] [--read-buffer BYTES] [--concurrency N] [--idle-secs S] \
         [--shell PATH] [--server-bin PATH] [--shared-ptys] [--connect-timeout-secs S] [--shells N]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut args = Args {
        streams: 10_000,
        queue_capacity: None,
        read_buffer: None,
        concurrency: 64,
        idle: Duration::from_secs(2),
        shell: "/usr/bin/true".into(),
        server_bin: None,
        shared_ptys: false,
        connect_timeout: Duration::from_secs(60),
        shells: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--streams" => args.streams = value().parse().unwrap_or_else(|_| usage()),
            "--read-buffer" => args.read_buffer = Some(value().parse().unwrap_or_else(|_| usage())),
            "--queue-capacity" => {
                args.queue_capacity = Some(value().parse().unwrap_or_else(|_| usage()))
            }
            "--concurrency" => {
                args.concurrency = value().parse::<usize>().unwrap_or_else(|_| usage()).max(1)
            }
            "--idle-secs" => {
                args.idle = Duration::from_secs_f64(value().parse().unwrap_or_else(|_| usage()))
            }
            "--shell" => args.shell = value(),
            "--server-bin" => args.server_bin = Some(value().into()),
            "--shared-ptys" => args.shared_ptys = true,
            "--connect-timeout-secs" => {
                args.connect_timeout =
                    Duration::from_secs_f64(value().parse().unwrap_or_else(|_| usage()))
            }
            "--shells" => args.shells = value().parse().unwrap_or_else(|_| usage()),
            "-h" | "--help" => usage(),
            _ => usage(),
        }
    }
    args
}

/// Raise the soft `RLIMIT_NOFILE` to the hard limit; returns (soft, hard).
fn raise_nofile() -> (libc::rlim_t, libc::rlim_t) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return (0, 0);
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    (limit.rlim_cur, limit.rlim_max)
}

/// Give this process (and so the server it starts) a private devpts
/// instance, so the server's ptys come out of the kernel's non-reserved pool
/// (`pty/max` - `pty/reserve`) and never exhaust the ptys of the rest of the
/// machine (`pty/reserve` stays for the initial instance). Needs root
/// (CAP_SYS_ADMIN) and a single-threaded process: call first thing.
fn private_ptys() -> Result<(), String> {
    let fail = |what: &str| Err(format!("{what}: {}", std::io::Error::last_os_error()));
    // SAFETY: plain syscalls on constant, NUL-terminated strings; this runs
    // before any other thread exists.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return fail("unshare(CLONE_NEWNS)");
        }
        let null = std::ptr::null();
        if libc::mount(
            c"none".as_ptr(),
            c"/".as_ptr(),
            null,
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) != 0
        {
            return fail("make mounts private");
        }
        if libc::mount(
            c"devpts".as_ptr(),
            c"/dev/pts".as_ptr(),
            c"devpts".as_ptr(),
            0,
            c"newinstance,ptmxmode=0666".as_ptr().cast(),
        ) != 0
        {
            return fail("mount a new devpts instance");
        }
        if libc::mount(
            c"/dev/pts/ptmx".as_ptr(),
            c"/dev/ptmx".as_ptr(),
            null,
            libc::MS_BIND,
            std::ptr::null(),
        ) != 0
        {
            return fail("bind /dev/pts/ptmx");
        }
    }
    Ok(())
}

/// CPU time (user + system) of a process, and of its reaped children, in
/// seconds, from `/proc/PID/stat`.
fn cpu_seconds(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the `(comm)`: state is field 3; utime..cstime are 14..17.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = (11..15)
        .filter_map(|i| fields.get(i).and_then(|f| f.parse::<f64>().ok()))
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks / hz
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// A process's open file descriptors: all of them, those of ptys
/// (`/dev/ptmx` or `/dev/pts/ptmx` masters, `/dev/pts/N` sides), and the
/// pidfds of the children it is waiting for (the server runs `git` now and
/// then, with a pidfd and two pipes while it runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fds {
    all: usize,
    ptys: usize,
    children: usize,
}

fn fds_of(pid: &str) -> Fds {
    let targets: Vec<PathBuf> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.flatten()
                .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    let ptys = targets
        .iter()
        .filter(|t| t.starts_with("/dev/ptmx") || t.starts_with("/dev/pts"))
        .count();
    let children = targets
        .iter()
        .filter(|t| t.as_os_str() == "anon_inode:[pidfd]")
        .count();
    Fds {
        all: targets.len(),
        ptys,
        children,
    }
}

/// A process's descriptors once it is quiet: no child running (the server
/// runs `git` at start-up; its pipes open before the pidfd does) and the
/// same reading 100 ms apart.
fn quiescent_fds(pid: &str) -> Fds {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = fds_of(pid);
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let now = fds_of(pid);
        if (now == last && now.children == 0) || Instant::now() >= deadline {
            return now;
        }
        last = now;
    }
}

/// Poll `probe` every 20 ms until `want` holds for its value or `limit`
/// passes; the last value seen.
fn wait_for<T: Copy>(limit: Duration, want: impl Fn(T) -> bool, probe: impl Fn() -> T) -> T {
    let deadline = Instant::now() + limit;
    loop {
        let value = probe();
        if want(value) || Instant::now() >= deadline {
            return value;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `VmRSS` of a process, in KiB.
fn rss_kib(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn read_sysctl(path: &str) -> String {
    std::fs::read_to_string(path).map_or_else(|_| "?".into(), |s| s.trim().to_owned())
}

/// The `wsdrain` binary next to this example (`target/<profile>/wsdrain`),
/// brought up to date with `cargo build --release --bin wsdrain`.
fn server_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/examples/scale");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--quiet", "--bin", "wsdrain"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo build");
    assert!(
        status.success(),
        "cargo build --release --bin wsdrain failed"
    );
    let bin = profile_dir.join("wsdrain");
    assert!(bin.exists(), "{} not found", bin.display());
    bin
}

struct Server {
    child: Child,
    url: String,
    log: PathBuf,
}

fn start_server(bin: &Path, workspace: &Path, log_dir: &Path, shell: &str) -> Server {
    // Not inside the workspace: the server watches that, and would send a
    // `file_change` to every stream for each line it logs.
    let log = log_dir.join("serve.log");
    let mut child = Command::new(bin)
        .args(["serve", "--addr", "127.0.0.1:0", "--workspace"])
        .arg(workspace)
        .args(["--shell", shell])
        // A local benchmark: no token, and no cap below the streams it opens.
        .args(["--insecure-no-auth", "--max-connections", "1000000"])
        .env("WSDRAIN_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("server log"))
        .spawn()
        .expect("spawn wsdrain serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("read the server's first line");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line from the server: {line:?}"))
        .to_owned();
    Server {
        child,
        url: format!("http://{addr}"),
        log,
    }
}

#[derive(Default)]
struct Seen {
    connected: AtomicU64,
    shell_exit: AtomicU64,
    error: AtomicU64,
    other: AtomicU64,
}

struct Snapshot {
    rss_kib: u64,
    fds: usize,
    alive_tasks: usize,
}

fn snapshot(rt: &tokio::runtime::Runtime) -> Snapshot {
    Snapshot {
        rss_kib: rss_kib("self"),
        fds: open_fds(),
        alive_tasks: rt.metrics().num_alive_tasks(),
    }
}

fn main() {
    let args = parse_args();
    let ptys = if args.shared_ptys {
        "shared with the machine (--shared-ptys)".to_owned()
    } else {
        match private_ptys() {
            Ok(()) => "private devpts instance".to_owned(),
            Err(error) => format!("shared with the machine ({error})"),
        }
    };
    let (soft, hard) = raise_nofile();
    let needed = args.streams + 64;
    println!(
        "RLIMIT_NOFILE {soft} (hard {hard}); ptys: {ptys}, max {} reserve {} (in use {}); {} cores; load {}",
        read_sysctl("/proc/sys/kernel/pty/max"),
        read_sysctl("/proc/sys/kernel/pty/reserve"),
        read_sysctl("/proc/sys/kernel/pty/nr"),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        read_sysctl("/proc/loadavg")
    );
    if usize::try_from(soft).unwrap_or(usize::MAX) < needed {
        eprintln!(
            "warning: {} streams need about {needed} open files; the limit is {soft}",
            args.streams
        );
    }

    let bin = args.server_bin.clone().unwrap_or_else(server_binary);
    let workspace = tempfile::tempdir().expect("tempdir");
    let log_dir = tempfile::tempdir().expect("tempdir");
    let server = start_server(&bin, workspace.path(), log_dir.path(), &args.shell);
    let server_pid = server.child.id().to_string();
    println!(
        "server: {} serve (pid {server_pid}) at {}, shell {}",
        bin.display(),
        server.url,
        args.shell
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // The server forks a shell per connection on its async workers, so its
    // handshakes queue up behind the forks: a generous dial timeout.
    let mut config = ClientConfig::default().with_connect_timeout(args.connect_timeout);
    if let Some(bytes) = args.read_buffer {
        config = config.with_read_buffer_size(bytes);
    }
    if let Some(capacity) = args.queue_capacity {
        config = config.with_input_queue_capacity(capacity);
    }
    println!(
        "streams {}, input queue capacity {}, dial concurrency {}",
        args.streams, config.input_queue_capacity, args.concurrency
    );

    let seen = Arc::new(Seen::default());
    let base = snapshot(&rt);
    let server_base = quiescent_fds(&server_pid);

    // Open.
    let cpu = || (cpu_seconds("self"), cpu_seconds(&server_pid));
    let cpu_before_open = cpu();
    let open_start = Instant::now();
    let (clients, failures) = rt.block_on(open_all(
        &server.url,
        &config,
        args.streams,
        args.concurrency,
        &seen,
    ));
    let open_time = open_start.elapsed();
    let cpu_after_open = cpu();
    let opened = clients.len();
    // Wait until every stream has had its `connected` (its buffers are in
    // use), then stay idle.
    wait_for(
        Duration::from_secs(60),
        |connected: usize| connected >= opened,
        || seen.connected.load(Ordering::Relaxed) as usize,
    );
    // Shells, for the first `--shells` streams: one input each.
    let shells = args.shells.min(clients.len());
    rt.block_on(async {
        for client in &clients[..shells] {
            if let Some(stream) = client.workspace_stream() {
                let _ = stream.write_shell_input("echo ready\n").await;
            }
        }
    });
    let server_shells = wait_for(
        Duration::from_secs(60),
        |fds: Fds| fds.ptys >= server_base.ptys + shells,
        || fds_of(&server_pid),
    );
    std::thread::sleep(args.idle);
    let open = snapshot(&rt);
    let server_open = fds_of(&server_pid);
    let live_open: usize = clients.iter().map(Client::live_tasks).sum();
    let server_rss_open = rss_kib(&server_pid);

    // Close, all at once.
    let cpu_before_close = cpu();
    let close_start = Instant::now();
    rt.block_on(futures_util::future::join_all(
        clients.iter().map(Client::close),
    ));
    let close_time = close_start.elapsed();
    let cpu_after_close = cpu();
    let live_after: usize = clients.iter().map(Client::live_tasks).sum();
    let after = snapshot(&rt);
    drop(clients);
    std::thread::sleep(Duration::from_millis(100));
    let settled = snapshot(&rt);
    // The server ends each connection's shell session with a grace time
    // (SIGHUP, then SIGKILL), so it may take a moment after the closes.
    let server_settled = wait_for(
        Duration::from_secs(30),
        |fds: Fds| fds == server_base,
        || fds_of(&server_pid),
    );
    // Hand the allocator's free memory back to the OS, to tell retained
    // free memory from live memory.
    // SAFETY: malloc_trim has no preconditions (glibc).
    unsafe {
        libc::malloc_trim(0);
    }
    let trimmed_rss = rss_kib("self");

    // Stop the server (SIGTERM: it drains and exits 0).
    // SAFETY: kill has no memory-safety preconditions.
    unsafe {
        libc::kill(server.child.id() as libc::pid_t, libc::SIGTERM);
    }
    let mut child = server.child;
    let status = child.wait().expect("wait for the server");
    let log = std::fs::read_to_string(&server.log).unwrap_or_default();
    let no_shell = log
        .lines()
        .filter(|l| l.contains("cannot start the shell"))
        .count();

    let per_stream = |kib: u64, base_kib: u64| {
        (kib.saturating_sub(base_kib) as f64 * 1024.0) / opened.max(1) as f64
    };
    println!();
    println!("| figure | value |");
    println!("|---|---|");
    println!("| streams opened / asked | {opened} / {} |", args.streams);
    println!("| open failures | {failures} |");
    println!(
        "| time to open all | {:.2} s ({:.0} streams/s) |",
        open_time.as_secs_f64(),
        opened as f64 / open_time.as_secs_f64()
    );
    println!(
        "| CPU during open: client / server (+ its shells) | {:.2} s / {:.2} s |",
        cpu_after_open.0 - cpu_before_open.0,
        cpu_after_open.1 - cpu_before_open.1
    );
    println!(
        "| time to close all (join_all of Client::close) | {:.1} ms |",
        close_time.as_secs_f64() * 1e3
    );
    println!(
        "| CPU during close: client / server | {:.2} s / {:.2} s |",
        cpu_after_close.0 - cpu_before_close.0,
        cpu_after_close.1 - cpu_before_close.1
    );
    println!(
        "| client RSS baseline -> idle | {} -> {} KiB |",
        base.rss_kib, open.rss_kib
    );
    println!(
        "| client RSS per idle stream | {:.1} KiB |",
        per_stream(open.rss_kib, base.rss_kib) / 1024.0
    );
    println!(
        "| client RSS after close + drop, then after malloc_trim | {} KiB, {trimmed_rss} KiB |",
        settled.rss_kib
    );
    println!(
        "| server RSS with all streams open | {server_rss_open} KiB ({:.1} KiB per stream) |",
        server_rss_open as f64 / opened.max(1) as f64
    );
    println!(
        "| messages seen: connected / shell_exit / error / other | {} / {} / {} / {} |",
        seen.connected.load(Ordering::Relaxed),
        seen.shell_exit.load(Ordering::Relaxed),
        seen.error.load(Ordering::Relaxed),
        seen.other.load(Ordering::Relaxed)
    );
    println!("| connections the server could not give a shell | {no_shell} |");
    println!("| sum of live_tasks(): open -> right after close | {live_open} -> {live_after} |");
    println!(
        "| runtime alive tasks: baseline / open / right after close / settled | {} / {} / {} / {} |",
        base.alive_tasks, open.alive_tasks, after.alive_tasks, settled.alive_tasks
    );
    println!(
        "| open fds: baseline / open / right after close / settled | {} / {} / {} / {} |",
        base.fds, open.fds, after.fds, settled.fds
    );
    println!(
        "| server open fds: baseline / open / settled after close | {} / {} / {} |",
        server_base.all, server_open.all, server_settled.all
    );
    println!(
        "| server pty fds: baseline / shells started ({shells} asked) / open / settled after close | {} / {} / {} / {} |",
        server_base.ptys, server_shells.ptys, server_open.ptys, server_settled.ptys
    );
    println!("| server exit | {status} |");

    let mut ok = true;
    let mut check = |what: &str, good: bool| {
        println!("check {what}: {}", if good { "ok" } else { "FAILED" });
        ok &= good;
    };
    check(
        "all streams opened",
        opened == args.streams && failures == 0,
    );
    check("live_tasks() == 0 when close() returned", live_after == 0);
    check(
        "runtime alive tasks back to baseline",
        settled.alive_tasks == base.alive_tasks,
    );
    check("open fds back to baseline", settled.fds == base.fds);
    check(
        "the server's shells started",
        server_shells.ptys >= server_base.ptys + shells,
    );
    check(
        "server fds and ptys back to baseline",
        server_settled == server_base,
    );
    check("server exited cleanly", status.success());
    if !ok {
        std::process::exit(1);
    }
}

/// Open `n` streams, at most `concurrency` dials at a time; the clients and
/// the number of failures.
async fn open_all(
    url: &str,
    config: &ClientConfig,
    n: usize,
    concurrency: usize,
    seen: &Arc<Seen>,
) -> (Vec<Client>, usize) {
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let permit = permits.clone().acquire_owned().await.unwrap();
        let client = Client::with_config(url, config.clone()).expect("client");
        let seen = seen.clone();
        set.spawn(async move {
            let result = client
                .stream_workspace(move |event: Event| {
                    let counter = match &event {
                        Event::Message(envelope) => match envelope.message {
                            Message::Connected => &seen.connected,
                            Message::ShellExit { .. } => &seen.shell_exit,
                            Message::Error { .. } => &seen.error,
                            _ => &seen.other,
                        },
                        _ => &seen.other,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    std::future::ready(())
                })
                .await;
            drop(permit);
            match result {
                Ok(_stream) => Ok(client),
                Err(error) => Err(error),
            }
        });
    }
    let mut clients = Vec::with_capacity(n);
    let mut failures = 0;
    while let Some(joined) = set.join_next().await {
        match joined.expect("open task") {
            Ok(client) => clients.push(client),
            Err(error) => {
                if failures < 5 {
                    eprintln!("open failed: {error}");
                }
                failures += 1;
            }
        }
    }
    (clients, failures)
}

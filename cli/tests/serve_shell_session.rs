//! When a connection ends, its shell's whole session is ended with grace:
//! SIGHUP to every process group of the session, the grace time, then
//! SIGKILL. Real shells, real jobs, a client that goes away.
#![cfg(unix)]

mod common;

use std::io::Write;
use std::time::Duration;

use common::*;

/// A sleep length unique to this test run, so leftovers of other runs never match.
fn unique_secs(n: u32) -> String {
    format!("{}", 100_000 + (std::process::id() % 100_000) * 10 + n)
}

fn connect(serve: &Serve) -> std::net::TcpStream {
    let (status, _, mut tcp) = upgrade(serve.addr, &serve.auth());
    assert_eq!(status, 101);
    expect_json(&mut tcp, "connected", |v| v["type"] == "connected");
    tcp
}

/// A foreground job that traps SIGHUP gets to run its cleanup (it was
/// SIGKILLed at once before, as soon as the shell exited).
#[test]
fn a_foreground_jobs_hup_trap_runs_before_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &["--shell-grace", "5s"]);
    hup_trap_runs(&serve, dir.path());
}

/// The same under `nohup wsdrain serve` (SIGHUP ignored): an ignored signal
/// stays ignored across `exec`, and a POSIX shell refuses to trap a signal
/// ignored on entry, so the job never heard the hang-up and was SIGKILLed
/// after the grace time. The shell now starts with every signal at its
/// default, as a login shell does.
#[test]
fn a_serve_started_with_sighup_ignored_still_hangs_up_its_shells() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start_with(dir.path(), &["--shell-grace", "5s"], |command| {
        // SAFETY: signal() is async-signal-safe; nothing else runs here.
        unsafe {
            command.pre_exec(|| {
                libc::signal(libc::SIGHUP, libc::SIG_IGN);
                Ok(())
            });
        }
    });
    hup_trap_runs(&serve, dir.path());
}

/// A job that traps SIGHUP, then the client goes away: the trap's cleanup
/// (which takes a second, as removing a lock file after flushing state
/// might) runs before the grace time is up.
fn hup_trap_runs(serve: &Serve, workspace: &std::path::Path) {
    let mut tcp = connect(serve);
    tcp.write_all(&shell_input(
        "sh -c 'trap \"sleep 1; echo done > hup-cleaned; exit 0\" HUP; echo ar\"\"med; while :; do sleep 0.1; done'\n",
    ))
    .unwrap();
    expect_shell_output(&mut tcp, "armed");
    reset(tcp);
    // The redirection creates the file before `echo` writes to it: wait for
    // the content, not for the file.
    let path = workspace.join("hup-cleaned");
    wait_until("the trap wrote `done` to its file", PATIENCE, || {
        std::fs::read_to_string(&path).is_ok_and(|content| content == "done\n")
    });
    wait_until("the disconnect is logged", PATIENCE, || {
        serve.stderr().contains("client disconnected")
    });
}

/// Jobs that stay in the shell's session but not in its process group or
/// the foreground (`nohup ... &`, a background job) end with the connection.
#[test]
fn background_and_nohup_jobs_end_with_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &[]);
    let mut tcp = connect(&serve);
    let (a, b) = (
        format!("sleep {}", unique_secs(1)),
        format!("sleep {}", unique_secs(2)),
    );
    tcp.write_all(&shell_input(&format!(
        "nohup {a} >/dev/null 2>&1 & {b} & echo bg\"\"ok\n"
    )))
    .unwrap();
    expect_shell_output(&mut tcp, "bgok");
    wait_until("both jobs run", PATIENCE, || {
        !processes_matching(&a).is_empty() && !processes_matching(&b).is_empty()
    });
    drop(tcp);
    wait_until("both jobs are ended", PATIENCE, || {
        processes_matching(&a).is_empty() && processes_matching(&b).is_empty()
    });
}

/// A job left behind by a shell that exited by itself ends when the
/// connection does.
#[test]
fn jobs_left_by_an_exited_shell_end_with_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &[]);
    let mut tcp = connect(&serve);
    let job = format!("sleep {}", unique_secs(3));
    tcp.write_all(&shell_input(&format!("nohup {job} >/dev/null 2>&1 &\n")))
        .unwrap();
    wait_until("the job runs", PATIENCE, || {
        !processes_matching(&job).is_empty()
    });
    tcp.write_all(&shell_input("exit\n")).unwrap();
    expect_json(&mut tcp, "shell_exit", |v| v["type"] == "shell_exit");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !processes_matching(&job).is_empty(),
        "the job lives while the connection does"
    );
    drop(tcp);
    wait_until("the job is ended", PATIENCE, || {
        processes_matching(&job).is_empty()
    });
}

/// Child processes of `pid` (its shells), from `/proc`.
fn children(pid: i32) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .flat_map(|task| {
            std::fs::read_to_string(task.path().join("children"))
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|c| c.parse().ok())
                .collect::<Vec<i32>>()
        })
        .filter(|&child| alive(child))
        .collect()
}

/// Connections that only watch files fork no shell; the first
/// `shell_input` of a connection forks its shell.
#[test]
fn no_shell_is_forked_until_a_connection_needs_one() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &[]);
    let mut idle: Vec<_> = (0..10).map(|_| connect(&serve)).collect();
    std::fs::write(dir.path().join("seen.txt"), "x").unwrap();
    for tcp in &mut idle {
        expect_json(tcp, "the change", |v| v["type"] == "file_change");
    }
    assert_eq!(
        children(serve.pid()),
        Vec::<i32>::new(),
        "shells forked for idle connections"
    );
    let mut tcp = connect(&serve);
    tcp.write_all(&shell_input("echo fo\"\"rked\n")).unwrap();
    expect_shell_output(&mut tcp, "forked");
    assert_eq!(children(serve.pid()).len(), 1);
}

/// The server's open file descriptors: all of them, and those of ptys
/// (`/dev/ptmx` masters and `/dev/pts/N` sides).
fn server_fds(pid: i32) -> (usize, usize) {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return (0, 0);
    };
    let targets: Vec<_> = fds
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .collect();
    let ptys = targets
        .iter()
        .filter(|t| t.starts_with("/dev/ptmx") || t.starts_with("/dev/pts"))
        .count();
    (targets.len(), ptys)
}

/// Every connection that started a shell gives back its pty, its socket
/// and its shell when it ends, whether the client closes or vanishes: the
/// server's descriptors return to what they were before.
#[test]
fn ended_connections_give_back_their_ptys_and_descriptors() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &["--shell-grace", "100ms"]);
    let open_shell = |serve: &Serve| {
        let mut tcp = connect(serve);
        tcp.write_all(&shell_input("echo re\"\"ady\n")).unwrap();
        expect_shell_output(&mut tcp, "ready");
        tcp
    };
    // One connection first, so that whatever the server opens once, on
    // its first shell, is in the baseline.
    drop(open_shell(&serve));
    // Quiet: no child (the shell, or `git` at start-up, whose pipes open
    // before it is a child), and the same descriptors 100 ms apart.
    let mut baseline = server_fds(serve.pid());
    wait_until("the server is quiet", PATIENCE, || {
        std::thread::sleep(Duration::from_millis(100));
        let now = server_fds(serve.pid());
        let quiet = now == baseline && children(serve.pid()).is_empty();
        baseline = now;
        quiet
    });
    assert_eq!(baseline.1, 0, "ptys open with no shell running");

    let mut conns: Vec<_> = (0..12).map(|_| open_shell(&serve)).collect();
    let open = server_fds(serve.pid());
    assert_eq!(children(serve.pid()).len(), 12);
    assert!(open.1 >= 12, "a pty per shell, saw {} pty fds", open.1);
    assert!(
        open.0 >= baseline.0 + 24,
        "a socket and a pty per connection"
    );

    // Half vanish (reset), half end cleanly (FIN).
    for (i, tcp) in conns.drain(..).enumerate() {
        if i % 2 == 0 {
            reset(tcp);
        } else {
            drop(tcp);
        }
    }
    wait_until("every shell is gone", PATIENCE, || {
        children(serve.pid()).is_empty()
    });
    wait_until(
        "the server's descriptors are back to baseline",
        PATIENCE,
        || server_fds(serve.pid()) == baseline,
    );
}

//! The shell of one connection, on its own pty.

use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Child;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Shared, bump, drop_one, encode};
use wsdrain::protocol::Message;

/// After the shell exits, how long to keep reading output still in the pty.
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(200);

/// What the connection asks of its shell's terminal, in order.
#[derive(Debug)]
pub(crate) enum Input {
    /// Bytes to write to the terminal.
    Data(String),
    /// A new terminal size.
    Resize { cols: u16, rows: u16 },
}

/// The connection's handle on its shell.
pub(crate) struct Shell {
    input: mpsc::Sender<Input>,
    exited: Arc<AtomicBool>,
    task: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl Shell {
    /// The queue to the shell's writer task, which writes to the terminal
    /// (and waits while the terminal's input buffer is full).
    pub(crate) fn input(&self) -> &mpsc::Sender<Input> {
        &self.input
    }

    /// Whether the shell has exited.
    pub(crate) fn has_exited(&self) -> bool {
        self.exited.load(Ordering::Acquire)
    }

    /// Wait until the shell is reaped and its session ended (after the
    /// connection's stop token fired or the shell exited).
    pub(crate) async fn wait(self) {
        drop(self.input);
        let _ = self.writer.await;
        let _ = self.task.await;
    }
}

/// Start the shell in the workspace, its output task and its input writer
/// task (fed by a queue of `input_queue` messages). Output goes to `out` as
/// `shell_output`, the exit as `shell_exit`; `stop` ends the shell's session.
pub(crate) fn spawn(
    shared: &Arc<Shared>,
    tracker: &TaskTracker,
    out: mpsc::Sender<Utf8Bytes>,
    stop: CancellationToken,
    input_queue: usize,
) -> std::io::Result<Shell> {
    let (pty, pts) = pty_process::open().map_err(std::io::Error::other)?;
    pty.resize(pty_process::Size::new(24, 80))
        .map_err(std::io::Error::other)?;
    let mut command = pty_process::Command::new(&shared.config.shell)
        .current_dir(&shared.root)
        .kill_on_drop(true);
    if std::env::var_os("TERM").is_none_or(|t| t.is_empty()) {
        command = command.env("TERM", "xterm-256color");
    }
    // The shell starts with every signal at its default, as login and sshd
    // start one: `wsdrain serve` itself may run with SIGHUP ignored (under
    // `nohup`), an ignored signal stays ignored across exec, and the shell
    // and its jobs would then never hear the hang-up that ends a session
    // (a POSIX shell even refuses to trap a signal ignored on entry).
    // SAFETY: signal() is async-signal-safe, and the closure touches no
    // memory of the parent's.
    command = unsafe {
        command.pre_exec(|| {
            for signal in 1..32 {
                if signal != libc::SIGKILL && signal != libc::SIGSTOP {
                    libc::signal(signal, libc::SIG_DFL);
                }
            }
            Ok(())
        })
    };
    let child = command.spawn(pts).map_err(std::io::Error::other)?;
    let pid = child.id().unwrap_or(0);
    let master = pty.as_raw_fd();
    let (reader, writer) = pty.into_split();
    bump(&shared.counters.shells_running, 1);
    tracing::debug!(pid, shell = ?shared.config.shell, "shell started");
    let exited = Arc::new(AtomicBool::new(false));
    let (input, input_rx) = mpsc::channel(input_queue.max(1));
    let writer = tracker.spawn(input_loop(
        writer,
        input_rx,
        out.clone(),
        stop.clone(),
        exited.clone(),
    ));
    let task = tracker.spawn(output_loop(
        shared.clone(),
        child,
        master,
        reader,
        out,
        stop,
        exited.clone(),
    ));
    Ok(Shell {
        input,
        exited,
        task,
        writer,
    })
}

/// Write the queued input to the terminal, in order. Only this task ever
/// waits on the terminal's input buffer.
async fn input_loop(
    mut writer: pty_process::OwnedWritePty,
    mut queue: mpsc::Receiver<Input>,
    out: mpsc::Sender<Utf8Bytes>,
    stop: CancellationToken,
    exited: Arc<AtomicBool>,
) {
    loop {
        let input = tokio::select! {
            () = stop.cancelled() => return,
            input = queue.recv() => match input {
                Some(input) => input,
                None => return,
            },
        };
        let result = match input {
            Input::Data(data) => {
                tokio::select! {
                    () = stop.cancelled() => return,
                    r = async {
                        writer.write_all(data.as_bytes()).await?;
                        writer.flush().await
                    } => r.map_err(|e| format!("shell input not written: {e}")),
                }
            }
            Input::Resize { cols, rows } => writer
                .resize(pty_process::Size::new(rows, cols))
                .map_err(|e| format!("shell not resized: {e}")),
        };
        if let Err(mut error) = result {
            if exited.load(Ordering::Acquire) {
                error = "shell input not written: the shell has exited".into();
            }
            tokio::select! {
                () = stop.cancelled() => return,
                _ = out.send(encode(Message::Error { error })) => {}
            }
        }
    }
}

async fn output_loop(
    shared: Arc<Shared>,
    mut child: Child,
    master: RawFd,
    mut reader: pty_process::OwnedReadPty,
    out: mpsc::Sender<Utf8Bytes>,
    stop: CancellationToken,
    exited: Arc<AtomicBool>,
) {
    let pid = child.id().unwrap_or(0);
    let mut buf = vec![0u8; 16 * 1024];
    let mut pending = Vec::new();
    let mut status = None;
    let drain = tokio::time::sleep(Duration::MAX);
    tokio::pin!(drain);
    let stopped = loop {
        let read = tokio::select! {
            () = stop.cancelled() => break true,
            s = child.wait(), if status.is_none() => {
                status = Some(s);
                drain.as_mut().reset(tokio::time::Instant::now() + DRAIN_AFTER_EXIT);
                continue;
            }
            () = &mut drain => break false,
            r = reader.read(&mut buf) => r,
        };
        let n = match read {
            Ok(0) => break false,
            Ok(n) => n,
            // EIO: every holder of the terminal's other side has closed it.
            Err(error) => {
                if error.raw_os_error() != Some(libc::EIO) {
                    tracing::debug!(pid, %error, "shell output read failed");
                }
                break false;
            }
        };
        let data = decode_chunk(&mut pending, &buf[..n]);
        if data.is_empty() {
            continue;
        }
        // Backpressure: a full queue stops the reading of this shell only.
        tokio::select! {
            () = stop.cancelled() => break true,
            r = out.send(encode(Message::ShellOutput { data })) => if r.is_err() { break true },
        }
    };
    exited.store(true, Ordering::Release);
    let grace = shared.config.shell_grace;
    // The shell is a session leader: its pid is its session's id.
    let sid = libc::pid_t::try_from(pid).unwrap_or(0);

    let status = if stopped && status.is_none() {
        end_session(Some(&mut child), sid, Some(master), grace).await
    } else {
        match status {
            Some(status) => status,
            // Output ended first (the terminal closed): the shell is exiting;
            // give it the grace time, then make sure.
            None => match tokio::time::timeout(grace, child.wait()).await {
                Ok(status) => status,
                Err(_) => end_session(Some(&mut child), sid, Some(master), grace).await,
            },
        }
    };
    drop_one(&shared.counters.shells_running);
    let code = match &status {
        Ok(status) => status
            .code()
            .or_else(|| status.signal().map(|s| 128 + s))
            .unwrap_or(-1),
        Err(error) => {
            tracing::warn!(pid, %error, "waiting for the shell failed");
            -1
        }
    };
    tracing::debug!(pid, code, stopped, "shell ended");
    if !stopped {
        if !pending.is_empty() {
            let data = String::from_utf8_lossy(&pending).into_owned();
            let _ = out.try_send(encode(Message::ShellOutput { data }));
        }
        tokio::select! {
            () = stop.cancelled() => {}
            _ = out.send(encode(Message::ShellExit { code: code.into() })) => {}
        }
        drop(out);
        // Jobs the shell left behind (`nohup`, `disown`, background jobs
        // after `exit`) stay in its session: they end with the connection.
        // Their membership keeps the session id from being reused.
        if sid > 1 && !session_members(sid).is_empty() {
            stop.cancelled().await;
        }
    }
    if sid > 1 && !session_members(sid).is_empty() {
        let _ = end_session(None, sid, None, grace).await;
    }
}

/// End a shell's session: `SIGHUP` (what a closing terminal sends) and
/// `SIGCONT` to every process group of the session (the shell's, its jobs',
/// the terminal's foreground group), then wait until every process of the
/// session is gone or `grace` has passed, then `SIGKILL` what is left; the
/// shell (when given) is reaped. Processes that left the session (`setsid`)
/// are not found.
async fn end_session(
    mut child: Option<&mut Child>,
    sid: libc::pid_t,
    master: Option<RawFd>,
    grace: Duration,
) -> std::io::Result<std::process::ExitStatus> {
    if sid <= 1 {
        return match child {
            Some(child) => child.wait().await,
            None => Ok(std::process::ExitStatus::from_raw(0)),
        };
    }
    // SAFETY: tcgetpgrp only reads the terminal's foreground group; the fd is
    // open as long as the caller's reader half is.
    let foreground = master.map_or(-1, |fd| unsafe { libc::tcgetpgrp(fd) });
    let mut groups: Vec<libc::pid_t> = vec![sid];
    let add = |g: libc::pid_t, groups: &mut Vec<libc::pid_t>| {
        if g > 1 && !groups.contains(&g) {
            groups.push(g);
        }
    };
    add(foreground, &mut groups);
    for (_, pgid) in session_members(sid) {
        add(pgid, &mut groups);
    }
    for &group in &groups {
        signal_group(group, libc::SIGHUP);
        signal_group(group, libc::SIGCONT);
    }
    let deadline = tokio::time::Instant::now() + grace;
    let mut status = None;
    loop {
        if status.is_none()
            && let Some(child) = child.as_deref_mut()
            && let Ok(Some(exited)) = child.try_wait()
        {
            status = Some(exited);
        }
        let shell_done = child.is_none() || status.is_some();
        if shell_done && session_members(sid).is_empty() {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::debug!(sid, "session outlived the grace time; sending SIGKILL");
            break;
        }
        tokio::time::sleep(SESSION_POLL).await;
    }
    // SIGKILL whatever is left, group by group and one by one (a process may
    // have moved to a group of its own meanwhile).
    for (member, pgid) in session_members(sid) {
        signal_group(pgid, libc::SIGKILL);
        // SAFETY: kill has no memory-safety preconditions.
        unsafe {
            libc::kill(member, libc::SIGKILL);
        }
    }
    match (child, status) {
        (_, Some(status)) => Ok(status),
        (Some(child), None) => {
            signal_group(sid, libc::SIGKILL);
            let _ = child.start_kill();
            child.wait().await
        }
        (None, None) => Ok(std::process::ExitStatus::from_raw(0)),
    }
}

/// How often [`end_session`] looks whether the session is gone.
const SESSION_POLL: Duration = Duration::from_millis(20);

fn signal_group(group: libc::pid_t, signal: libc::c_int) {
    if group > 1 {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe {
            libc::kill(-group, signal);
        }
    }
}

/// The live (not zombie) processes of session `sid`, with their process
/// group ids, from `/proc`.
fn session_members(sid: libc::pid_t) -> Vec<(libc::pid_t, libc::pid_t)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: libc::pid_t = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let (state, pgid, session) = parse_stat(&stat)?;
            (session == sid && state != 'Z' && state != 'X').then_some((pid, pgid))
        })
        .collect()
}

/// State, process group and session of a `/proc/PID/stat` line.
fn parse_stat(stat: &str) -> Option<(char, libc::pid_t, libc::pid_t)> {
    // The command name is in parentheses and may contain anything.
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgid = fields.next()?.parse().ok()?;
    let session = fields.next()?.parse().ok()?;
    Some((state, pgid, session))
}

/// Decode a chunk of terminal output, keeping an incomplete UTF-8 sequence
/// at its end for the next chunk (invalid bytes become U+FFFD).
fn decode_chunk(pending: &mut Vec<u8>, chunk: &[u8]) -> String {
    pending.extend_from_slice(chunk);
    let keep = incomplete_tail(pending);
    let cut = pending.len() - keep;
    let text = String::from_utf8_lossy(&pending[..cut]).into_owned();
    pending.drain(..cut);
    text
}

/// Length of a UTF-8 sequence cut short at the end of `bytes` (0 to 3).
fn incomplete_tail(bytes: &[u8]) -> usize {
    for back in 1..=bytes.len().min(3) {
        let b = bytes[bytes.len() - back];
        if b & 0xC0 == 0x80 {
            continue; // continuation byte: look further back
        }
        let need = match b {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => return 0,
        };
        return if need > back { back } else { 0 };
    }
    0
}

#[cfg(test)]
mod tests {
    use super::{decode_chunk, parse_stat};

    #[test]
    fn proc_stat() {
        let line = "4242 (a) b (c)) S 1 4240 4200 34816 4240 4194560 0 0";
        assert_eq!(parse_stat(line), Some(('S', 4240, 4200)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn utf8_split_across_chunks() {
        let text = "héllo €uro 😀";
        let bytes = text.as_bytes();
        for split in 0..=bytes.len() {
            let mut pending = Vec::new();
            let mut got = decode_chunk(&mut pending, &bytes[..split]);
            got += &decode_chunk(&mut pending, &bytes[split..]);
            assert_eq!(got, text, "split at {split}");
            assert!(pending.is_empty());
        }
        let mut pending = Vec::new();
        assert_eq!(decode_chunk(&mut pending, b"a\xffb"), "a\u{fffd}b");
    }
}

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

/// The connection's handle on its shell.
pub(crate) struct Shell {
    writer: pty_process::OwnedWritePty,
    exited: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Shell {
    /// Write `data` to the shell's terminal (waits while the terminal's
    /// input buffer is full).
    pub(crate) async fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        if self.exited.load(Ordering::Acquire) {
            return Err(std::io::Error::other("the shell has exited"));
        }
        self.writer.write_all(data).await?;
        self.writer.flush().await
    }

    /// Set the terminal size.
    pub(crate) fn resize(&self, cols: i64, rows: i64) -> Result<(), String> {
        // The wire has Go's 64-bit `int`; a terminal has 16-bit sizes.
        let (Ok(cols), Ok(rows)) = (u16::try_from(cols), u16::try_from(rows)) else {
            return Err(format!("invalid size {cols}x{rows}"));
        };
        if cols == 0 || rows == 0 {
            return Err(format!("invalid size {cols}x{rows}"));
        }
        self.writer
            .resize(pty_process::Size::new(rows, cols))
            .map_err(|e| e.to_string())
    }

    /// Wait until the shell is reaped (after the connection's stop token fired
    /// or the shell exited).
    pub(crate) async fn wait(self) {
        drop(self.writer);
        let _ = self.task.await;
    }
}

/// Start the shell in the workspace and its output task. Output goes to
/// `out` as `shell_output`, the exit as `shell_exit`; `stop` kills it.
pub(crate) fn spawn(
    shared: &Arc<Shared>,
    tracker: &TaskTracker,
    out: mpsc::Sender<Utf8Bytes>,
    stop: CancellationToken,
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
    let child = command.spawn(pts).map_err(std::io::Error::other)?;
    let pid = child.id().unwrap_or(0);
    let master = pty.as_raw_fd();
    let (reader, writer) = pty.into_split();
    bump(&shared.counters.shells_running, 1);
    tracing::debug!(pid, shell = ?shared.config.shell, "shell started");
    let exited = Arc::new(AtomicBool::new(false));
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
        writer,
        exited,
        task,
    })
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

    let status = if stopped && status.is_none() {
        terminate(&mut child, pid, master, shared.config.shell_grace).await
    } else {
        match status {
            Some(status) => status,
            // Output ended first (the terminal closed): the shell is exiting;
            // give it the grace time, then make sure.
            None => match tokio::time::timeout(shared.config.shell_grace, child.wait()).await {
                Ok(status) => status,
                Err(_) => terminate(&mut child, pid, master, shared.config.shell_grace).await,
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
    }
}

/// Stop the shell: `SIGHUP` (what a closing terminal sends) to its process
/// group and to the terminal's foreground group, then `SIGKILL` after
/// `grace`; reap it either way.
async fn terminate(
    child: &mut Child,
    pid: u32,
    master: RawFd,
    grace: Duration,
) -> std::io::Result<std::process::ExitStatus> {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return child.wait().await;
    };
    // The shell is a session leader, so its process group id is its pid. The
    // pid cannot be reused before we reap it, so signalling is safe.
    // SAFETY: tcgetpgrp only reads the terminal's foreground group; the fd is
    // open as long as `reader` (held by our caller) is.
    let foreground = unsafe { libc::tcgetpgrp(master) };
    let groups: Vec<libc::pid_t> =
        [pid, foreground]
            .into_iter()
            .filter(|&g| g > 1)
            .fold(Vec::new(), |mut v, g| {
                if !v.contains(&g) {
                    v.push(g);
                }
                v
            });
    let signal_all = |signal| {
        for &group in &groups {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe {
                libc::kill(-group, signal);
            }
        }
    };
    signal_all(libc::SIGHUP);
    signal_all(libc::SIGCONT);
    if let Ok(status) = tokio::time::timeout(grace, child.wait()).await {
        // The group may outlive its leader: finish it off.
        signal_all(libc::SIGKILL);
        return status;
    }
    tracing::debug!(pid, "shell ignored SIGHUP; sending SIGKILL");
    signal_all(libc::SIGKILL);
    let _ = child.start_kill();
    child.wait().await
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
    use super::decode_chunk;

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

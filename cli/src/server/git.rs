//! `git_status` events: run `git status` when the workspace changes, at a
//! bounded rate, and publish the status when it changed.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_util::sync::CancellationToken;

use super::{Shared, encode, rfc3339_now};
use wsdrain::protocol::{FileInfo, GitStatus, Message};

/// Bound on one `git` run.
const GIT_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) async fn run(
    shared: Arc<Shared>,
    latest: watch::Sender<Option<Utf8Bytes>>,
    trigger: Arc<Notify>,
    stop: CancellationToken,
) {
    let root = shared.root.clone();
    let inside = tokio::select! {
        () = stop.cancelled() => return,
        r = git(&root, &["rev-parse", "--is-inside-work-tree"]) => r,
    };
    match inside {
        Ok(out) if out.trim_ascii() == b"true" => {}
        Ok(_) | Err(_) => {
            tracing::info!("the workspace is not in a git repository: no git_status events");
            return;
        }
    }
    let min_interval = shared.config.git_interval;
    let poll = shared.config.git_poll_interval;
    let mut last: Option<GitStatus> = None;
    loop {
        let started = tokio::time::Instant::now();
        let status = tokio::select! {
            () = stop.cancelled() => return,
            r = git(&root, &["status", "--porcelain=v2", "--branch", "-z"]) => r,
        };
        match status {
            Ok(out) => {
                let status = parse_status(&out);
                if last.as_ref() != Some(&status) {
                    let message = encode(Message::GitStatus(Box::new(GitStatus {
                        timestamp: rfc3339_now(),
                        ..status.clone()
                    })));
                    latest.send_replace(Some(message.clone()));
                    shared.publish(message);
                    last = Some(status);
                }
            }
            Err(error) => tracing::warn!(%error, "git status failed"),
        }
        // Wait for a change (or the poll period), then respect the rate bound.
        let poll_sleep = async {
            if poll.is_zero() {
                std::future::pending::<()>().await
            } else {
                tokio::time::sleep(poll).await
            }
        };
        tokio::select! {
            () = stop.cancelled() => return,
            () = trigger.notified() => {}
            () = poll_sleep => {}
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep_until(started + min_interval) => {}
        }
    }
}

/// Run git in `root` and return its stdout; never writes the index.
async fn git(root: &Path, args: &[&str]) -> std::io::Result<Vec<u8>> {
    let child = tokio::process::Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .env("GIT_OPTIONAL_LOCKS", "0")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let output = tokio::time::timeout(GIT_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "git timed out"))??;
    if !output.status.success() {
        return Err(std::io::Error::other(format!(
            "git {} exited with {}: {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(output.stdout)
}

/// Parse `git status --porcelain=v2 --branch -z` (timestamp left empty).
pub(crate) fn parse_status(out: &[u8]) -> GitStatus {
    let mut status = GitStatus::default();
    let mut records = out
        .split(|&b| b == 0)
        .map(|r| String::from_utf8_lossy(r).into_owned());
    while let Some(record) = records.next() {
        if let Some(header) = record.strip_prefix("# ") {
            let (key, value) = header.split_once(' ').unwrap_or((header, ""));
            match key {
                "branch.oid" if value != "(initial)" => status.head_commit = value.into(),
                "branch.head" if value != "(detached)" => status.branch = value.into(),
                "branch.upstream" => status.remote_branch = value.into(),
                "branch.ab" => {
                    let mut counts = value
                        .split(' ')
                        .map(|n| n.trim_start_matches(['+', '-']).parse().unwrap_or(0));
                    status.remote_ahead = counts.next().unwrap_or(0);
                    status.remote_behind = counts.next().unwrap_or(0);
                    status.ahead = status.remote_ahead;
                    status.behind = status.remote_behind;
                }
                _ => {}
            }
            continue;
        }
        let kind = record.chars().next().unwrap_or(' ');
        let fields_before_path = match kind {
            '1' => 8,
            '2' => 9,
            'u' => 10,
            '?' => 1,
            _ => continue, // '!' (ignored) and anything new
        };
        let fields: Vec<&str> = record.splitn(fields_before_path + 1, ' ').collect();
        let (Some(path), Some(xy)) = (fields.get(fields_before_path), fields.get(1)) else {
            continue;
        };
        let path = (*path).to_owned();
        let xy: Vec<char> = if kind == '?' {
            vec!['?', '?']
        } else {
            xy.chars().collect()
        };
        let (x, y) = (
            xy.first().copied().unwrap_or('.'),
            xy.get(1).copied().unwrap_or('.'),
        );
        let mut info = FileInfo {
            path: path.clone(),
            ..FileInfo::default()
        };
        let list = match kind {
            '?' => {
                info.status = "untracked".into();
                &mut status.untracked
            }
            '2' => {
                // The original path is the next NUL-separated record.
                info.old_path = records.next().unwrap_or_default();
                info.status = "renamed".into();
                info.staged = true;
                &mut status.renamed
            }
            'u' => {
                info.status = "modified".into();
                &mut status.modified
            }
            _ if x == 'A' || x == 'C' => {
                info.status = "added".into();
                info.staged = true;
                &mut status.added
            }
            _ if x == 'D' || y == 'D' => {
                info.status = "deleted".into();
                info.staged = x == 'D';
                &mut status.deleted
            }
            _ => {
                info.status = "modified".into();
                info.staged = x != '.';
                &mut status.modified
            }
        };
        list.push(path.clone());
        status.files.insert(path, info);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::parse_status;

    #[test]
    fn porcelain_v2() {
        let out = b"# branch.oid 6bc56aae\0# branch.head main\0# branch.upstream origin/main\0# branch.ab +2 -1\0\
2 RM N... 100644 100644 100644 7898 7898 R100 c d\0a\0\
1 A. N... 000000 100644 100644 0000 b680 z\0\
1 .M N... 100644 100644 100644 1111 1111 dir/m.txt\0\
1 D. N... 100644 000000 000000 2222 0000 gone\0\
? new file\0";
        let s = parse_status(out);
        assert_eq!(s.branch, "main");
        assert_eq!(s.remote_branch, "origin/main");
        assert_eq!(
            (s.ahead, s.behind, s.remote_ahead, s.remote_behind),
            (2, 1, 2, 1)
        );
        assert_eq!(s.head_commit, "6bc56aae");
        assert_eq!(s.renamed, ["c d"]);
        assert_eq!(s.files["c d"].old_path, "a");
        assert_eq!(s.added, ["z"]);
        assert_eq!(s.modified, ["dir/m.txt"]);
        assert!(!s.files["dir/m.txt"].staged);
        assert_eq!(s.deleted, ["gone"]);
        assert_eq!(s.untracked, ["new file"]);
        let fresh = parse_status(b"# branch.oid (initial)\0# branch.head master\0");
        assert_eq!(fresh.head_commit, "");
        assert_eq!(fresh.branch, "master");
    }
}

//! The workspace watcher and the coalescing of its events (the rule is in
//! the [module docs](super#file-events-and-their-coalescing-rule)).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use notify::event::{EventKind, ModifyKind, RenameMode};
use notify::{RecursiveMode, Watcher};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Shared, encode, rfc3339_now};
use wsdrain::protocol::{FileChange, FileOperation, Message};

/// Raw events waiting for the coalescer; past this the watcher thread drops
/// events and the batch ends with a `refresh`.
const RAW_QUEUE: usize = 8192;

/// What happened to one path, as far as the batch has seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Create,
    Write,
    Chmod,
    Remove,
    Rename,
    /// Created, then removed or renamed away, within the batch: publish nothing.
    Vanished,
}

/// Fold one more event of a path into its state (see the rule's table).
pub(crate) fn fold(state: Option<Op>, next: Op) -> Op {
    use Op::*;
    let Some(state) = state else { return next };
    match (state, next) {
        (Create, Create | Write | Chmod) => Create,
        (Create | Vanished, Remove | Rename) => Vanished,
        (Vanished, Create | Write | Chmod) => Create,
        (Write, Write | Chmod) | (Chmod, Write) => Write,
        (Chmod, Chmod) => Chmod,
        (Write | Chmod | Remove | Rename, Remove) => Remove,
        (Write | Chmod | Remove | Rename, Rename) => Rename,
        // Gone, then there again: the path was replaced.
        (Remove | Rename, Create | Write | Chmod) => Write,
        (Write | Chmod, Create) => Write,
        (_, Vanished) => Vanished,
    }
}

impl Op {
    fn operation(self) -> Option<FileOperation> {
        Some(match self {
            Op::Create => FileOperation::Create,
            Op::Write => FileOperation::Write,
            Op::Chmod => FileOperation::Chmod,
            Op::Remove => FileOperation::Remove,
            Op::Rename => FileOperation::Rename,
            Op::Vanished => return None,
        })
    }
}

/// Map one raw event to (path index, op) pairs.
fn classify(event: &notify::Event) -> Vec<(usize, Op)> {
    let ops: &[Op] = match event.kind {
        EventKind::Create(_) => &[Op::Create],
        EventKind::Remove(_) => &[Op::Remove],
        EventKind::Modify(ModifyKind::Metadata(_)) => &[Op::Chmod],
        EventKind::Modify(ModifyKind::Name(RenameMode::From)) => &[Op::Rename],
        EventKind::Modify(ModifyKind::Name(RenameMode::To)) => &[Op::Create],
        // Old path, new path (inotify also sends From and To; folding dedupes).
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => &[Op::Rename, Op::Create],
        EventKind::Modify(ModifyKind::Name(_)) => &[Op::Rename],
        EventKind::Modify(_) => &[Op::Write],
        EventKind::Access(_) | EventKind::Any | EventKind::Other => &[],
    };
    if ops.len() == 1 {
        (0..event.paths.len()).map(|i| (i, ops[0])).collect()
    } else {
        ops.iter()
            .copied()
            .enumerate()
            .take(event.paths.len())
            .collect()
    }
}

/// One batch: paths in first-seen order with their folded state.
#[derive(Default)]
struct Batch {
    order: Vec<String>,
    state: HashMap<String, Op>,
    refresh: bool,
    /// The workspace directory itself was removed or renamed.
    root_gone: bool,
}

impl Batch {
    fn add(&mut self, path: String, op: Op) {
        match self.state.get_mut(&path) {
            Some(state) => *state = fold(Some(*state), op),
            None => {
                self.order.push(path.clone());
                self.state.insert(path, op);
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.order.is_empty() && !self.refresh
    }
}

/// The path relative to the workspace root, `/`-separated; `None` for the
/// root itself and paths outside it.
fn relative(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let parts: Vec<_> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect();
    if parts.is_empty() {
        return None;
    }
    Some(parts.join("/"))
}

fn is_git_internal(rel: &str) -> bool {
    rel == ".git" || rel.starts_with(".git/")
}

/// The watcher, shared by the server (which drops it at shutdown) and the
/// coalescing task (which re-adds the workspace when it comes back).
pub(crate) type SharedWatcher = Arc<std::sync::Mutex<notify::RecommendedWatcher>>;

/// How often, when no event comes, the workspace is checked for existence.
const ROOT_CHECK: Duration = Duration::from_secs(1);
/// How often a deleted workspace is looked for.
const REAPPEAR_POLL: Duration = Duration::from_millis(250);

/// Start the recursive watcher and the coalescing task. Symbolic links are
/// not followed: a link to `/usr` must not add thousands of watches, nor
/// publish changes outside the workspace.
pub(crate) fn start(
    shared: &Arc<Shared>,
    tracker: &TaskTracker,
    stop: &CancellationToken,
    git_trigger: Arc<Notify>,
) -> notify::Result<SharedWatcher> {
    let (tx, rx) = mpsc::channel(RAW_QUEUE);
    let overflow = Arc::new(AtomicBool::new(false));
    let flag = overflow.clone();
    let mut watcher = notify::RecommendedWatcher::new(
        move |event: notify::Result<notify::Event>| {
            // Never block the watcher thread: a full queue means "rescan".
            if tx.try_send(event).is_err() {
                flag.store(true, Ordering::Relaxed);
            }
        },
        notify::Config::default().with_follow_symlinks(false),
    )?;
    watcher.watch(&shared.root, RecursiveMode::Recursive)?;
    let watcher = Arc::new(std::sync::Mutex::new(watcher));
    tracker.spawn(coalesce(
        shared.clone(),
        rx,
        overflow,
        stop.clone(),
        git_trigger,
        watcher.clone(),
    ));
    Ok(watcher)
}

async fn coalesce(
    shared: Arc<Shared>,
    mut rx: mpsc::Receiver<notify::Result<notify::Event>>,
    overflow: Arc<AtomicBool>,
    stop: CancellationToken,
    git_trigger: Arc<Notify>,
    watcher: SharedWatcher,
) {
    let window = shared.config.coalesce_window;
    let mut batch = Batch::default();
    loop {
        // A batch opens with its first event...
        let first = tokio::select! {
            () = stop.cancelled() => return,
            event = rx.recv() => event,
            // The kernel reports a deleted directory only once nothing uses it
            // (a shell's working directory does), so look for it too.
            () = tokio::time::sleep(ROOT_CHECK) => {
                if !shared.root.is_dir() && !wait_for_workspace(&shared, &stop, &watcher, &mut rx).await {
                    return;
                }
                continue;
            }
        };
        let Some(first) = first else { return };
        let mut git_touched = add_event(&shared.root, &mut batch, first);
        // ...and closes `window` later.
        let deadline = tokio::time::sleep(window);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = &mut deadline => break,
                event = rx.recv() => match event {
                    Some(event) => git_touched |= add_event(&shared.root, &mut batch, event),
                    None => break,
                },
            }
        }
        if overflow.swap(false, Ordering::Relaxed) {
            batch.refresh = true;
        }
        if git_touched || !batch.is_empty() {
            git_trigger.notify_one();
        }
        let root_gone = batch.root_gone && !shared.root.is_dir();
        publish(&shared, std::mem::take(&mut batch)).await;
        if root_gone && !wait_for_workspace(&shared, &stop, &watcher, &mut rx).await {
            return;
        }
    }
}

/// The workspace directory was deleted (or moved away): tell clients, wait
/// until it is back, watch it again and tell clients to rescan. False when
/// the server stops first.
async fn wait_for_workspace(
    shared: &Shared,
    stop: &CancellationToken,
    watcher: &SharedWatcher,
    rx: &mut mpsc::Receiver<notify::Result<notify::Event>>,
) -> bool {
    let root = shared.root.display();
    tracing::warn!(workspace = %root, "the workspace was deleted; watching for it to come back");
    shared.publish(encode(Message::Error {
        error: format!(
            "the workspace {root} was deleted; file events resume if it is created again"
        ),
    }));
    loop {
        tokio::select! {
            () = stop.cancelled() => return false,
            () = tokio::time::sleep(REAPPEAR_POLL) => {}
        }
        // Events of the old directory mean nothing now.
        while rx.try_recv().is_ok() {}
        if !shared.root.is_dir() {
            continue;
        }
        let watched = {
            let mut watcher = watcher.lock().unwrap();
            let _ = watcher.unwatch(&shared.root);
            watcher.watch(&shared.root, RecursiveMode::Recursive)
        };
        match watched {
            Ok(()) => {
                tracing::info!(workspace = %root, "the workspace is back; watching it again");
                shared.publish(encode(Message::FileChange(Box::new(FileChange {
                    timestamp: rfc3339_now(),
                    operation: FileOperation::Refresh,
                    ..FileChange::default()
                }))));
                return true;
            }
            // Created and deleted again at once, say: keep looking.
            Err(error) => tracing::debug!(%error, "cannot watch the workspace yet"),
        }
    }
}

/// Add a raw event to the batch; whether it touched `.git/`.
fn add_event(root: &Path, batch: &mut Batch, event: notify::Result<notify::Event>) -> bool {
    let event = match event {
        Ok(event) => event,
        Err(error) => {
            tracing::warn!(%error, "watcher error; clients will be told to rescan");
            batch.refresh = true;
            return false;
        }
    };
    if event.need_rescan() {
        batch.refresh = true;
    }
    if matches!(
        event.kind,
        EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_))
    ) && event.paths.iter().any(|p| p == root)
    {
        batch.root_gone = true;
    }
    let mut git = false;
    for (index, op) in classify(&event) {
        let Some(rel) = relative(root, &event.paths[index]) else {
            continue;
        };
        if is_git_internal(&rel) {
            git = true;
        } else {
            batch.add(rel, op);
        }
    }
    git
}

async fn publish(shared: &Shared, batch: Batch) {
    let timestamp = rfc3339_now();
    let mut state = batch.state;
    for (n, path) in batch.order.into_iter().enumerate() {
        if n % 64 == 63 {
            // A big batch (a checkout, say): let the connections catch up,
            // so only a really slow one falls a whole ring behind.
            tokio::task::yield_now().await;
        }
        let Some(operation) = state.remove(&path).and_then(Op::operation) else {
            continue;
        };
        shared.publish(encode(Message::FileChange(Box::new(FileChange {
            timestamp: timestamp.clone(),
            path,
            operation,
            ..FileChange::default()
        }))));
    }
    if batch.refresh {
        tracing::warn!("file events were lost; telling clients to rescan");
        shared.publish(encode(Message::FileChange(Box::new(FileChange {
            timestamp,
            operation: FileOperation::Refresh,
            ..FileChange::default()
        }))));
    }
}

#[cfg(test)]
mod tests {
    use super::Op::*;
    use super::*;

    fn reduce(ops: &[Op]) -> Op {
        ops.iter().fold(None, |s, &op| Some(fold(s, op))).unwrap()
    }

    #[test]
    fn coalescing_rule() {
        assert_eq!(reduce(&[Create, Write, Write, Chmod]), Create);
        assert_eq!(reduce(&[Write, Write, Write]), Write);
        assert_eq!(reduce(&[Chmod, Write]), Write);
        assert_eq!(reduce(&[Chmod, Chmod]), Chmod);
        assert_eq!(reduce(&[Write, Remove]), Remove);
        assert_eq!(reduce(&[Write, Rename]), Rename);
        assert_eq!(reduce(&[Create, Write, Remove]), Vanished);
        assert_eq!(reduce(&[Create, Rename]), Vanished);
        assert_eq!(reduce(&[Create, Remove, Create]), Create);
        assert_eq!(reduce(&[Remove, Create, Write]), Write);
        assert_eq!(reduce(&[Rename, Create]), Write);
        assert_eq!(Vanished.operation(), None);
    }

    #[test]
    fn relative_paths() {
        let root = Path::new("/ws");
        assert_eq!(
            relative(root, Path::new("/ws/a/b.txt")).as_deref(),
            Some("a/b.txt")
        );
        assert_eq!(relative(root, Path::new("/ws")), None);
        assert_eq!(relative(root, Path::new("/other/x")), None);
        assert!(is_git_internal(".git/index"));
        assert!(!is_git_internal(".github/ci.yml"));
    }
}

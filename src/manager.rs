//! Keeps one client's workspace stream connected, reconnecting with backoff.

use std::pin::pin;
use std::time::Duration;

use futures_util::future::{Either, select};

use crate::client::Client;
use crate::handler::{Event, Handler};
use crate::probe::{Probe, Role, Ticket};
use crate::sync::unchecked::{SetOnce, StatCounter, TaskSlot};
use crate::sync::{Arc, CloseSignal, Mutex, WaitGroup, current_task, jitter, sleep, spawn};
use crate::transport::Transport;
use crate::{Error, StreamEnd};

/// Reconnect policy of a [`StreamManager`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ManagerConfig {
    /// Delay before the first retry (default 500 ms); doubles per failure.
    pub initial_backoff: Duration,
    /// Cap on the delay (default 30 s). Up to the same again is added as
    /// random jitter, so many clients do not reconnect in lockstep.
    pub max_backoff: Duration,
    /// Give up after this many consecutive failed dials (default: never).
    pub max_consecutive_failures: Option<u32>,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_consecutive_failures: None,
        }
    }
}

impl ManagerConfig {
    /// Set the first retry delay and the cap.
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// Give up after `n` consecutive failed dials (at least 1).
    pub fn with_max_consecutive_failures(mut self, n: u32) -> Self {
        self.max_consecutive_failures = Some(n.max(1));
        self
    }
}

/// Keeps a client's workspace stream connected: connects, and when the
/// server drops the stream, reconnects with capped exponential backoff and
/// jitter, until stopped, or until a dial fails in a way retrying cannot
/// cure (a refused token, a bad URL, ...: see [`gave_up`](Self::gave_up)).
///
/// [`stop`](Self::stop) asks it to stop; [`wait`](Self::wait) stops it too
/// and is an absolute drain barrier: when it returns, every task the manager
/// spawned (its supervisor loop, its stop-signal merger) and every stream
/// task it started has exited. The client itself stays open.
#[derive(Clone)]
pub struct StreamManager {
    shared: Arc<ManagerShared>,
}

impl std::fmt::Debug for StreamManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamManager")
            .field("live_tasks", &self.live_tasks())
            .finish_non_exhaustive()
    }
}

struct ManagerShared {
    /// Fired by `stop()`.
    stop: CloseSignal,
    /// Fired by `wait()`, so waiting alone drains the manager.
    wait_requested: CloseSignal,
    /// Either of the two, merged by a helper task spawned on first use.
    merged: Mutex<Option<CloseSignal>>,
    wg: WaitGroup,
    probe: Probe,
    #[cfg(wsdrain_bugs)]
    bugs: crate::bugs::Bugs,
    /// Reported by `connects()`, never read by the manager.
    connects: StatCounter,
    /// Set by the supervisor as it exits; read by the user.
    gave_up: SetOnce<Error>,
    /// The reader task of the managed stream whose handler ran last, so that
    /// `wait()` can tell it is called from a handler (it would wait for
    /// itself).
    handler_task: TaskSlot,
}

/// The handler of a managed stream: records which task runs it, then runs
/// the caller's handler.
struct Managed<H> {
    inner: H,
    shared: Arc<ManagerShared>,
}

impl<H: Handler> Handler for Managed<H> {
    async fn handle(&mut self, event: Event) {
        self.shared.handler_task.set(current_task());
        self.inner.handle(event).await;
    }
}

/// Counts a manager task out of the probe and the wait group, even on panic.
struct ManagerTask {
    shared: Arc<ManagerShared>,
    ticket: Ticket,
    tracked: bool,
}

impl Drop for ManagerTask {
    fn drop(&mut self) {
        self.shared.probe.exited(self.ticket);
        if self.tracked {
            self.shared.wg.done();
        }
    }
}

impl StreamManager {
    /// Start managing `client`'s workspace stream; `make_handler` makes the
    /// handler of each (re)connected stream.
    pub fn start<T, F, H>(client: Client<T>, make_handler: F, config: ManagerConfig) -> Self
    where
        T: Transport,
        F: FnMut() -> H + Send + 'static,
        H: Handler,
    {
        let shared = Arc::new(ManagerShared {
            stop: CloseSignal::new(),
            wait_requested: CloseSignal::new(),
            merged: Mutex::named(None, crate::sync::trace::name(|| "manager.merged")),
            wg: WaitGroup::named(crate::sync::trace::name(|| "manager.wg")),
            probe: Probe::new("stream manager"),
            #[cfg(wsdrain_bugs)]
            bugs: client.bugs(),
            connects: StatCounter::new(),
            gave_up: SetOnce::new(),
            handler_task: TaskSlot::new(),
        });
        // Counted before the task exists, so a wait() right after start
        // covers it.
        shared.wg.add(1);
        let task = ManagerTask {
            ticket: shared.probe.spawned(Role::Supervisor, None),
            shared: shared.clone(),
            tracked: true,
        };
        spawn(async move {
            task.shared.probe.started(task.ticket);
            supervise(&task.shared, client, make_handler, config).await;
        });
        Self { shared }
    }

    /// Ask the manager to stop: it closes its stream and stops reconnecting.
    /// Returns at once; [`wait`](Self::wait) for the drain.
    pub fn stop(&self) {
        crate::trace_point!("StreamManager::stop()");
        self.shared.stop.close();
    }

    /// Stop (if not yet asked) and wait until every task the manager spawned,
    /// and every stream task it started, has exited.
    ///
    /// **From a managed stream's handler** it cannot wait: the manager waits
    /// for that stream's reader, which is running the handler. There it stops
    /// the manager, logs a warning and returns at once, without the drain
    /// (which completes after the handler returns); a `wait()` from outside
    /// still drains everything.
    pub async fn wait(&self) {
        self.shared.wait_requested.close();
        if self.called_from_handler() {
            crate::trace_point!("StreamManager::wait() from a handler: stop, no drain");
            tracing::warn!(
                "StreamManager::wait() called from a managed stream's handler: \
                 it cannot wait for its own task; stopping without waiting"
            );
            return;
        }
        self.shared.wg.wait().await;
        crate::trace_point!("StreamManager::wait() returns");
        self.shared.probe.barrier_returned("wait()");
    }

    fn called_from_handler(&self) -> bool {
        self.shared.handler_task.holds(current_task())
    }

    /// Manager tasks (supervisor, merger) not yet exited.
    pub fn live_tasks(&self) -> usize {
        self.shared.probe.live_tasks()
    }

    /// How many times a stream was connected.
    pub fn connects(&self) -> u64 {
        self.shared.connects.get()
    }

    /// Why the manager gave up, if it did: [`Error::RetriesExhausted`] after
    /// `max_consecutive_failures` transient failures, [`Error::ClientClosed`]
    /// when the client was closed under it, or the first dial error that
    /// retrying cannot cure (see [`Error::is_transient`]), e.g.
    /// [`Error::Unauthorized`], [`Error::InvalidUrl`], an
    /// [`Error::UpgradeRejected`] with 404, or [`Error::AlreadyConnected`]
    /// when someone else holds the client's stream (the manager must own it).
    pub fn gave_up(&self) -> Option<&Error> {
        self.shared.gave_up.get()
    }
}

#[cfg(wsdrain_bugs)]
impl ManagerShared {
    fn bugs(&self) -> crate::bugs::Bugs {
        self.bugs
    }
}

/// The merged stop signal; the first call spawns the merger task that
/// fires it when either `stop()` or `wait()` does (like Go's
/// `stopChannelContext.Done()`).
fn merged_stop(shared: &Arc<ManagerShared>) -> CloseSignal {
    let mut slot = shared.merged.lock();
    if let Some(merged) = &*slot {
        return merged.clone();
    }
    let merged = CloseSignal::new();
    *slot = Some(merged.clone());
    drop(slot);
    // H6 is this line missing: the merger outlives wait().
    let tracked = !bug!(shared, UntrackedHelperTask);
    if tracked {
        shared.wg.add(1);
    }
    let task = ManagerTask {
        ticket: shared.probe.spawned(Role::StopMerger, None),
        shared: shared.clone(),
        tracked,
    };
    crate::trace_point!("spawn stop-merger (tracked: {tracked})");
    let fire = merged.clone();
    spawn(async move {
        let shared = &task.shared;
        shared.probe.started(task.ticket);
        let _ = select(
            pin!(shared.stop.closed()),
            pin!(shared.wait_requested.closed()),
        )
        .await;
        fire.close();
    });
    merged
}

async fn supervise<T, F, H>(
    shared: &Arc<ManagerShared>,
    client: Client<T>,
    mut make_handler: F,
    config: ManagerConfig,
) where
    T: Transport,
    F: FnMut() -> H + Send + 'static,
    H: Handler,
{
    let stop = merged_stop(shared);
    // Asked to stop, read from the signals themselves: the merged one is
    // fired later by the merger task.
    let stopping = || shared.stop.is_closed() || shared.wait_requested.is_closed();
    let mut backoff = config.initial_backoff;
    let mut failures = 0u32;
    while !stop.is_closed() {
        let handler = Managed {
            inner: make_handler(),
            shared: shared.clone(),
        };
        match client.stream_workspace(handler).await {
            Ok(stream) => {
                shared.connects.increment();
                failures = 0;
                backoff = config.initial_backoff;
                if let Either::Right(_) = select(pin!(stream.done()), pin!(stop.closed())).await {
                    stream.close();
                }
                // Drain the stream's tasks before reconnecting or exiting.
                let end = stream.wait().await;
                tracing::debug!(stream = stream.id(), ?end, "managed workspace stream ended");
                // Not reconnected once stop() returned, even before the
                // merger fired (that would be a new connection after
                // stop(); a dial already under way is the only one).
                if stopping() {
                    break;
                }
                if let StreamEnd::Failed(error) = end {
                    tracing::info!(%error, "workspace stream dropped; reconnecting");
                }
            }
            Err(Error::ClientClosed | Error::ClosedDuringDial) => {
                shared.gave_up.set(Error::ClientClosed);
                break;
            }
            // Retrying cannot succeed (a refused token, a bad URL, a 404,
            // the client's stream taken by someone else): stop at once and
            // say why, instead of failing every backoff for ever.
            Err(error) if !error.is_transient() => {
                tracing::warn!(%error, "giving up on the workspace stream: retrying cannot succeed");
                let _ = shared.gave_up.set(error);
                break;
            }
            Err(error) => {
                failures += 1;
                tracing::debug!(%error, failures, "workspace stream connect failed");
                if config
                    .max_consecutive_failures
                    .is_some_and(|max| failures >= max)
                {
                    tracing::warn!(%error, failures, "giving up on the workspace stream");
                    shared.gave_up.set(Error::RetriesExhausted {
                        attempts: failures,
                        last: Box::new(error),
                    });
                    break;
                }
            }
        }
        let delay = backoff + jitter(backoff);
        if let Either::Right(_) = select(pin!(sleep(delay)), pin!(stop.closed())).await {
            break;
        }
        backoff = (backoff * 2).min(config.max_backoff);
    }
}

#[cfg(all(test, not(any(wsdrain_loom, wsdrain_shuttle))))]
mod tests {
    use super::*;
    use crate::transport::Target;
    use crate::transport::memory::{MemoryReader, MemoryWriter};

    /// A transport that refuses every dial and notes when each came.
    #[derive(Clone, Default)]
    struct Refusing(Arc<Mutex<Vec<tokio::time::Instant>>>);

    impl Transport for Refusing {
        type Reader = MemoryReader;
        type Writer = MemoryWriter;

        async fn dial(&self, target: &Target) -> crate::Result<(MemoryReader, MemoryWriter)> {
            self.0.lock().push(tokio::time::Instant::now());
            Err(Error::ConnectionRefused {
                addr: target.url.clone(),
            })
        }
    }

    /// Between two refused dials the manager waits its backoff plus up to
    /// as much jitter, the backoff doubling up to its cap. (Found by the
    /// mutation run: a delay of backoff minus jitter, or a halving backoff,
    /// survived the models, which have no clock.) Paused time: exact.
    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn refused_dials_back_off_doubling_with_jitter() {
        let dials = Refusing::default();
        let client =
            Client::with_transport(dials.clone(), "mem://w", crate::ClientConfig::default());
        let config = ManagerConfig::default()
            .with_backoff(Duration::from_millis(100), Duration::from_millis(300))
            .with_max_consecutive_failures(5);
        let manager = StreamManager::start(client, || |_: Event| async {}, config);
        for _ in 0..10_000 {
            if manager.gave_up().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            matches!(
                manager.gave_up(),
                Some(Error::RetriesExhausted { attempts: 5, .. })
            ),
            "{:?}",
            manager.gave_up()
        );
        manager.wait().await;
        let at = dials.0.lock().clone();
        assert_eq!(at.len(), 5, "five dials");
        for (i, backoff) in [100, 200, 300, 300].into_iter().enumerate() {
            let backoff = Duration::from_millis(backoff);
            let gap = at[i + 1] - at[i];
            assert!(
                gap >= backoff && gap <= 2 * backoff,
                "dial {} came {gap:?} after the one before, for a backoff of {backoff:?}",
                i + 2
            );
        }
    }

    /// Each builder sets what it names, with its stated floor. (Found by
    /// the mutation run: a builder that returned the defaults survived.)
    #[test]
    fn config_builders_set_what_they_name() {
        let config = ManagerConfig::default()
            .with_backoff(Duration::from_millis(5), Duration::from_millis(50))
            .with_max_consecutive_failures(4);
        assert_eq!(config.initial_backoff, Duration::from_millis(5));
        assert_eq!(config.max_backoff, Duration::from_millis(50));
        assert_eq!(config.max_consecutive_failures, Some(4));
        let floors = ManagerConfig::default()
            .with_backoff(Duration::from_millis(5), Duration::from_millis(1))
            .with_max_consecutive_failures(0);
        assert_eq!(floors.max_backoff, Duration::from_millis(5));
        assert_eq!(floors.max_consecutive_failures, Some(1));
    }
}

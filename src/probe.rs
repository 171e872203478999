//! Task accounting and the oracles that judge it.
//!
//! Harness and benchmark use only (`#[doc(hidden)]`, no stability promise):
//! a client user reads the counts through `Client::live_tasks()` and
//! `StreamManager::live_tasks()`.
//!
//! A [`Probe`] watches the tasks a client (or stream manager) spawns: it is
//! told when each task is spawned, starts and exits, when a drain barrier
//! (`close()`, `wait()`) returns, and when the client publishes or clears a
//! stream. It has two layers:
//!
//! - the **counts** (tasks live, tasks spawned): two plain atomics, in every
//!   build; what `live_tasks()` reports;
//! - the **oracles**, which exist only where someone can act on a violation:
//!   model builds (`wsdrain_loom`, `wsdrain_shuttle`), debug builds
//!   (`debug_assertions`: `cargo test`, the CLI's and users' debug runs) and
//!   this crate's unit tests (`test`). A release build has none of them: no
//!   lock, no per-task list, nothing a user could read.
//!
//! Where they exist, the oracles check the invariants the client promises,
//! in every explored execution, the moment they can be judged:
//!
//! - **drain-barrier**: when a barrier returns, no task it covers is alive
//!   (except the task that called it, for `close()` from a handler), no
//!   task starts afterwards, and (loom builds) each covered task's exit
//!   happens before the return (a `sync::Witness` per
//!   task: exited in loom's order is not enough);
//! - **no-orphan**: publishing a stream never drops a stream that is still
//!   connected;
//! - **identity**: a reader's exit cleanup only ever clears its own stream.
//!
//! The probe is instrumentation, not synchronisation: it uses `std`
//! primitives directly, outside the [`sync`](crate::sync) facade, so loom
//! and shuttle neither see nor explore it, and it never changes what the
//! client does. A violation panics with `oracle[<name>]` in the message.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// The invariants the harness checks. The name appears in every failure,
/// and is the oracle's form in the cell runner's JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Oracle {
    /// A task was alive, or started, after a drain barrier returned; or
    /// (loom) a task's exit does not happen before the barrier's return.
    DrainBarrier,
    /// A connected stream was dropped by the client with its tasks running,
    /// or a connection was still open at the end of an execution.
    NoOrphan,
    /// A reader cleared a stream that was not its own.
    Identity,
    /// A `WaitGroup` misuse panic (Go's rules).
    #[serde(rename = "waitgroup-misuse")]
    WaitGroupMisuse,
    /// A barrier never returned: the checker found a deadlock, or an
    /// execution did not terminate.
    Liveness,
    /// A stream that ended (by any cause) is still known to the client, or
    /// its `done()`/`wait()` do not resolve, or it blocks a new stream.
    /// Judged by the harness (loom-tests).
    NoZombie,
    /// A stream's `wait()` was not ready when `Client::close()` returned.
    /// Judged by the harness.
    ReadyAtBarrier,
    /// An input method's answer lied: a message refused was delivered, or
    /// messages were delivered out of order. Judged by the harness.
    InputHonesty,
    /// A managed stream ended (not by `stop()`) and the manager neither
    /// reconnected nor said why not. Judged by the harness.
    ManagerPromise,
    /// An operation returned an outcome outside the reference semantics:
    /// a generated program's, outside the reference model's allowed set
    /// (`wsdrain-model`), or a scenario's stated one (S6: a stream only
    /// this side closed ends `Closed`). Judged by the harness.
    Model,
}

impl Oracle {
    /// The name used in failure messages: `drain-barrier`, `no-orphan`, ...
    pub fn name(self) -> &'static str {
        match self {
            Oracle::DrainBarrier => "drain-barrier",
            Oracle::NoOrphan => "no-orphan",
            Oracle::Identity => "identity",
            Oracle::WaitGroupMisuse => "waitgroup-misuse",
            Oracle::Liveness => "liveness",
            Oracle::NoZombie => "no-zombie",
            Oracle::ReadyAtBarrier => "ready-at-barrier",
            Oracle::InputHonesty => "input-honesty",
            Oracle::ManagerPromise => "manager-promise",
            Oracle::Model => "model",
        }
    }

    /// Recognise the oracle a failure message names (the probe's own
    /// `oracle[..]` tag, a `WaitGroup` panic, or a checker's deadlock report).
    pub fn classify(message: &str) -> Option<Oracle> {
        for oracle in [
            Oracle::DrainBarrier,
            Oracle::NoOrphan,
            Oracle::Identity,
            Oracle::WaitGroupMisuse,
            Oracle::Liveness,
            Oracle::NoZombie,
            Oracle::ReadyAtBarrier,
            Oracle::InputHonesty,
            Oracle::ManagerPromise,
            Oracle::Model,
        ] {
            if message.contains(&format!("oracle[{}]", oracle.name())) {
                return Some(oracle);
            }
        }
        if message.contains("WaitGroup") {
            return Some(Oracle::WaitGroupMisuse);
        }
        // loom's verdict on a happens-before witness (`sync::Witness`, the
        // only loom cell): a barrier returned without synchronising with a
        // task's exit.
        if message.contains("Causality violation") {
            return Some(Oracle::DrainBarrier);
        }
        let lower = message.to_ascii_lowercase();
        if lower.contains("deadlock") || lower.contains("exceeded max_steps") {
            return Some(Oracle::Liveness);
        }
        None
    }
}

impl fmt::Display for Oracle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An oracle's verdict, as the panic payload of model builds: the harness
/// reads the oracle from it instead of from the message's text.
#[derive(Debug, Clone)]
pub struct Violation {
    /// The oracle that fired.
    pub oracle: Oracle,
    /// The whole message, `oracle[<name>] violated: ...`.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The trace mark of a task's start (its first step, on the task).
pub const TASK_STARTED: &str = "task started";
/// The trace mark of a task's exit (its last step, on the task).
pub const TASK_EXITED: &str = "task exited";

/// What a task does, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A stream's reader task.
    Reader,
    /// A stream's writer task.
    Writer,
    /// The stream manager's connect/reconnect loop.
    Supervisor,
    /// The stream manager's stop-signal merger.
    StopMerger,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Reader => "reader",
            Role::Writer => "writer",
            Role::Supervisor => "supervisor",
            Role::StopMerger => "stop-merger",
        })
    }
}

/// Handle of one spawned task, as the probe knows it (from spawn to exit).
/// Without the oracles it carries nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(#[cfg(any(debug_assertions, test, wsdrain_loom, wsdrain_shuttle))] u64);

/// Task accounting (every build) and oracle checks (model, debug and test
/// builds) for one client or stream manager.
#[derive(Debug)]
pub struct Probe {
    /// Tasks spawned and not yet exited.
    live: AtomicUsize,
    /// Tasks spawned in all.
    spawned: AtomicU64,
    #[cfg(any(debug_assertions, test, wsdrain_loom, wsdrain_shuttle))]
    oracles: oracles::Oracles,
}

impl Probe {
    /// A probe for the tasks of `owner` ("client", "stream manager").
    pub fn new(owner: &'static str) -> Self {
        #[cfg(not(any(debug_assertions, test, wsdrain_loom, wsdrain_shuttle)))]
        let _ = owner;
        Self {
            live: AtomicUsize::new(0),
            spawned: AtomicU64::new(0),
            #[cfg(any(debug_assertions, test, wsdrain_loom, wsdrain_shuttle))]
            oracles: oracles::Oracles::new(owner),
        }
    }

    /// A task is about to be spawned. Judges "no task starts after a
    /// barrier returned".
    #[inline]
    pub fn spawned(&self, role: Role, stream: Option<u64>) -> Ticket {
        self.spawned.fetch_add(1, Ordering::Relaxed);
        self.live.fetch_add(1, Ordering::Relaxed);
        #[cfg(any(debug_assertions, test, wsdrain_loom, wsdrain_shuttle))]
        {
            Ticket(self.oracles.spawned(role, stream))
        }
        #[cfg(not(any(debug_assertions, test, wsdrain_loom, wsdrain_shuttle)))]
        {
            let _ = (role, stream);
            Ticket()
        }
    }

    /// The task runs: remember its identity (for re-entrant barriers).
    #[inline]
    pub fn started(&self, ticket: Ticket) {
        #[cfg(any(debug_assertions, test, wsdrain_loom, wsdrain_shuttle))]
        self.oracles.started(ticket.0);
        #[cfg(not(any(debug_assertions, test, wsdrain_loom, wsdrain_shuttle)))]
        let _ = ticket;
    }

    /// The task has finished (or unwound).
    #[inline]
    pub fn exited(&self, ticket: Ticket) {
        #[cfg(any(debug_assertions, test, wsdrain_loom, wsdrain_shuttle))]
        self.oracles.exited(ticket.0);
        #[cfg(not(any(debug_assertions, test, wsdrain_loom, wsdrain_shuttle)))]
        let _ = ticket;
        // Release: a drain barrier that then sees the task counted out of
        // its wait group (ordered after this) reads the count without it.
        self.live.fetch_sub(1, Ordering::Release);
    }

    /// The calling task (a reader) runs `Client::close()` from its handler.
    #[inline]
    pub fn closing_from_handler(&self) {
        #[cfg(any(debug_assertions, test, wsdrain_loom, wsdrain_shuttle))]
        self.oracles.closing_from_handler();
    }

    /// A drain barrier (`what`, e.g. "close()") returned. Every task must
    /// have exited, except, when the barrier ran on a task of its own (close
    /// from a handler), that task and the readers whose handlers are in
    /// `close()` too (two such closes cannot wait for each other).
    #[inline]
    pub fn barrier_returned(&self, what: &'static str) {
        #[cfg(any(debug_assertions, test, wsdrain_loom, wsdrain_shuttle))]
        self.oracles.barrier_returned(what);
        #[cfg(not(any(debug_assertions, test, wsdrain_loom, wsdrain_shuttle)))]
        let _ = what;
    }

    /// The client published stream `new`, replacing `replaced` (which should
    /// never be a connected stream).
    #[inline]
    pub fn published(&self, new: u64, replaced: Option<u64>) {
        #[cfg(any(debug_assertions, test, wsdrain_loom, wsdrain_shuttle))]
        self.oracles.published(new, replaced);
        #[cfg(not(any(debug_assertions, test, wsdrain_loom, wsdrain_shuttle)))]
        let _ = (new, replaced);
    }

    /// A reader's exit cleanup cleared the client's current stream.
    #[inline]
    pub fn cleared_by_reader(&self, reader_of: u64, cleared: u64) {
        #[cfg(any(debug_assertions, test, wsdrain_loom, wsdrain_shuttle))]
        self.oracles.cleared_by_reader(reader_of, cleared);
        #[cfg(not(any(debug_assertions, test, wsdrain_loom, wsdrain_shuttle)))]
        let _ = (reader_of, cleared);
    }

    /// Tasks spawned and not yet exited.
    #[inline]
    pub fn live_tasks(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    /// Tasks spawned so far.
    #[inline]
    pub fn spawned_tasks(&self) -> u64 {
        self.spawned.load(Ordering::Relaxed)
    }

    /// Violations seen so far (each also panicked where it was found).
    #[cfg(any(debug_assertions, test, wsdrain_loom, wsdrain_shuttle))]
    pub fn violations(&self) -> Vec<String> {
        self.oracles.violations()
    }
}

/// The oracles' state: the live tasks with their roles and identities, the
/// barrier, the violations. One `std` mutex, taken on every spawn, start
/// and exit: the cost the release build does not pay.
#[cfg(any(debug_assertions, test, wsdrain_loom, wsdrain_shuttle))]
mod oracles {
    use std::fmt;
    use std::sync::{Mutex, MutexGuard};

    use super::{Oracle, Role};
    #[cfg(any(wsdrain_loom, wsdrain_shuttle))]
    use super::{TASK_EXITED, TASK_STARTED};
    use crate::sync::{TaskId, current_task};

    #[derive(Debug)]
    struct LiveTask {
        ticket: u64,
        role: Role,
        stream: Option<u64>,
        task: Option<TaskId>,
        /// Running `Client::close()` from its handler (a reader).
        closing: bool,
        /// Its exit, for the barriers that must happen after it (loom).
        #[cfg(wsdrain_loom)]
        exit: std::sync::Arc<crate::sync::Witness>,
    }

    /// A task that has exited, as the barriers after it check it (loom).
    #[cfg(wsdrain_loom)]
    #[derive(Debug)]
    struct ExitedTask {
        name: String,
        /// It ran `Client::close()` from its handler: a close on another
        /// handler's task does not wait for its real exit (see `alive` in
        /// `barrier_returned`).
        closing: bool,
        exit: std::sync::Arc<crate::sync::Witness>,
    }

    impl fmt::Display for LiveTask {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self.stream {
                Some(id) => write!(f, "the {} of stream {id}", self.role),
                None => write!(f, "the {}", self.role),
            }
        }
    }

    #[derive(Debug, Default)]
    struct State {
        next_ticket: u64,
        live: Vec<LiveTask>,
        /// Set when a drain barrier has returned: what returned.
        barrier: Option<&'static str>,
        violations: Vec<String>,
        /// Every task that has exited (one execution's worth: loom builds
        /// only, where a client lives for one execution).
        #[cfg(wsdrain_loom)]
        exited: Vec<ExitedTask>,
    }

    #[derive(Debug)]
    pub(super) struct Oracles {
        owner: &'static str,
        state: Mutex<State>,
    }

    impl Oracles {
        pub(super) fn new(owner: &'static str) -> Self {
            Self {
                owner,
                state: Mutex::new(State::default()),
            }
        }

        fn state(&self) -> MutexGuard<'_, State> {
            self.state.lock().unwrap_or_else(|p| p.into_inner())
        }

        pub(super) fn spawned(&self, role: Role, stream: Option<u64>) -> u64 {
            let mut state = self.state();
            state.next_ticket += 1;
            let ticket = state.next_ticket;
            let task = LiveTask {
                ticket,
                role,
                stream,
                task: None,
                closing: false,
                #[cfg(wsdrain_loom)]
                exit: Default::default(),
            };
            let late = state
                .barrier
                .map(|barrier| format!("{task} started after {} {barrier} returned", self.owner));
            state.live.push(task);
            drop(state);
            if let Some(message) = late {
                self.violation(Oracle::DrainBarrier, message);
            }
            ticket
        }

        pub(super) fn started(&self, ticket: u64) {
            let me = current_task();
            if let Some(task) = self.state().live.iter_mut().find(|t| t.ticket == ticket) {
                task.task = me;
                #[cfg(any(wsdrain_loom, wsdrain_shuttle))]
                {
                    crate::sync::trace::label_current(match task.stream {
                        Some(id) => format!("{}#{id}", task.role),
                        None => task.role.to_string(),
                    });
                    // For the harness's race windows.
                    crate::sync::trace::mark(TASK_STARTED);
                }
            }
        }

        pub(super) fn exited(&self, ticket: u64) {
            let mut state = self.state();
            #[cfg(not(wsdrain_loom))]
            state.live.retain(|t| t.ticket != ticket);
            // The exit happens here, before the task's wait-group `done`s: a
            // barrier that synchronises with those sees it.
            #[cfg(wsdrain_loom)]
            if let Some(index) = state.live.iter().position(|t| t.ticket == ticket) {
                let task = state.live.remove(index);
                task.exit.record();
                state.exited.push(ExitedTask {
                    name: task.to_string(),
                    closing: task.closing,
                    exit: task.exit,
                });
            }
            drop(state);
            #[cfg(any(wsdrain_loom, wsdrain_shuttle))]
            crate::sync::trace::mark(TASK_EXITED);
        }

        pub(super) fn closing_from_handler(&self) {
            let me = current_task();
            if let Some(task) = self.state().live.iter_mut().find(|t| t.task == me) {
                task.closing = true;
            }
        }

        pub(super) fn barrier_returned(&self, what: &'static str) {
            let me = current_task();
            let mut state = self.state();
            state.barrier = Some(what);
            let on_own_task = me.is_some() && state.live.iter().any(|t| t.task == me);
            let alive: Vec<String> = state
                .live
                .iter()
                .filter(|t| !on_own_task || (t.task != me && !t.closing))
                .map(|t| t.to_string())
                .collect();
            // The exits this barrier covers, by the same rule.
            #[cfg(wsdrain_loom)]
            let exits: Vec<(String, std::sync::Arc<crate::sync::Witness>)> = state
                .exited
                .iter()
                .filter(|t| !on_own_task || !t.closing)
                .map(|t| (t.name.clone(), t.exit.clone()))
                .collect();
            drop(state);
            if !alive.is_empty() {
                self.violation(
                    Oracle::DrainBarrier,
                    format!(
                        "{} {what} returned while {} still running",
                        self.owner,
                        alive.join(" and ")
                    ),
                );
            }
            // Exited is not enough: each exit must happen before the
            // return, or what the task wrote need not be visible to the
            // caller. loom fails the execution ("Causality violation",
            // see `Oracle::classify`) on a check its exit does not
            // happen before.
            #[cfg(wsdrain_loom)]
            for (name, exit) in exits {
                crate::sync::trace::record(
                    || {
                        format!(
                            "{} {what} relies on {name} having exited before it",
                            self.owner
                        )
                    },
                    std::panic::Location::caller(),
                );
                exit.check();
            }
        }

        pub(super) fn published(&self, new: u64, replaced: Option<u64>) {
            if let Some(old) = replaced {
                self.violation(
                    Oracle::NoOrphan,
                    format!(
                        "publishing stream {new} dropped stream {old} while it was still connected: \
                         its connection and tasks are orphaned"
                    ),
                );
            }
        }

        pub(super) fn cleared_by_reader(&self, reader_of: u64, cleared: u64) {
            if reader_of != cleared {
                self.violation(
                    Oracle::Identity,
                    format!(
                        "the reader of stream {reader_of} cleared stream {cleared}, which is not its own; \
                         close() will never see stream {cleared}"
                    ),
                );
            }
        }

        pub(super) fn violations(&self) -> Vec<String> {
            self.state().violations.clone()
        }

        fn violation(&self, oracle: Oracle, message: String) {
            let message = format!("oracle[{oracle}] violated: {message}");
            self.state().violations.push(message.clone());
            tracing::error!(oracle = oracle.name(), "{message}");
            // Typed for the harness in model builds; text elsewhere (and
            // for `#[should_panic(expected = ..)]`).
            #[cfg(any(wsdrain_loom, wsdrain_shuttle))]
            std::panic::panic_any(super::Violation { oracle, message });
            #[cfg(not(any(wsdrain_loom, wsdrain_shuttle)))]
            panic!("{message}");
        }
    }
}

#[cfg(all(test, not(any(wsdrain_loom, wsdrain_shuttle))))]
mod tests {
    use super::*;

    #[test]
    fn classify_names() {
        assert_eq!(
            Oracle::classify("oracle[drain-barrier] violated: x"),
            Some(Oracle::DrainBarrier)
        );
        assert_eq!(
            Oracle::classify("WaitGroup misuse: add called concurrently with wait"),
            Some(Oracle::WaitGroupMisuse)
        );
        assert_eq!(
            Oracle::classify("deadlock; threads = [...]"),
            Some(Oracle::Liveness)
        );
        assert_eq!(Oracle::classify("index out of bounds"), None);
    }

    #[test]
    #[should_panic(
        expected = "oracle[drain-barrier] violated: client close() returned while the reader of stream 7 still running"
    )]
    fn live_task_at_barrier_is_a_violation() {
        let probe = Probe::new("client");
        let _ticket = probe.spawned(Role::Reader, Some(7));
        probe.barrier_returned("close()");
    }

    #[test]
    #[should_panic(
        expected = "oracle[drain-barrier] violated: the writer of stream 1 started after client close() returned"
    )]
    fn spawn_after_barrier_is_a_violation() {
        let probe = Probe::new("client");
        probe.barrier_returned("close()");
        probe.spawned(Role::Writer, Some(1));
    }

    #[test]
    fn exited_tasks_do_not_count() {
        let probe = Probe::new("client");
        let ticket = probe.spawned(Role::Reader, Some(1));
        assert_eq!(probe.live_tasks(), 1);
        probe.exited(ticket);
        probe.barrier_returned("close()");
        assert_eq!(probe.live_tasks(), 0);
        assert!(probe.violations().is_empty());
    }

    #[test]
    #[should_panic(expected = "oracle[identity]")]
    fn foreign_clear_is_a_violation() {
        Probe::new("client").cleared_by_reader(1, 2);
    }

    #[test]
    #[should_panic(expected = "oracle[no-orphan]")]
    fn replacing_a_connected_stream_is_a_violation() {
        Probe::new("client").published(2, Some(1));
    }
}

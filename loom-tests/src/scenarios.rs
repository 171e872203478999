//! The scenarios: what each explores, and the body of one execution.
//!
//! Every body builds a fresh client over the in-memory transport, runs the
//! concurrent operations with facade threads and tasks, and leaves the
//! judging to the oracles: the client's probe checks the drain barrier,
//! identity and orphans the moment they can be judged; [`end_checks`]
//! checks at the end of the execution that every connection was closed.
//! Deadlocks are found by the checkers themselves (the liveness oracle).
//!
//! Thread budget: loom models at most 5 threads per execution, the model's
//! own included, and every client task is a thread there. Each scenario
//! below fits in 5.

use std::fmt;

use crate::windows::Window;

#[cfg(wsdrain_bugs)]
use wsdrain::Bug;
#[cfg(any(wsdrain_loom, wsdrain_shuttle))]
use wsdrain::{
    Bugs, Client, ClientConfig, Event, ManagerConfig, StreamManager,
    probe::Oracle,
    sync::{CloseSignal, block_on, model_thread, trace},
    transport::MemoryTransport,
};

/// One scenario of the verification matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scenario {
    /// S1: `close()` vs `stream_workspace` (the seed, kandev PR #1272).
    S1CloseVsStream,
    /// S2: `close()` while the dial is in flight.
    S2CloseDuringDial,
    /// S3: two concurrent `stream_workspace` callers, then `close()`.
    S3ConcurrentDial,
    /// S4: a retired stream's reader exits after a new stream is published, then close.
    S4DisconnectVsNewStream,
    /// S5: `close()` vs pending `write_shell_input` / `ping`.
    S5CloseVsPendingWrite,
    /// S6: double `close()`, and `WorkspaceStream::close` vs `Client::close`.
    S6DoubleClose,
    /// S7: `close()` called from a handler on the reader task.
    S7CloseFromHandler,
    /// S8: the stream manager's reconnect loop vs `stop()`/`wait()`.
    S8ManagerReconnect,
    /// S9: a handler panics (an injected fault): no zombie stream.
    S9PanickingHandler,
    /// S10: a retired stream's handler and the current one's both `close()`.
    S10HandlersClose,
    /// S11: `StreamManager::wait()` from a managed stream's handler.
    S11ManagerWaitFromHandler,
    /// S12: server disconnect; the old reader's cleanup, then a new stream, then close.
    S12DisconnectThenNewStream,
}

impl Scenario {
    /// Every scenario, in order.
    pub const ALL: [Scenario; 12] = [
        Scenario::S1CloseVsStream,
        Scenario::S2CloseDuringDial,
        Scenario::S3ConcurrentDial,
        Scenario::S4DisconnectVsNewStream,
        Scenario::S5CloseVsPendingWrite,
        Scenario::S6DoubleClose,
        Scenario::S7CloseFromHandler,
        Scenario::S8ManagerReconnect,
        Scenario::S9PanickingHandler,
        Scenario::S10HandlersClose,
        Scenario::S11ManagerWaitFromHandler,
        Scenario::S12DisconnectThenNewStream,
    ];

    /// `"S1"` ... `"S12"`.
    pub fn id(self) -> &'static str {
        [
            "S1", "S2", "S3", "S4", "S5", "S6", "S7", "S8", "S9", "S10", "S11", "S12",
        ][self as usize]
    }

    /// A short name.
    pub fn name(self) -> &'static str {
        [
            "close-vs-stream",
            "close-during-dial",
            "concurrent-dial",
            "retired-reader-vs-new-stream",
            "close-vs-pending-write",
            "double-close",
            "close-from-handler",
            "manager-reconnect",
            "panicking-handler",
            "handlers-close",
            "manager-wait-from-handler",
            "disconnect-then-new-stream",
        ][self as usize]
    }

    /// What the scenario explores (for the README and the report).
    pub fn explores(self) -> &'static str {
        match self {
            Scenario::S1CloseVsStream => {
                "a caller runs stream_workspace while main runs close(); every interleaving of \
                 the pre-dial check, dial, publish, add and task start against close's capture, \
                 close and wait"
            }
            Scenario::S2CloseDuringDial => {
                "the dial is held at a gate until close() has returned; then the dial completes \
                 and the post-dial re-check must refuse the stream"
            }
            Scenario::S3ConcurrentDial => {
                "two callers race through pre-check, dial and re-check; exactly one may win; \
                 then close() drains the winner"
            }
            Scenario::S4DisconnectVsNewStream => {
                "stream 1's handler holds its first event while main retires stream 1 \
                 (close_workspace_stream) and opens stream 2; then the handler returns and the \
                 old reader's exit cleanup, after the new publication, races close() and \
                 stream 2's tasks"
            }
            Scenario::S5CloseVsPendingWrite => {
                "a sender blocks on a full input queue (capacity 1) with write_shell_input and \
                 ping while main runs close(); the sender must be released, and what the server \
                 got must be honest. shuttle: first, the live stream must not say it is closed, \
                 and input and a resize queued on it must reach the server"
            }
            Scenario::S6DoubleClose => {
                "two concurrent Client::close calls and a WorkspaceStream::close; each close() \
                 must return only after the drain. shuttle: the server answers the close with a \
                 Close frame, and the stream must still end Closed"
            }
            Scenario::S7CloseFromHandler => {
                "the handler calls Client::close on the reader task when the first message \
                 arrives; then main closes too"
            }
            Scenario::S8ManagerReconnect => {
                "the manager's reconnect loop (dial, back off, retry) races stop()/wait(). \
                 shuttle: the server drops the managed stream, the reconnect must come \
                 (manager-promise), the server drops that one too and stop() races the next, \
                 refused dial; loom (5-thread budget): every dial is refused, so the loop runs \
                 without a stream. A manager that gave up must say retries were exhausted"
            }
            Scenario::S9PanickingHandler => {
                "the handler panics on its first event (injected fault) while main sends input; \
                 once the reader is gone the stream must be forgotten (no-zombie), its wait() \
                 report the panic, its input be refused, and a new stream succeed; then close()"
            }
            Scenario::S10HandlersClose => {
                "a retired stream's handler (taken out by close_workspace_stream) and the \
                 current stream's handler call Client::close at once, while main closes too: \
                 no deadlock, full drain for main. shuttle: A's handler parks until main has \
                 retired A and opened B; loom: A's handler retires A itself on its first event \
                 and closes while main opens B (which may lose) and closes"
            }
            Scenario::S11ManagerWaitFromHandler => {
                "a managed stream's handler calls StreamManager::wait(); it must return, and \
                 main's wait() drain. shuttle: the first managed handler panics first (injected) \
                 and the manager must reconnect (manager-promise); loom (5-thread budget): no \
                 panic, and the connected frame is the trigger"
            }
            Scenario::S12DisconnectThenNewStream => {
                "the server drops stream 1 and main at once retires it (close_workspace_stream), \
                 opens stream 2 and closes the client: the old reader's exit cleanup (its \
                 identity check and unpublish) races the retirement, stream 2's publication \
                 and close(), landing before or after the new publication"
            }
        }
    }

    /// The preemption bound `cargo xtask verify` explores the fixed client
    /// at by default: the largest that finishes within `--loom-seconds` on
    /// two cores (see README, "Bounds and budgets"; `--bound` overrides it
    /// for every scenario). Measured alone at load 1-2 with the patched
    /// generator (2026-12-02): S4 at 2 3,609,421 executions in 128 s, S11 at
    /// 2 15,294,676 in 528 s, S6 at 2 379,431, S9 at 2 303,150.
    pub fn loom_bound(self) -> usize {
        match self {
            Scenario::S1CloseVsStream | Scenario::S2CloseDuringDial => 3,
            Scenario::S3ConcurrentDial
            | Scenario::S4DisconnectVsNewStream
            | Scenario::S5CloseVsPendingWrite
            | Scenario::S6DoubleClose
            | Scenario::S7CloseFromHandler
            | Scenario::S8ManagerReconnect
            | Scenario::S9PanickingHandler
            | Scenario::S10HandlersClose
            | Scenario::S11ManagerWaitFromHandler
            // S12 at 2: 973,439 executions, 28 s.
            | Scenario::S12DisconnectThenNewStream => 2,
        }
    }

    /// The bound the loom model suite (`cargo xtask test`) and the loom
    /// mutation judge explore the fixed client at: [`Self::loom_bound`],
    /// except S4 and S11, whose bound 2 takes minutes (above) and is
    /// `verify`'s alone; they stay at 1 there (29,371 and 105,054
    /// executions, a few seconds each).
    pub fn suite_loom_bound(self) -> usize {
        match self {
            Scenario::S4DisconnectVsNewStream | Scenario::S11ManagerWaitFromHandler => 1,
            other => other.loom_bound(),
        }
    }

    /// Look a scenario up by id (`"S3"`) or name.
    pub fn from_name(name: &str) -> Option<Scenario> {
        Scenario::ALL
            .into_iter()
            .find(|s| s.id().eq_ignore_ascii_case(name) || s.name() == name)
    }

    /// Whether `bug` is reachable in this scenario. A bug that is not
    /// applicable is reported as such in the table, never skipped silently.
    #[cfg(wsdrain_bugs)]
    pub fn applies(self, bug: Bug) -> bool {
        use Scenario::*;
        match bug {
            Bug::CloseNoDrain => !matches!(
                self,
                S2CloseDuringDial | S8ManagerReconnect | S11ManagerWaitFromHandler
            ),
            Bug::DialVsClose => matches!(self, S1CloseVsStream | S2CloseDuringDial),
            Bug::ConcurrentDialOrphan => self == S3ConcurrentDial,
            Bug::CleanupClobber => {
                matches!(self, S4DisconnectVsNewStream | S12DisconnectThenNewStream)
            }
            Bug::AddAfterPublish => self == S1CloseVsStream,
            Bug::UntrackedHelperTask => self == S8ManagerReconnect,
            Bug::WriterNotWoken => !matches!(
                self,
                S2CloseDuringDial | S6DoubleClose | S11ManagerWaitFromHandler
            ),
            Bug::CloseFromCallback => matches!(self, S7CloseFromHandler | S10HandlersClose),
            _ => false,
        }
    }

    /// Whether `bug` is reachable in this scenario under `checker` (S8 has
    /// no stream under loom, see [`Scenario::explores`]; S10's loom body has
    /// main's dial of B in flight while A's handler closes the client, which
    /// H2 needs: caught at bound 2, 31,506 executions, waitgroup-misuse).
    #[cfg(wsdrain_bugs)]
    pub fn applies_under(self, checker: crate::cell::Checker, bug: Bug) -> bool {
        let loom = checker == crate::cell::Checker::Loom;
        if loom && self == Scenario::S10HandlersClose && bug == Bug::DialVsClose {
            return true;
        }
        self.applies(bug)
            && !(loom && self == Scenario::S8ManagerReconnect && bug == Bug::WriterNotWoken)
    }

    /// Why a bug does not apply here (for the table's footnotes).
    #[cfg(wsdrain_bugs)]
    pub fn not_applicable_because(self, bug: Bug) -> &'static str {
        use Scenario::*;
        if self == Scenario::S8ManagerReconnect && bug == Bug::WriterNotWoken {
            return "under loom S8 connects no stream (thread budget)";
        }
        if self == S11ManagerWaitFromHandler && bug == Bug::UntrackedHelperTask {
            // Measured: loom at bound 0 never reaches it (bound 1 does not
            // finish in 60 s); shuttle caught it (PCT median ~130) until the
            // facade's scheduling-point cuts, and since then in none of
            // 6 x 20,000 PCT executions.
            return "S11's supervisor exits only after the merger fired the merged stop signal, its last step: \
                    no explored schedule leaves the merger alive after wait() (S8 catches H6 under both checkers)";
        }
        match bug {
            Bug::CloseNoDrain if self == S11ManagerWaitFromHandler => "no Client::close() runs",
            Bug::CloseNoDrain => "no stream is live when close() runs",
            Bug::DialVsClose if self == S10HandlersClose => {
                "under shuttle S10 opens B before any handler closes (A's handler parks until then); \
                 loom's S10, where A's handler closes while main opens B, catches it"
            }
            Bug::DialVsClose => "no stream_workspace call can pass its checks after close() here",
            Bug::ConcurrentDialOrphan => "only one stream_workspace caller at a time",
            Bug::CleanupClobber => "no stream is replaced while an old reader unwinds",
            Bug::AddAfterPublish => "the stream is published before close() can run",
            Bug::UntrackedHelperTask => "no stream manager",
            Bug::WriterNotWoken if self == S11ManagerWaitFromHandler => {
                "the manager closes its stream with WorkspaceStream::close, which wakes the writer"
            }
            Bug::WriterNotWoken => {
                "no writer is parked when the client closes (S2), or WorkspaceStream::close wakes it first (S6)"
            }
            Bug::CloseFromCallback => "no handler calls close()",
            _ => "not modelled",
        }
    }

    /// The race windows the scenario exists to hit (see [`crate::windows`]),
    /// named next to the bodies below. A fixed-client run that never hits
    /// one of them fails `cargo xtask verify`.
    pub fn windows(self) -> &'static [Window] {
        use windows::*;
        match self {
            Scenario::S1CloseVsStream => S1,
            Scenario::S2CloseDuringDial => S2,
            Scenario::S3ConcurrentDial => S3,
            Scenario::S4DisconnectVsNewStream => S4,
            Scenario::S5CloseVsPendingWrite => S5,
            Scenario::S6DoubleClose => S6,
            Scenario::S7CloseFromHandler => S7,
            Scenario::S8ManagerReconnect => S8,
            Scenario::S9PanickingHandler => S9,
            Scenario::S10HandlersClose => S10,
            Scenario::S11ManagerWaitFromHandler => S11,
            Scenario::S12DisconnectThenNewStream => S12,
        }
    }

    /// The windows this build's checker can reach (S8 and S11 run
    /// differently under loom and shuttle).
    pub fn windows_for(
        self,
        checker: crate::cell::Checker,
    ) -> impl Iterator<Item = &'static Window> {
        self.windows()
            .iter()
            .filter(move |w| w.only.is_none_or(|only| only == checker))
    }

    /// Run one execution of the scenario (inside a loom or shuttle model).
    #[cfg(any(wsdrain_loom, wsdrain_shuttle))]
    pub fn run(self, bugs: Bugs) {
        use bodies::*;
        trace::reset();
        crate::oracles::reset();
        trace::label_current("main");
        match self {
            Scenario::S1CloseVsStream => s1(bugs),
            Scenario::S2CloseDuringDial => s2(bugs),
            Scenario::S3ConcurrentDial => s3(bugs),
            Scenario::S4DisconnectVsNewStream => s4(bugs),
            Scenario::S5CloseVsPendingWrite => s5(bugs),
            Scenario::S6DoubleClose => s6(bugs),
            Scenario::S7CloseFromHandler => s7(bugs),
            Scenario::S8ManagerReconnect => s8(bugs),
            Scenario::S9PanickingHandler => crate::fault_scenarios::s9(bugs),
            Scenario::S10HandlersClose => crate::fault_scenarios::s10(bugs),
            Scenario::S11ManagerWaitFromHandler => crate::fault_scenarios::s11(bugs),
            Scenario::S12DisconnectThenNewStream => s12(bugs),
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.id(), self.name())
    }
}

/// The race windows of each scenario: the steps that delimit them are the
/// trace marks of the client (its `trace_point!`s' templates), of the probe
/// (a task's start and exit) and of the scenario bodies below.
pub(crate) mod windows {
    use crate::cell::Checker;
    use crate::windows::{Window, on};
    use wsdrain::probe::{TASK_EXITED as EXITED, TASK_STARTED as STARTED};

    const CHECK: &str = "stream_workspace: pre-dial check";
    const DIAL: &str = "stream_workspace: dial";
    const PUBLISH: &str = "stream_workspace: publish stream {id}";
    const REFUSE: &str = "stream_workspace: refuse stream {id}: {error}";
    const CLOSED: &str = "close(): client closed, streams captured";
    const CLOSE_RETURNS: &str = "close() returns";
    const CLEANUP: &str = "reader exit cleanup";
    const SIGNAL_CLOSE: &str = "CloseSignal::close";
    const QUEUE_CLOSE: &str = "Queue::close";
    const PARKS: &str = "Queue::send parks (full)";
    const SEND_REFUSED: &str = "Queue::send refused (closed)";
    const STOP: &str = "StreamManager::stop()";
    const WAIT_FROM_HANDLER: &str = "StreamManager::wait() from a handler: stop, no drain";
    const WAIT_RETURNS: &str = "StreamManager::wait() returns";
    /// S9's marks (the scenario's own): how main's first input came out.
    pub(crate) const FIRST_INPUT_QUEUED: &str = "s9: first input queued";
    pub(crate) const FIRST_INPUT_REFUSED: &str = "s9: first input refused";

    const fn both(name: &'static str, events: &'static [crate::windows::Event]) -> Window {
        Window {
            name,
            events,
            only: None,
        }
    }

    const fn only(
        checker: Checker,
        name: &'static str,
        events: &'static [crate::windows::Event],
    ) -> Window {
        Window {
            name,
            events,
            only: Some(checker),
        }
    }

    /// Where main's close() lands in the caller's stream_workspace.
    pub(super) const S1: &[Window] = &[
        both(
            "close() before the caller's pre-dial check",
            &[on("main", CLOSED), on("caller", CHECK)],
        ),
        both(
            "close() between the caller's check and its publish (the re-check refuses)",
            &[
                on("caller", CHECK),
                on("main", CLOSED),
                on("caller", REFUSE),
            ],
        ),
        both(
            "close() between the publish and the reader's start",
            &[
                on("caller", PUBLISH),
                on("main", CLOSED),
                on("reader", STARTED),
            ],
        ),
        both(
            "close() after the reader started",
            &[on("reader", STARTED), on("main", CLOSED)],
        ),
    ];

    /// The gate holds the dial until close() returned.
    pub(super) const S2: &[Window] = &[both(
        "the dial completes after close() returned (the re-check refuses)",
        &[on("main", CLOSE_RETURNS), on("caller", REFUSE)],
    )];

    /// Both callers pass the pre-dial check; one re-check must lose.
    pub(super) const S3: &[Window] = &[
        both(
            "both dial, the caller publishes, main's re-check refuses",
            &[on("main", DIAL), on("caller", PUBLISH), on("main", REFUSE)],
        ),
        both(
            "both dial, main publishes, the caller's re-check refuses",
            &[
                on("caller", DIAL),
                on("main", PUBLISH),
                on("caller", REFUSE),
            ],
        ),
        both(
            "main's pre-dial check after the caller published",
            &[on("caller", PUBLISH), on("main", CHECK)],
        ),
    ];

    /// The old reader's exit cleanup after the new stream's publish (S4;
    /// S12 too) and before it (S12).
    const CLEANUP_AFTER_PUBLISH: Window = both(
        "the old reader's cleanup lands after the new publish",
        &[
            on("reader#1", STARTED),
            on("main", PUBLISH),
            on("reader#1", CLEANUP),
        ],
    );

    pub(super) const S4: &[Window] = &[CLEANUP_AFTER_PUBLISH];

    pub(super) const S12: &[Window] = &[
        both(
            "the old reader's cleanup lands before the new publish",
            &[on("reader#1", CLEANUP), on("main", PUBLISH)],
        ),
        CLEANUP_AFTER_PUBLISH,
    ];

    /// The sender against close(). (The queue's marks are made as its
    /// calls begin: a park listed before the close happened before it.)
    pub(super) const S5: &[Window] = &[both(
        "close() lands while the sender is parked on the full queue",
        &[
            on("sender", PARKS),
            on("main", QUEUE_CLOSE),
            on("sender", SEND_REFUSED),
        ],
    )];

    /// Two Client::close calls and a WorkspaceStream::close.
    pub(super) const S6: &[Window] = &[
        both(
            "the closer's close() starts while main's drains",
            &[
                on("main", CLOSED),
                on("closer", CLOSED),
                on("main", CLOSE_RETURNS),
            ],
        ),
        both(
            "main's close() starts while the closer's drains",
            &[
                on("closer", CLOSED),
                on("main", CLOSED),
                on("closer", CLOSE_RETURNS),
            ],
        ),
        both(
            "the closer's Client::close closes the stream before main's WorkspaceStream::close",
            &[on("closer", SIGNAL_CLOSE), on("main", SIGNAL_CLOSE)],
        ),
    ];

    /// The handler's close() on the reader, then main's.
    pub(super) const S7: &[Window] = &[
        both(
            "main's close() lands after the handler's returned, before the reader's cleanup",
            &[
                on("reader#1", CLOSE_RETURNS),
                on("main", CLOSED),
                on("reader#1", CLEANUP),
            ],
        ),
        both(
            "main's close() lands after the reader exited",
            &[on("reader#1", EXITED), on("main", CLOSED)],
        ),
    ];

    /// The reconnect loop against stop(). (loom never preempts main
    /// between start() and stop(): there the stop reaches the loop through
    /// the merger, which the supervisor spawns.)
    pub(super) const S8: &[Window] = &[
        both(
            "the merged stop fires between the supervisor's dial and its exit",
            &[
                on("supervisor", DIAL),
                on("stop-merger", SIGNAL_CLOSE),
                on("supervisor", EXITED),
            ],
        ),
        only(
            Checker::Loom,
            "the loop gives up (every dial refused) before the merged stop fires",
            &[on("supervisor", EXITED), on("stop-merger", SIGNAL_CLOSE)],
        ),
        only(
            Checker::Shuttle,
            "stop() lands while the reconnected stream is live",
            &[
                on("reader#2", STARTED),
                on("main", STOP),
                on("reader#2", EXITED),
            ],
        ),
        only(
            Checker::Shuttle,
            "stop() lands before the reconnect",
            &[on("main", STOP), on("supervisor", DIAL)],
        ),
    ];

    /// Main's first input against the panic's cleanup.
    pub(super) const S9: &[Window] = &[
        both(
            "main's first input is queued before the cleanup closed the stream",
            &[on("main", FIRST_INPUT_QUEUED)],
        ),
        both(
            "main's first input comes after the cleanup closed the stream",
            &[on("reader#1", CLEANUP), on("main", FIRST_INPUT_REFUSED)],
        ),
    ];

    /// Two handlers and main in Client::close at once.
    pub(super) const S10: &[Window] = &[
        both(
            "B's handler closes while A's handler's close() drains",
            &[
                on("reader#1", CLOSED),
                on("reader#2", CLOSED),
                on("reader#1", CLOSE_RETURNS),
            ],
        ),
        both(
            "a handler's close() lands while main's close() drains",
            &[
                on("main", CLOSED),
                on("reader", CLOSED),
                on("main", CLOSE_RETURNS),
            ],
        ),
    ];

    /// StreamManager::wait() from a managed stream's handler.
    pub(super) const S11: &[Window] = &[
        both(
            "the handler's wait() stops the manager before main's wait() drains",
            &[on("reader", WAIT_FROM_HANDLER), on("main", WAIT_RETURNS)],
        ),
        only(
            Checker::Shuttle,
            "the manager reconnects after the first handler panicked",
            &[on("reader#1", EXITED), on("reader#2", STARTED)],
        ),
    ];
}

/// The parked handler of S4, for the other model suites too.
#[cfg(any(wsdrain_loom, wsdrain_shuttle))]
pub use bodies::parked;

#[cfg(any(wsdrain_loom, wsdrain_shuttle))]
pub(crate) mod bodies {
    use super::*;
    use crate::oracles::{
        after_close, ended_as_closed, everywhere, expecting, input_honesty, ready_at_barrier,
    };
    type Mem = Client<MemoryTransport>;

    /// A quiet server (no `connected` message, and a sink for what the
    /// client writes: fewer steps to explore).
    fn quiet() -> MemoryTransport {
        MemoryTransport::new()
            .with_connected_message(false)
            .with_sink_server()
    }

    pub(crate) fn client(transport: &MemoryTransport, bugs: Bugs) -> Mem {
        let config = ClientConfig::default()
            .with_input_queue_capacity(1)
            .with_bugs(bugs);
        Client::with_transport(transport.clone(), "mem://workspace", config)
    }

    pub(crate) async fn ignore(_: Event) {}

    /// A handler that holds the reader on its first event: fires `entered`,
    /// then waits for `go` (S4; the transport suite).
    pub fn parked(entered: &CloseSignal, go: &CloseSignal) -> impl wsdrain::Handler + use<> {
        let (entered, go) = (entered.clone(), go.clone());
        move |_event: Event| {
            let (entered, go) = (entered.clone(), go.clone());
            async move {
                entered.close();
                go.closed().await;
            }
        }
    }

    /// End-of-execution oracle: every connection the transport opened is closed.
    pub fn end_checks(transport: &MemoryTransport) {
        let open = transport.open_connections();
        if open > 0 {
            panic!(
                "oracle[{}] violated: {open} connection(s) still open at the end of the execution",
                Oracle::NoOrphan
            );
        }
    }

    pub(crate) fn assert_drained(client: &Mem, what: &str) {
        let live = client.live_tasks();
        if live > 0 {
            panic!(
                "oracle[{}] violated: {what} returned while {live} client task(s) still running",
                Oracle::DrainBarrier
            );
        }
    }

    pub(super) fn s1(bugs: Bugs) {
        let transport = quiet();
        let client = client(&transport, bugs);
        let caller = {
            let client = client.clone();
            model_thread(move || {
                trace::label_current("caller");
                block_on(client.stream_workspace(ignore)).ok()
            })
        };
        block_on(client.close());
        // A stream the caller got was published before close() marked the
        // client closed, so close() drained it: judged once both are back.
        if let Some(stream) = caller.join().unwrap() {
            after_close(&client, &[&stream]);
        }
        end_checks(&transport);
    }

    pub(super) fn s2(bugs: Bugs) {
        let (transport, gate) = quiet().with_dial_gate();
        let client = client(&transport, bugs);
        let caller = {
            let client = client.clone();
            model_thread(move || {
                trace::label_current("caller");
                let result = block_on(client.stream_workspace(ignore));
                assert!(
                    result.is_err(),
                    "a stream dialed across close() was accepted"
                );
            })
        };
        block_on(gate.entered());
        block_on(client.close());
        gate.release();
        caller.join().unwrap();
        end_checks(&transport);
    }

    pub(super) fn s3(bugs: Bugs) {
        let transport = quiet();
        let client = client(&transport, bugs);
        // main is the second caller: one model thread fewer to interleave.
        let caller = {
            let client = client.clone();
            model_thread(move || {
                trace::label_current("caller");
                block_on(client.stream_workspace(ignore)).ok()
            })
        };
        let main_won = block_on(client.stream_workspace(ignore)).ok();
        let caller_won = caller.join().unwrap();
        let winners: Vec<_> = main_won.iter().chain(&caller_won).collect();
        assert_eq!(
            winners.len(),
            1,
            "exactly one concurrent stream_workspace must win"
        );
        block_on(client.close());
        after_close(&client, &winners);
        end_checks(&transport);
    }

    /// S4 holds the old reader in its handler (parked on the `connected`
    /// frame) until the new stream is published, so its exit cleanup comes
    /// after the publish and races only close() and the new stream's tasks;
    /// S12 explores the cleanup before the publish. Together they are S4
    /// before the split (whose bound 2 took 973k executions).
    pub(super) fn s4(bugs: Bugs) {
        // `connected` is stream 1's first event: its handler parks on it.
        // Not a sink: main sees the old writer close its side (below).
        let transport = MemoryTransport::new();
        let client = client(&transport, bugs);
        let (entered, go) = (CloseSignal::new(), CloseSignal::new());
        let first = block_on(client.stream_workspace(parked(&entered, &go))).expect("first stream");
        block_on(entered.closed());
        // Stream 2 gets no `connected` and is a sink (the settings are the
        // server's, read at each accept): fewer steps to explore.
        let _ = transport
            .clone()
            .with_connected_message(false)
            .with_sink_server();
        let _retired = client
            .close_workspace_stream()
            .expect("stream 1 is current while its reader is parked");
        // The retirement woke the old writer; waiting until it closed its
        // side keeps its exit out of the new stream's interleavings
        // (bound 1: 41,236 -> 29,371 executions).
        let old_side = block_on(transport.connections()[0].recv());
        assert!(old_side.is_none(), "the old writer sent {old_side:?}");
        let second = match block_on(client.stream_workspace(ignore)) {
            Ok(second) => second,
            Err(error) => panic!("a new stream after close_workspace_stream: {error:?}"),
        };
        go.close();
        block_on(client.close());
        after_close(&client, &[&first, &second]);
        end_checks(&transport);
    }

    /// S12: the server drops stream 1 and main at once retires it and
    /// opens stream 2, so the old reader's exit cleanup (identity check and
    /// unpublish) can land before the retirement, between it and the new
    /// publish, or after. A cleanup that checks identity and takes the
    /// stream in two critical sections clears stream 2 here (caught at
    /// bound 2, identity); S4's handler-held reader and the old S12, which
    /// awaited the old stream's `wait()` first, never straddled the two.
    pub(super) fn s12(bugs: Bugs) {
        let transport = quiet();
        let client = client(&transport, bugs);
        let first = block_on(client.stream_workspace(ignore)).expect("first stream");
        transport.connections()[0].disconnect();
        // None when the old reader's cleanup came first.
        let _retired = client.close_workspace_stream();
        let second = match block_on(client.stream_workspace(ignore)) {
            Ok(second) => second,
            Err(error) => panic!("a new stream after the old one ended: {error:?}"),
        };
        block_on(client.close());
        after_close(&client, &[&first, &second]);
        end_checks(&transport);
    }

    pub(super) fn s5(bugs: Bugs) {
        // input-honesty needs a server that keeps what it receives (room
        // for both inputs: the server never blocks the writer); before
        // issue 10 the server was a sink.
        let transport = if everywhere() {
            MemoryTransport::new()
                .with_connected_message(false)
                .with_capacity(2)
        } else {
            quiet()
        };
        let client = client(&transport, bugs);
        let stream = block_on(client.stream_workspace(ignore)).expect("stream");
        // input-honesty's other half: input queued on a live stream is
        // delivered (a writer that drops it passes every check below).
        // shuttle only: under loom this preamble took S5 at bound 2 from
        // 116,712 to 924,443 executions (175 s).
        let loom = crate::cell::Checker::COMPILED == Some(crate::cell::Checker::Loom);
        if everywhere() && !loom {
            let conn = transport.connections()[0].clone();
            // The client's accessors tell the truth about its one live
            // stream (the probe's counts are what the drain-barrier reads).
            let current = client.workspace_stream().map(|current| current.id());
            let (live, spawned) = (client.live_tasks(), client.spawned_tasks());
            let conns = client.transport().connections().len();
            if current != Some(stream.id())
                || (live, spawned, conns) != (2, 2, 1)
                || client.is_closed()
            {
                crate::oracles::violated(
                    Oracle::Model,
                    format!(
                        "the client misreports its live stream {}: workspace_stream() {current:?}, \
                         live_tasks() {live}, spawned_tasks() {spawned}, connections {conns}, \
                         is_closed() {}",
                        stream.id(),
                        client.is_closed()
                    ),
                );
            }
            // Nothing has closed it: a stream that says it is closed tells
            // its user to stop sending input it would still deliver.
            if stream.is_closed() {
                crate::oracles::violated(
                    Oracle::InputHonesty,
                    "a live stream says is_closed() before anything closed it",
                );
            }
            // Each input method, in order (each one a message of its own).
            for (what, payload) in [("input", "\"first\""), ("resize", "\"cols\":80")] {
                let queued = match what {
                    "input" => block_on(stream.write_shell_input("first")),
                    _ => block_on(stream.resize_shell(80, 24)),
                };
                if queued.is_err() {
                    crate::oracles::violated(
                        Oracle::InputHonesty,
                        format!("{what} to a live stream refused"),
                    );
                }
                let got = expecting(
                    Oracle::InputHonesty,
                    "input queued on a live stream reaches the server",
                    || block_on(conn.recv()),
                );
                if !got.as_deref().is_some_and(|text| text.contains(payload)) {
                    crate::oracles::violated(
                        Oracle::InputHonesty,
                        format!("{what} queued on a live stream was not delivered (got {got:?})"),
                    );
                }
            }
        }
        let sender = {
            let stream = stream.clone();
            model_thread(move || {
                trace::label_current("sender");
                block_on(async {
                    let input = stream.write_shell_input("ls").await.is_ok();
                    let ping = stream.ping().await.is_ok();
                    (input, ping)
                })
            })
        };
        block_on(client.close());
        after_close(&client, &[&stream]);
        if everywhere() && !loom && !client.is_closed() {
            crate::oracles::violated(Oracle::Model, "close() returned but is_closed() says no");
        }
        let (input, ping) = sender.join().unwrap();
        if everywhere() {
            input_honesty(
                &transport.connections()[0],
                &[("\"ls\"", input), ("\"ping\"", ping)],
            );
        }
        end_checks(&transport);
    }

    pub(super) fn s6(bugs: Bugs) {
        // The server answers the client's close with a Close frame, as a
        // WebSocket server does: the reader may read that answer before it
        // sees its own close signal, and the stream must still end
        // `Closed` (a reader that reported `ServerClosed` survived every
        // model before). shuttle only: loom explores S6 at bound 2 within
        // verify's budget, and the answer adds a step to each writer's exit.
        let loom = crate::cell::Checker::COMPILED == Some(crate::cell::Checker::Loom);
        let answered = everywhere() && !loom;
        let transport = if answered {
            quiet().with_close_answer()
        } else {
            quiet()
        };
        let client = client(&transport, bugs);
        let stream = block_on(client.stream_workspace(ignore)).expect("stream");
        let other = {
            let (client, stream) = (client.clone(), stream.clone());
            model_thread(move || {
                trace::label_current("closer");
                block_on(client.close());
                if everywhere() {
                    ready_at_barrier(&[&stream]);
                }
            })
        };
        stream.close();
        block_on(client.close());
        after_close(&client, &[&stream]);
        if answered {
            ended_as_closed(&stream);
        }
        other.join().unwrap();
        end_checks(&transport);
    }

    pub(super) fn s7(bugs: Bugs) {
        // Sends `connected`: the trigger.
        let transport = MemoryTransport::new().with_sink_server();
        let client = client(&transport, bugs);
        let handler_closed = CloseSignal::new();
        let handler = {
            let client = client.clone();
            let handler_closed = handler_closed.clone();
            let mut fired = false;
            move |_event: Event| {
                let first = !std::mem::replace(&mut fired, true);
                let client = client.clone();
                let handler_closed = handler_closed.clone();
                async move {
                    if first {
                        client.close().await;
                        handler_closed.close();
                    }
                }
            }
        };
        let stream = block_on(client.stream_workspace(handler)).expect("stream");
        block_on(handler_closed.closed());
        block_on(client.close());
        assert_drained(&client, "close() after the handler's close()");
        after_close(&client, &[&stream]);
        end_checks(&transport);
    }

    pub(super) fn s8(bugs: Bugs) {
        // loom models at most 5 threads, and a managed stream already needs
        // all of them (main, supervisor, stop-merger, reader, writer); its
        // reconnect would need two more. So under loom the server refuses
        // every dial and the scenario is the reconnect loop itself (dial,
        // fail, back off, retry) racing stop()/wait(). shuttle has no such
        // limit: the first dial connects, the server drops it, and the
        // manager must reconnect (manager-promise); the server drops that
        // one too, and stop() races the next (refused) reconnect.
        let loom = crate::cell::Checker::COMPILED == Some(crate::cell::Checker::Loom);
        if !loom && everywhere() {
            return s8_promise(bugs);
        }
        let transport = quiet()
            .with_accept_limit(if loom { 0 } else { 2 })
            .with_accept_signal();
        let client = client(&transport, bugs);
        let max = if loom { 3 } else { 2 };
        let config = ManagerConfig::default().with_max_consecutive_failures(max);
        let manager = StreamManager::start(client.clone(), || ignore, config);
        if !loom {
            block_on(transport.first_accept());
            transport.connections()[0].disconnect();
        }
        manager.stop();
        block_on(manager.wait());
        assert_drained(&client, "StreamManager::wait()");
        if everywhere() {
            gave_up_only_as_promised(&manager, max);
        }
        drop(manager);
        end_checks(&transport);
    }

    /// manager-promise, after `wait()`: a manager that gave up says why,
    /// and the only reason S8 leaves it is running out of retries (a refused
    /// dial is transient: giving up on the first one breaks the promise),
    /// after exactly the `max` consecutive failures it was given.
    fn gave_up_only_as_promised(manager: &StreamManager, max: u32) {
        match manager.gave_up() {
            None => {}
            Some(wsdrain::Error::RetriesExhausted { attempts, .. }) if *attempts == max => {}
            Some(reason) => crate::oracles::violated(
                Oracle::ManagerPromise,
                format!(
                    "the manager gave up on a transient failure, allowed {max} in a row: {reason}"
                ),
            ),
        }
    }

    /// S8 under shuttle: two server drops, the first one's reconnect
    /// awaited as the manager's promise; the second one's is refused.
    fn s8_promise(bugs: Bugs) {
        // `connected` tells each managed stream's handler it is live.
        // Two accepts: the reconnect after the second drop is refused (a
        // transient failure the manager must retry, not give up on).
        let transport = MemoryTransport::new()
            .with_sink_server()
            .with_accept_limit(2);
        let client = client(&transport, bugs);
        let live = [CloseSignal::new(), CloseSignal::new()];
        let make = {
            let live = live.clone();
            let mut made = 0;
            move || {
                let signal = live.get(made).cloned();
                made += 1;
                move |_event: Event| {
                    if let Some(signal) = &signal {
                        signal.close();
                    }
                    async {}
                }
            }
        };
        let config = ManagerConfig::default().with_max_consecutive_failures(2);
        let manager = StreamManager::start(client.clone(), make, config);
        block_on(live[0].closed());
        // The manager's accessors tell the truth: its supervisor and its
        // stop-merger (spawned before the first dial) are running.
        if manager.live_tasks() != 2 {
            crate::oracles::violated(
                Oracle::Model,
                format!(
                    "a running manager says live_tasks() {} (its supervisor and stop-merger run)",
                    manager.live_tasks()
                ),
            );
        }
        transport.connections()[0].disconnect();
        expecting(
            Oracle::ManagerPromise,
            "the manager reconnects after the server dropped its stream",
            || block_on(live[1].closed()),
        );
        transport.connections()[1].disconnect();
        manager.stop();
        block_on(manager.wait());
        assert_drained(&client, "StreamManager::wait()");
        gave_up_only_as_promised(&manager, 2);
        // Two accepts, so two connects; nothing left running.
        if (manager.connects(), manager.live_tasks()) != (2, 0) {
            crate::oracles::violated(
                Oracle::Model,
                format!(
                    "after wait() the manager says connects() {} (the server accepted 2), \
                     live_tasks() {}",
                    manager.connects(),
                    manager.live_tasks()
                ),
            );
        }
        drop(manager);
        end_checks(&transport);
    }
}

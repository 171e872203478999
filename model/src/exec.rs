//! The executor: one program run against the real client over the
//! in-memory transport, every outcome checked against the reference model
//! ([`crate::expect`]), the oracles checked after every `Client::close()`
//! and at the end of the execution. The same async task bodies run on
//! tokio ([`run_tokio`]) and, in model builds, on loom or shuttle threads
//! (`run_model`, in model builds).
//!
//! Oracles (a violation panics with a typed [`Violation`], as the client's
//! probe does; the probe itself judges drain-barrier, no-orphan and
//! identity from inside the client):
//!
//! - **model**: an operation's outcome is outside its allowed set;
//! - **drain-barrier**: `live_tasks() == 0` when a `Client::close()` (not
//!   from a handler) or the final drain returns; a manager's tasks are gone
//!   when its `wait()` returns;
//! - **ready-at-barrier**: every stream's `wait()` is ready when
//!   `Client::close()` returns;
//! - **no-zombie**: after a stream's `wait()` returned, the client no
//!   longer holds it, `done()` fired and input is refused; at the end, for
//!   every stream;
//! - **input-honesty**: what the server received on each connection is
//!   inputs that answered `Ok`, each at most once, each task's in the
//!   order it sent them;
//! - **no-orphan**: every connection is closed at the end;
//! - **manager-promise**: when main ends the managed stream (the server
//!   drops or closes its connection, or `close_workspace_stream`) in a
//!   program where only the manager dials and nothing stops it before the
//!   epilogue, the manager tries again (it makes its next stream's handler,
//!   before it dials or finds out why it cannot), awaited as the promise;
//!   after `StreamManager::stop()` (an op, or the
//!   epilogue's, before any `wait()`), the managed stream ends without a
//!   `wait()` to help it (awaited as the promise: a deadlock there is named
//!   after it, see [`pending_promise`]), and the manager connects at most
//!   once more (a dial in flight when `stop()` returned), never again.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use serde::{Deserialize, Serialize};
use wsdrain::probe::{Oracle, Violation};
use wsdrain::transport::{Fault, MemoryTransport, ServerConn};
use wsdrain::{Client, ClientConfig, Error, Event, ManagerConfig, StreamManager, WorkspaceStream};

use crate::{FaultKind, HandlerKind, Op, Program, task_name};

/// What an operation returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It returned (an op without a result).
    Done,
    /// `Ok`.
    Ok,
    /// There was no stream to act on.
    NoStream,
    /// The cancellation dropped it.
    Cancelled,
    /// `Error::AlreadyConnected`.
    AlreadyConnected,
    /// `Error::ClientClosed`.
    ClientClosed,
    /// `Error::ClosedDuringDial`.
    ClosedDuringDial,
    /// `Error::StreamClosed`.
    StreamClosed,
    /// `Error::ConnectionRefused`.
    ConnectionRefused,
    /// `Error::HandshakeTimeout`.
    HandshakeTimeout,
    /// Any other error.
    Other,
}

impl Outcome {
    fn of(error: &Error) -> Outcome {
        match error {
            Error::AlreadyConnected => Outcome::AlreadyConnected,
            Error::ClientClosed => Outcome::ClientClosed,
            Error::ClosedDuringDial => Outcome::ClosedDuringDial,
            Error::StreamClosed => Outcome::StreamClosed,
            Error::ConnectionRefused { .. } => Outcome::ConnectionRefused,
            Error::HandshakeTimeout(_) => Outcome::HandshakeTimeout,
            _ => Outcome::Other,
        }
    }

    fn of_result<T>(result: &Result<T, Error>) -> Outcome {
        match result {
            Ok(_) => Outcome::Ok,
            Err(e) => Outcome::of(e),
        }
    }
}

/// Fail the execution for `oracle` (the panic the harness reports).
pub fn violated(oracle: Oracle, message: impl std::fmt::Display) -> ! {
    std::panic::panic_any(Violation {
        oracle,
        message: format!("oracle[{oracle}] violated: {message}"),
    })
}

/// The promises being awaited (oracle, what): a checker's deadlock report
/// while one is pending is that promise broken, not plain liveness (the
/// harness's `oracles::explain` asks [`pending_promise`]).
static PROMISES: Mutex<Vec<(Oracle, String)>> = Mutex::new(Vec::new());

/// The promise awaited first among those pending, if any.
pub fn pending_promise() -> Option<(Oracle, String)> {
    lock(&PROMISES).first().cloned()
}

/// Forget the promises of a previous execution.
pub fn reset_promises() {
    lock(&PROMISES).clear();
}

/// Await `future` as the promise of `oracle` that `what` happens.
async fn expecting<F: Future>(oracle: Oracle, what: &str, future: F) -> F::Output {
    let entry = (oracle, what.to_owned());
    lock(&PROMISES).push(entry.clone());
    let out = future.await;
    let mut pending = lock(&PROMISES);
    if let Some(at) = pending.iter().position(|p| *p == entry) {
        pending.remove(at);
    }
    out
}

/// Whether `future` is ready at its first poll.
fn ready_now<F: Future>(future: F) -> Option<F::Output> {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(future).poll(&mut cx) {
        Poll::Ready(out) => Some(out),
        Poll::Pending => None,
    }
}

/// One input call: who sent it, its payload, whether it answered `Ok`.
#[derive(Debug, Clone)]
struct Sent {
    task: usize,
    payload: String,
    ok: bool,
}

/// The shared state of one execution. What one task hands to another (the
/// streams and connections its dials made) goes through facade mutexes:
/// loom sees a value made in one thread and used in another as a data race
/// unless a synchronisation it models orders them. What is read only at
/// the end, after the joins, is behind `std` locks, never held across a
/// facade operation (under the checkers every task runs on one OS thread).
struct World {
    program: Program,
    transport: MemoryTransport,
    client: Client<MemoryTransport>,
    manager: Option<StreamManager>,
    streams: wsdrain::sync::Mutex<Vec<WorkspaceStream>>,
    /// The connections the program's own dials made, newest last.
    conns: wsdrain::sync::Mutex<Vec<ServerConn>>,
    sent: Mutex<Vec<Sent>>,
    /// The program's dials in progress: a stream the client holds that is
    /// not the program's while none is in progress is the manager's.
    dialing: AtomicUsize,
    /// The manager's `connects()` when `stop()` was first called.
    connects_at_stop: Mutex<Option<u64>>,
    /// Fired when the manager next makes a stream's handler (it is about
    /// to dial again), if armed.
    next_managed: Arc<Mutex<Option<wsdrain::sync::CloseSignal>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl World {
    fn new(program: &Program, config: ClientConfig) -> World {
        let transport = MemoryTransport::new();
        let client = Client::with_transport(
            transport.clone(),
            "mem://workspace",
            config.with_input_queue_capacity(1),
        );
        let next_managed: Arc<Mutex<Option<wsdrain::sync::CloseSignal>>> = Arc::default();
        let manager = program.manager.then(|| {
            let transport = transport.clone();
            let next = next_managed.clone();
            StreamManager::start(
                client.clone(),
                move || {
                    if let Some(made) = lock(&next).take() {
                        made.close();
                    }
                    transport.faulty_handler(ignore)
                },
                ManagerConfig::default().with_max_consecutive_failures(2),
            )
        });
        World {
            program: program.clone(),
            transport,
            client,
            manager,
            streams: wsdrain::sync::Mutex::new(Vec::new()),
            conns: wsdrain::sync::Mutex::new(Vec::new()),
            sent: Mutex::default(),
            dialing: AtomicUsize::new(0),
            connects_at_stop: Mutex::default(),
            next_managed,
        }
    }

    fn newest(&self) -> Option<WorkspaceStream> {
        self.streams.lock().last().cloned()
    }

    /// The newest connection of the program's own dials; in a program
    /// where only the manager dials, the manager's newest (a program with
    /// a manager never runs under loom, whose causality checks need the
    /// hand-over through `conns`).
    fn newest_conn(&self) -> Option<ServerConn> {
        let newest = self.conns.lock().last().cloned();
        if newest.is_none() && self.only_manager_dials() {
            return self.transport.connections().pop();
        }
        newest
    }

    /// A program with a manager and no dial of its own.
    fn only_manager_dials(&self) -> bool {
        self.manager.is_some() && !self.program.ops().any(|(_, _, op)| op.dials())
    }

    /// Arm the reconnect promise before main ends the managed stream, if
    /// it is live and the manager must try again: only the manager dials
    /// (so the client's stream is its), and nothing but the epilogue, which
    /// follows main's ops, stops it. `None` otherwise.
    fn arm_reconnect(&self, task: usize) -> Option<wsdrain::sync::CloseSignal> {
        let stops = self
            .program
            .ops()
            .any(|(_, _, op)| matches!(op, Op::ManagerStop | Op::ManagerWait));
        if task != 0 || stops || !self.only_manager_dials() {
            return None;
        }
        let live = self.client.workspace_stream()?;
        if live.is_closed() {
            return None;
        }
        let made = wsdrain::sync::CloseSignal::new();
        *lock(&self.next_managed) = Some(made.clone());
        Some(made)
    }

    /// Await the armed reconnect promise.
    async fn reconnects(&self, armed: Option<wsdrain::sync::CloseSignal>, how: &str) {
        if let Some(made) = armed {
            let what = format!("after {how} the managed stream, the manager tries again");
            expecting(Oracle::ManagerPromise, &what, made.closed()).await;
        }
    }

    fn handler(&self, kind: HandlerKind) -> impl wsdrain::Handler + use<> {
        let client = self.client.clone();
        let mut first = true;
        let inner = move |_event: Event| {
            let close = std::mem::replace(&mut first, false) && kind == HandlerKind::CloseClient;
            let client = client.clone();
            async move {
                if close {
                    client.close().await;
                }
            }
        };
        if kind == HandlerKind::Panic {
            self.transport.inject(Fault::HandlerPanic);
        }
        self.transport.faulty_handler(inner)
    }

    async fn dial(&self, kind: HandlerKind, cancellable: bool) -> Outcome {
        self.dialing.fetch_add(1, Ordering::SeqCst);
        let outcome = self.dial_counted(kind, cancellable).await;
        self.dialing.fetch_sub(1, Ordering::SeqCst);
        outcome
    }

    async fn dial_counted(&self, kind: HandlerKind, cancellable: bool) -> Outcome {
        let handler = self.handler(kind);
        let result = if cancellable {
            match self
                .transport
                .cancellable(self.client.stream_workspace(handler))
                .await
            {
                Some(result) => result,
                None => return Outcome::Cancelled,
            }
        } else {
            self.client.stream_workspace(handler).await
        };
        let outcome = Outcome::of_result(&result);
        // The newest connection is this dial's, if it made one (under loom,
        // which checks causality, a program has no concurrent dials: see
        // `Program::fits_loom`): hand it on to the other tasks.
        let newest = self.transport.connections().pop();
        if let Some(conn) = newest {
            let mut conns = self.conns.lock();
            if !conns.iter().any(|c| c.id() == conn.id()) {
                conns.push(conn);
            }
        }
        if let Ok(stream) = result {
            self.streams.lock().push(stream);
        }
        outcome
    }

    /// The barrier's promises, right after a `Client::close()` returned.
    fn after_close(&self, what: &str) {
        let live = self.client.live_tasks();
        if live > 0 {
            violated(
                Oracle::DrainBarrier,
                format!("{what} returned while {live} client task(s) still running"),
            );
        }
        let streams = self.streams.lock().clone();
        for stream in &streams {
            if ready_now(stream.wait()).is_none() {
                violated(
                    Oracle::ReadyAtBarrier,
                    format!(
                        "{what} returned but stream {}'s wait() is not ready",
                        stream.id()
                    ),
                );
            }
        }
    }

    /// no-zombie for a stream whose `wait()` returned.
    fn forgotten(&self, stream: &WorkspaceStream) {
        if self
            .client
            .workspace_stream()
            .is_some_and(|current| current.id() == stream.id())
        {
            violated(
                Oracle::NoZombie,
                format!(
                    "stream {}'s tasks have exited but the client still holds it: every later \
                     stream_workspace fails AlreadyConnected",
                    stream.id()
                ),
            );
        }
        if !stream.is_closed() {
            violated(
                Oracle::NoZombie,
                format!(
                    "stream {}'s tasks have exited but done() never fired",
                    stream.id()
                ),
            );
        }
        if let Some(Ok(())) = ready_now(stream.ping()) {
            violated(
                Oracle::NoZombie,
                format!(
                    "stream {}'s tasks have exited but ping() still answers Ok",
                    stream.id()
                ),
            );
        }
    }

    async fn input(&self, task: usize, index: usize, ping: bool) -> Outcome {
        let Some(stream) = self.newest() else {
            return Outcome::NoStream;
        };
        if ping {
            return Outcome::of_result(&stream.ping().await);
        }
        let payload = format!("<{}:{index}>", task_name(task));
        let result = stream.write_shell_input(payload.clone()).await;
        lock(&self.sent).push(Sent {
            task,
            payload,
            ok: result.is_ok(),
        });
        Outcome::of_result(&result)
    }

    async fn apply(&self, task: usize, index: usize, op: Op) -> Outcome {
        let newest_conn = || self.newest_conn();
        match op {
            Op::Stream { handler } => self.dial(handler, false).await,
            Op::StreamCancellable => self.dial(HandlerKind::Ignore, true).await,
            Op::Input => self.input(task, index, false).await,
            Op::Ping => self.input(task, index, true).await,
            Op::StreamClose { wait } => {
                let Some(stream) = self.newest() else {
                    return Outcome::Done;
                };
                stream.close();
                if wait {
                    stream.wait().await;
                    self.forgotten(&stream);
                }
                Outcome::Done
            }
            Op::CloseWorkspaceStream => {
                let armed = self.arm_reconnect(task);
                drop(self.client.close_workspace_stream());
                self.reconnects(armed, "close_workspace_stream() closed")
                    .await;
                Outcome::Done
            }
            Op::ClientClose => {
                self.client.close().await;
                self.after_close(&format!("{}'s Client::close()", task_name(task)));
                Outcome::Done
            }
            Op::CloseCancellable => match self.transport.cancellable(self.client.close()).await {
                Some(()) => {
                    self.after_close(&format!("{}'s Client::close()", task_name(task)));
                    Outcome::Done
                }
                None => Outcome::Cancelled,
            },
            Op::ServerSend => {
                if let Some(conn) = newest_conn() {
                    conn.send_text(format!("server frame {}:{index}", task_name(task)));
                }
                Outcome::Done
            }
            Op::ServerClose => {
                if let Some(conn) = newest_conn() {
                    let armed = conn.is_open().then(|| self.arm_reconnect(task)).flatten();
                    // A full queue refuses the close frame: nothing ends.
                    let closed = conn.close();
                    let armed = armed.filter(|_| closed);
                    self.reconnects(armed, "the server closed").await;
                }
                Outcome::Done
            }
            Op::ServerDisconnect => {
                if let Some(conn) = newest_conn() {
                    let armed = conn.is_open().then(|| self.arm_reconnect(task)).flatten();
                    conn.disconnect();
                    self.reconnects(armed, "the server dropped").await;
                }
                Outcome::Done
            }
            Op::ManagerStop => {
                self.stop_manager(&format!("{}'s", task_name(task))).await;
                Outcome::Done
            }
            Op::ManagerWait => {
                self.wait_for_manager().await;
                Outcome::Done
            }
            Op::Fault { fault } => {
                self.transport.inject(match fault {
                    FaultKind::DialError => Fault::DialError,
                    FaultKind::DialHang => Fault::DialHang,
                    FaultKind::ConnectTimeout => Fault::ConnectTimeout,
                    FaultKind::SendError => Fault::SendError,
                    FaultKind::RecvError => Fault::RecvError,
                    FaultKind::StopReading => Fault::StopReading,
                    FaultKind::HalfClose => Fault::HalfClose,
                    FaultKind::Cancel => Fault::Cancel,
                });
                Outcome::Done
            }
        }
    }

    /// Run task `task`'s operations, each outcome checked.
    async fn run_task(&self, task: usize) {
        let mut earlier = Vec::new();
        for (index, &op) in self.program.tasks[task].iter().enumerate() {
            let outcome = self.apply(task, index, op).await;
            let allowed = crate::expect::allowed(&self.program, task, index, &earlier);
            earlier.push(outcome);
            if !allowed.contains(&outcome) {
                violated(
                    Oracle::Model,
                    format!(
                        "{}'s op {index} {} returned {outcome:?}; the reference model allows \
                         {allowed:?}",
                        task_name(task),
                        op.label()
                    ),
                );
            }
        }
    }

    /// Main's epilogue before joining the other tasks: stop the manager,
    /// close the client (which releases blocked senders), then release
    /// whatever waits for a timer (a hung dial, a cancellable future).
    async fn release(&self) {
        self.stop_manager("the epilogue's").await;
        self.client.close().await;
        self.after_close("the final Client::close()");
        self.transport.inject(Fault::ConnectTimeout);
        self.transport.inject(Fault::Cancel);
    }

    /// The stream the client holds, if it is the manager's: not one of the
    /// program's, read while none of the program's dials is in progress (a
    /// dial publishes its stream before it returns it). Read in this order:
    /// a program's stream seen here is in `streams` once `dialing` reads 0.
    fn managed_stream(&self) -> Option<WorkspaceStream> {
        let current = self.client.workspace_stream()?;
        if self.dialing.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let ours = self.streams.lock().iter().any(|s| s.id() == current.id());
        (!ours).then_some(current)
    }

    /// `StreamManager::stop()` (if there is a manager), then its promise
    /// without a `wait()` to help: the managed stream ends.
    async fn stop_manager(&self, who: &str) {
        let Some(manager) = &self.manager else {
            return;
        };
        lock(&self.connects_at_stop).get_or_insert(manager.connects());
        manager.stop();
        if let Some(stream) = self.managed_stream() {
            let what = format!(
                "after {who} StreamManager::stop() (no wait()), the managed stream {} ends",
                stream.id()
            );
            expecting(Oracle::ManagerPromise, &what, stream.wait()).await;
        }
    }

    /// manager-promise at the end: after `stop()` returned, at most one
    /// more connection (a dial in flight, or about to start as `stop()`
    /// ran, which the manager then closes).
    fn no_connect_after_stop(&self) {
        let (Some(manager), Some(at_stop)) = (&self.manager, *lock(&self.connects_at_stop)) else {
            return;
        };
        let after = manager.connects().saturating_sub(at_stop);
        if after > 1 {
            violated(
                Oracle::ManagerPromise,
                format!(
                    "the manager connected {after} times after StreamManager::stop() returned \
                     (at most one dial may be in flight)"
                ),
            );
        }
    }

    /// `StreamManager::wait()` (if there is a manager), a drain barrier: no
    /// manager task may be alive when it returns.
    async fn wait_for_manager(&self) {
        if let Some(manager) = &self.manager {
            manager.wait().await;
            let live = manager.live_tasks();
            if live > 0 {
                violated(
                    Oracle::DrainBarrier,
                    format!("StreamManager::wait() returned with {live} manager task(s) alive"),
                );
            }
        }
    }

    /// After every task has ended: the manager's drain, a second close,
    /// and the end-of-execution oracles.
    async fn finish(&self) {
        self.wait_for_manager().await;
        self.no_connect_after_stop();
        self.client.close().await;
        self.after_close("the second final Client::close()");
        let streams = self.streams.lock().clone();
        for stream in &streams {
            self.forgotten(stream);
        }
        let open = self.transport.open_connections();
        if open > 0 {
            violated(
                Oracle::NoOrphan,
                format!("{open} connection(s) still open at the end of the execution"),
            );
        }
        self.input_honesty();
    }

    fn input_honesty(&self) {
        let sent = lock(&self.sent).clone();
        let mut seen = std::collections::HashSet::new();
        for conn in self.transport.connections() {
            // Per task, the index of the last payload delivered.
            let mut last: Vec<Option<usize>> = vec![None; self.program.tasks.len()];
            while let Some(text) = ready_now(conn.recv()).flatten() {
                let Some(at) = sent.iter().position(|s| text.contains(&s.payload)) else {
                    continue; // a ping, or the server's own
                };
                let s = &sent[at];
                if !s.ok {
                    violated(
                        Oracle::InputHonesty,
                        format!(
                            "input {} was refused (StreamClosed) yet delivered",
                            s.payload
                        ),
                    );
                }
                if !seen.insert(at) {
                    violated(
                        Oracle::InputHonesty,
                        format!("input {} was delivered twice", s.payload),
                    );
                }
                let order = sent[..at].iter().filter(|o| o.task == s.task).count();
                if last[s.task].is_some_and(|l| l > order) {
                    violated(
                        Oracle::InputHonesty,
                        format!(
                            "input {} was delivered after a later one of its task",
                            s.payload
                        ),
                    );
                }
                last[s.task] = Some(order);
            }
        }
    }
}

async fn ignore(_: Event) {}

/// Run `program` on the current tokio runtime: task 0 here, the others as
/// tokio tasks. Panics (with a [`Violation`]) when an oracle fails; a hang
/// is the caller's to bound (the property test runs on a paused clock
/// under a timeout).
pub async fn run_tokio(program: &Program, config: ClientConfig) {
    let world = Arc::new(World::new(program, config));
    let others: Vec<_> = (1..program.tasks.len())
        .map(|t| {
            let world = world.clone();
            tokio::spawn(async move { world.run_task(t).await })
        })
        .collect();
    world.run_task(0).await;
    world.release().await;
    for handle in others {
        if let Err(e) = handle.await
            && e.is_panic()
        {
            std::panic::resume_unwind(e.into_panic());
        }
    }
    world.finish().await;
}

/// Run `program` as one execution of a loom or shuttle model: task 0 on
/// the model's main thread, the others on model threads.
#[cfg(any(wsdrain_loom, wsdrain_shuttle))]
pub fn run_model(program: &Program, config: ClientConfig) {
    use wsdrain::sync::{block_on, model_thread, trace};
    reset_promises();
    trace::label_current("main");
    let world = Arc::new(World::new(program, config));
    let others: Vec<_> = (1..program.tasks.len())
        .map(|t| {
            let world = world.clone();
            model_thread(move || {
                trace::label_current(task_name(t));
                block_on(world.run_task(t));
            })
        })
        .collect();
    block_on(world.run_task(0));
    block_on(world.release());
    for handle in others {
        if let Err(payload) = handle.join() {
            std::panic::resume_unwind(payload);
        }
    }
    block_on(world.finish());
}

/// A program that did not end within its time limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hung;

/// [`run_tokio`] on a paused current-thread runtime, bounded by `limit` of
/// virtual time: the clock jumps ahead whenever every task is idle, so a
/// deadlock is [`Hung`] at once, and the program's own timers cost nothing.
pub fn run_paused(
    program: &Program,
    config: ClientConfig,
    limit: std::time::Duration,
) -> Result<(), Hung> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    rt.block_on(async {
        tokio::time::timeout(limit, run_tokio(program, config))
            .await
            .map_err(|_| Hung)
    })
}

/// The message of a panic payload: a [`Violation`]'s, or the text.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(v) = payload.downcast_ref::<Violation>() {
        v.message.clone()
    } else if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".to_owned()
    }
}

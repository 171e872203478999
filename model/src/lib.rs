//! The operation model of wsdrain, in one place: generated *concurrent*
//! programs over the client, the in-memory server and its faults; the
//! reference model's allowed outcomes for each operation; and one executor
//! that runs a program on tokio (the property test, the fuzz target) and
//! under loom or shuttle (the generated explorer of `cargo xtask verify`),
//! since the sync facade maps the client's tasks to each of them.
//!
//! A [`Program`] is 2-3 tasks, each a short sequence of [`Op`]s. Task 0 runs
//! on the model's main thread; the others on their own threads (checkers)
//! or tokio tasks. Every program ends with the same epilogue (stop the
//! manager, `Client::close`, fire the connect timeout and the cancellation,
//! join the tasks, close again) and the end-of-execution oracles. Programs
//! are serde JSON, so a failure replays from a file.
//!
//! - [`generate`]: program `i` of a budget comes from a fixed seed
//!   ([`Program::generate`]), or from fuzz bytes ([`Program::from_bytes`]);
//! - [`expect`]: the set of outcomes each operation may have;
//! - [`exec`]: the executor and the oracles it checks;
//! - `strategy` (feature `proptest`): a proptest strategy (shrinks).

pub mod exec;
pub mod expect;
pub mod generate;
#[cfg(feature = "proptest")]
pub mod strategy;

use serde::{Deserialize, Serialize};

pub use exec::Outcome;

/// What a stream's handler does with its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HandlerKind {
    /// Nothing.
    Ignore,
    /// Calls `Client::close()` on its first event (on the reader task).
    CloseClient,
    /// Panics on its first event (an injected `Fault::HandlerPanic`).
    Panic,
}

/// A fault injected into the in-memory world (`wsdrain::transport::Fault`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// The next dial is refused.
    DialError,
    /// The next dial hangs until the connect timeout fires.
    DialHang,
    /// The connect timeout fires.
    ConnectTimeout,
    /// The client's sends on the newest connection fail.
    SendError,
    /// The client's receive on the newest connection fails.
    RecvError,
    /// The server stops reading the newest connection.
    StopReading,
    /// The server closes its sending side of the newest connection.
    HalfClose,
    /// The cancellable futures ([`Op::StreamCancellable`],
    /// [`Op::CloseCancellable`]) are dropped where they are parked.
    Cancel,
}

impl FaultKind {
    /// Every fault.
    pub const ALL: [FaultKind; 8] = [
        FaultKind::DialError,
        FaultKind::DialHang,
        FaultKind::ConnectTimeout,
        FaultKind::SendError,
        FaultKind::RecvError,
        FaultKind::StopReading,
        FaultKind::HalfClose,
        FaultKind::Cancel,
    ];
}

/// One operation of a task. "The newest stream" is the last stream any
/// task's `stream_workspace` returned; "the newest connection" the last one
/// the server accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// `Client::stream_workspace` with a handler of this kind.
    Stream {
        /// What the handler does.
        handler: HandlerKind,
    },
    /// `stream_workspace` run through `MemoryTransport::cancellable`.
    StreamCancellable,
    /// `write_shell_input` on the newest stream.
    Input,
    /// `ping` on the newest stream.
    Ping,
    /// `WorkspaceStream::close` on the newest stream, then `wait()` if `wait`.
    StreamClose {
        /// Also wait for its tasks.
        wait: bool,
    },
    /// `Client::close_workspace_stream`.
    CloseWorkspaceStream,
    /// `Client::close`: the drain barrier.
    ClientClose,
    /// `Client::close` run through `MemoryTransport::cancellable`.
    CloseCancellable,
    /// The server sends a text frame down the newest connection.
    ServerSend,
    /// The server closes the newest connection normally.
    ServerClose,
    /// The server drops the newest connection abruptly.
    ServerDisconnect,
    /// `StreamManager::stop` (programs with a manager), then its promise
    /// without a `wait()`: the managed stream the client holds ends.
    ManagerStop,
    /// `StreamManager::wait` (stops it too, then drains).
    ManagerWait,
    /// Inject a fault.
    Fault {
        /// Which.
        fault: FaultKind,
    },
}

impl Op {
    /// Whether the op opens a stream (a dial).
    pub fn dials(self) -> bool {
        matches!(self, Op::Stream { .. } | Op::StreamCancellable)
    }

    /// A short label for listings and outcome logs.
    pub fn label(self) -> String {
        match self {
            Op::Stream { handler } => format!("stream({handler:?})"),
            Op::Fault { fault } => format!("fault({fault:?})"),
            Op::StreamClose { wait } => format!("stream_close(wait={wait})"),
            other => format!("{other:?}"),
        }
    }
}

/// A generated program: 2-3 concurrent tasks of a few operations each.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Program {
    /// Whether main starts a `StreamManager` before the tasks run.
    pub manager: bool,
    /// Task 0 runs on main; the others concurrently.
    pub tasks: Vec<Vec<Op>>,
}

impl Program {
    /// Every op of the program with its task and index.
    pub fn ops(&self) -> impl Iterator<Item = (usize, usize, Op)> + '_ {
        self.tasks
            .iter()
            .enumerate()
            .flat_map(|(t, ops)| ops.iter().enumerate().map(move |(i, &op)| (t, i, op)))
    }

    /// Operations in all.
    pub fn len(&self) -> usize {
        self.tasks.iter().map(Vec::len).sum()
    }

    /// Whether no task has an operation.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the program is well formed: 1-3 tasks, no manager op
    /// without a manager, and main never runs an op that may wait for the
    /// epilogue ([`Program::waits_for_epilogue`]).
    pub fn valid(&self) -> bool {
        (1..=3).contains(&self.tasks.len())
            && (self.manager
                || !self
                    .ops()
                    .any(|(_, _, op)| matches!(op, Op::ManagerStop | Op::ManagerWait)))
            && !self.tasks[0].iter().any(|&op| self.waits_for_epilogue(op))
    }

    /// Whether `op` may block until main's epilogue releases it: a dial (or
    /// a manager's drain, which waits for its dial) while a hung dial
    /// waits for the connect timeout, which only the epilogue is sure to
    /// fire; input while the server may stop reading (a full window blocks
    /// the sender until `Client::close()`). Such ops are valid in the other
    /// tasks only: main runs the epilogue once its own ops are done.
    pub fn waits_for_epilogue(&self, op: Op) -> bool {
        let has = |fault| self.ops().any(|(_, _, o)| o == Op::Fault { fault });
        match op {
            Op::Stream { .. } | Op::StreamCancellable | Op::ManagerWait => has(FaultKind::DialHang),
            Op::Input | Op::Ping => has(FaultKind::StopReading),
            _ => false,
        }
    }

    /// Make the program valid: main's ops that may wait for the epilogue
    /// move to the end of task 1 (made if missing).
    pub fn normalize(&mut self) {
        let (moved, kept): (Vec<Op>, Vec<Op>) = self.tasks[0]
            .iter()
            .partition(|&&op| self.waits_for_epilogue(op));
        if moved.is_empty() {
            return;
        }
        self.tasks[0] = kept;
        if self.tasks.len() < 2 {
            self.tasks.push(Vec::new());
        }
        self.tasks[1].extend(moved);
    }

    /// Model threads this program needs at most under loom: main, the
    /// other tasks, two per stream (reader, writer), two for a manager.
    pub fn loom_threads(&self) -> usize {
        let dials = self.ops().filter(|(_, _, op)| op.dials()).count();
        self.tasks.len() + 2 * dials + if self.manager { 2 } else { 0 }
    }

    /// Whether it fits loom's five threads.
    pub fn fits_loom(&self) -> bool {
        self.loom_threads() <= 5
    }

    /// The JSON form (what a replay file holds).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a program serializes")
    }

    /// Parse the JSON form.
    pub fn from_json(json: &str) -> Result<Program, String> {
        let program: Program = serde_json::from_str(json).map_err(|e| e.to_string())?;
        if program.valid() {
            Ok(program)
        } else {
            Err("not a valid program: 1-3 tasks, and manager ops need \"manager\": true".into())
        }
    }

    /// Smaller programs, for shrinking by deletion: without one of the
    /// other tasks, then without one operation, then without the manager.
    /// A task other than main left without operations is deleted too (it
    /// would only add a thread that does nothing); each candidate once.
    pub fn shrink_candidates(&self) -> Vec<Program> {
        let mut out = Vec::new();
        for t in (1..self.tasks.len()).rev() {
            let mut p = self.clone();
            p.tasks.remove(t);
            out.push(p);
        }
        for (t, i, _) in self.ops().collect::<Vec<_>>().into_iter().rev() {
            let mut p = self.clone();
            p.tasks[t].remove(i);
            out.push(p);
        }
        if self.manager {
            let mut p = self.clone();
            p.manager = false;
            out.push(p);
        }
        let mut seen = std::collections::HashSet::new();
        out.into_iter()
            .map(Program::without_empty_tasks)
            .filter(|p| p != self && p.valid() && seen.insert(p.clone()))
            .collect()
    }

    /// The same program without its empty tasks other than main (task 0
    /// runs the epilogue, so it stays, empty or not).
    pub fn without_empty_tasks(mut self) -> Program {
        let mut t = 1;
        while t < self.tasks.len() {
            if self.tasks[t].is_empty() {
                self.tasks.remove(t);
            } else {
                t += 1;
            }
        }
        self
    }

    /// The same program with every panicking handler ignoring its events
    /// instead (for a harness that cannot survive a caught panic, such as
    /// libfuzzer, which aborts on any).
    pub fn without_handler_panics(mut self) -> Program {
        for ops in &mut self.tasks {
            for op in ops {
                if *op
                    == (Op::Stream {
                        handler: HandlerKind::Panic,
                    })
                {
                    *op = Op::Stream {
                        handler: HandlerKind::Ignore,
                    };
                }
            }
        }
        self
    }

    /// One line per task, for reports.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        if self.manager {
            out.push_str("  (main starts a StreamManager first)\n");
        }
        for (t, ops) in self.tasks.iter().enumerate() {
            if t > 0 && ops.is_empty() {
                continue; // a thread that does nothing
            }
            let ops: Vec<String> = ops.iter().map(|op| op.label()).collect();
            let ops = if ops.is_empty() {
                "(no operations: only the epilogue)".to_owned()
            } else {
                ops.join(", ")
            };
            out.push_str(&format!("  {}: {ops}\n", task_name(t)));
        }
        out
    }
}

/// The name of task `t` in traces and reports.
pub fn task_name(t: usize) -> String {
    if t == 0 {
        "main".to_owned()
    } else {
        format!("t{t}")
    }
}

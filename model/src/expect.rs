//! The reference model: for each operation of a program, the set of
//! outcomes it may have. Concurrency makes it a set (input racing a close
//! may be `Ok` or `StreamClosed`); what happens-before the operation in its
//! own task narrows it (after a `Client::close()` returned, a dial must
//! fail `ClientClosed` and input must be refused), and so does what the
//! whole program can do (with nothing in it that can end a stream, input
//! from main to its own stream must be `Ok`). Every program ends with
//! main's epilogue (`Client::close()` and the timers), which races the
//! other tasks' operations but follows main's own.

use crate::exec::Outcome;
use crate::{FaultKind, HandlerKind, Op, Program};

/// The outcomes `program`'s op `index` of task `task` may have, given the
/// outcomes of the task's earlier ops (`earlier`, in order).
pub fn allowed(program: &Program, task: usize, index: usize, earlier: &[Outcome]) -> Vec<Outcome> {
    use Outcome::*;
    let op = program.tasks[task][index];
    let before = &program.tasks[task][..index];
    // A Client::close() of this task returned before this op ran.
    let closed_before = before.contains(&Op::ClientClose);
    let has_fault = |f: FaultKind| program.ops().any(|(_, _, op)| op == Op::Fault { fault: f });
    match op {
        Op::Stream { .. } | Op::StreamCancellable => {
            if closed_before {
                return vec![ClientClosed];
            }
            if lone_dial(program) {
                // Main's ops all run before the epilogue's close; another
                // task's may race it.
                return if task == 0 {
                    vec![Ok]
                } else {
                    vec![Ok, ClientClosed, ClosedDuringDial]
                };
            }
            let mut set = vec![Ok, AlreadyConnected, ClientClosed, ClosedDuringDial];
            if has_fault(FaultKind::DialError) {
                set.push(ConnectionRefused);
            }
            if has_fault(FaultKind::DialHang) {
                set.push(HandshakeTimeout);
            }
            if op == Op::StreamCancellable {
                set.push(Cancelled);
            }
            set
        }
        Op::Input | Op::Ping => {
            if closed_before {
                return vec![StreamClosed, NoStream];
            }
            let own_stream = before
                .iter()
                .zip(earlier)
                .any(|(op, outcome)| op.dials() && *outcome == Ok);
            if task == 0 && quiet(program) && own_stream {
                // The task's own stream is connected and nothing can end it
                // or replace it as the newest (main runs before the
                // epilogue's close).
                return vec![Ok];
            }
            vec![Ok, StreamClosed, NoStream]
        }
        Op::CloseCancellable => vec![Done, Cancelled],
        Op::StreamClose { .. }
        | Op::CloseWorkspaceStream
        | Op::ClientClose
        | Op::ServerSend
        | Op::ServerClose
        | Op::ServerDisconnect
        | Op::ManagerStop
        | Op::ManagerWait
        | Op::Fault { .. } => vec![Done],
    }
}

/// The program's only dial, with nothing that can refuse it: no close of
/// any kind, no manager, no dial fault.
fn lone_dial(program: &Program) -> bool {
    !program.manager
        && program.ops().filter(|(_, _, op)| op.dials()).count() == 1
        && !program.ops().any(|(_, _, op)| {
            matches!(
                op,
                Op::ClientClose
                    | Op::CloseCancellable
                    | Op::Stream {
                        handler: HandlerKind::CloseClient
                    }
                    | Op::Fault {
                        fault: FaultKind::DialError | FaultKind::DialHang | FaultKind::Cancel
                    }
            )
        })
}

/// Nothing in the program can end a stream (only dials, input, pings and
/// server sends), and at most one dial can succeed at a time anyway.
fn quiet(program: &Program) -> bool {
    !program.manager
        && program.ops().all(|(_, _, op)| {
            matches!(
                op,
                Op::Stream {
                    handler: HandlerKind::Ignore
                } | Op::Input
                    | Op::Ping
                    | Op::ServerSend
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dial_after_close_is_refused() {
        let p = Program {
            manager: false,
            tasks: vec![vec![
                Op::ClientClose,
                Op::Stream {
                    handler: HandlerKind::Ignore,
                },
            ]],
        };
        assert_eq!(
            allowed(&p, 0, 1, &[Outcome::Done]),
            vec![Outcome::ClientClosed]
        );
    }

    #[test]
    fn input_racing_close_may_go_either_way() {
        let p = Program {
            manager: false,
            tasks: vec![
                vec![Op::Stream {
                    handler: HandlerKind::Ignore,
                }],
                vec![Op::ClientClose],
                vec![Op::Input],
            ],
        };
        let set = allowed(&p, 2, 0, &[]);
        assert!(set.contains(&Outcome::Ok) && set.contains(&Outcome::StreamClosed));
    }
}

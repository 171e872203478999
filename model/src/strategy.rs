//! A proptest strategy over programs (feature `proptest`): structural, so a
//! failing program shrinks (fewer tasks, fewer operations, simpler ones).

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

use crate::{FaultKind, HandlerKind, Op, Program};

fn handler() -> impl Strategy<Value = HandlerKind> {
    prop_oneof![
        4 => Just(HandlerKind::Ignore),
        1 => Just(HandlerKind::CloseClient),
        1 => Just(HandlerKind::Panic),
    ]
}

/// One operation (manager ops only when `manager`).
pub fn op(manager: bool) -> BoxedStrategy<Op> {
    let base = prop_oneof![
        4 => handler().prop_map(|handler| Op::Stream { handler }),
        1 => Just(Op::StreamCancellable),
        3 => Just(Op::Input),
        1 => Just(Op::Ping),
        2 => any::<bool>().prop_map(|wait| Op::StreamClose { wait }),
        1 => Just(Op::CloseWorkspaceStream),
        2 => Just(Op::ClientClose),
        1 => Just(Op::CloseCancellable),
        1 => Just(Op::ServerSend),
        1 => Just(Op::ServerClose),
        1 => Just(Op::ServerDisconnect),
        2 => select(FaultKind::ALL.to_vec()).prop_map(|fault| Op::Fault { fault }),
    ];
    if manager {
        prop_oneof![
            10 => base,
            1 => Just(Op::ManagerStop),
            1 => Just(Op::ManagerWait),
        ]
        .boxed()
    } else {
        base.boxed()
    }
}

/// Programs of 1-3 tasks of 1-5 operations each.
pub fn program() -> impl Strategy<Value = Program> {
    prop_oneof![4 => Just(false), 1 => Just(true)].prop_flat_map(|manager| {
        vec(vec(op(manager), 1..=5), 1..=3).prop_map(move |tasks| {
            let mut program = Program { manager, tasks };
            program.normalize();
            program
        })
    })
}

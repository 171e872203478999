//! The program generator, deterministic: program `i` of a budget comes
//! from a fixed seed, so the same flags give the same programs on every
//! machine and shard; the fuzz target drives the same generator from its
//! bytes.
//!
//! Half of the programs start from a *dangerous shape* (the races the
//! client's concurrency core exists to survive: close racing
//! `stream_workspace`, close from a handler, a server disconnect racing a
//! new stream, the manager's reconnect racing stop, input racing close,
//! two dials, a dial in flight across close, a cancelled close); random
//! operations are then sprinkled over every task.

use crate::{FaultKind, HandlerKind, Op, Program};

/// Where the generator's choices come from.
pub trait Source {
    /// A number in `0..n` (`n >= 1`).
    fn below(&mut self, n: usize) -> usize;

    /// `true` with probability `num/den`.
    fn ratio(&mut self, num: usize, den: usize) -> bool {
        self.below(den) < num
    }
}

/// splitmix64: a small, fixed PRNG (the program of a seed must never change
/// with a dependency's version).
#[derive(Debug, Clone)]
pub struct Seeded(u64);

impl Seeded {
    /// The generator of `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl Source for Seeded {
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Choices read from fuzz bytes (zeros once they run out).
#[derive(Debug)]
pub struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    /// A source over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self(data)
    }
}

impl Source for Bytes<'_> {
    fn below(&mut self, n: usize) -> usize {
        let Some((&byte, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        byte as usize % n.max(1)
    }
}

/// Which checker the programs are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// No limit but the program's size (shuttle, tokio).
    Any,
    /// loom's five threads ([`Program::fits_loom`]).
    Loom,
}

/// The seed of program `index` of a budget (a fixed mix, so programs 0..N
/// are the same everywhere).
pub fn program_seed(index: u64) -> u64 {
    index
        .wrapping_mul(0xA076_1D64_78BD_642F)
        .wrapping_add(0x5EED)
}

impl Program {
    /// Program `index` of a budget.
    pub fn generate(index: u64, fit: Fit) -> Program {
        let mut source = Seeded::new(program_seed(index));
        // A loom program that does not fit is drawn again (bounded: the
        // shapes alone all fit, so some draw soon does).
        for _ in 0..64 {
            let program = generate(&mut source, fit);
            if fit == Fit::Any || program.fits_loom() {
                return program;
            }
        }
        Program {
            manager: false,
            tasks: vec![
                vec![Op::ClientClose],
                vec![Op::Stream {
                    handler: HandlerKind::Ignore,
                }],
            ],
        }
    }

    /// The program the fuzz bytes `data` choose.
    pub fn from_bytes(data: &[u8]) -> Program {
        generate(&mut Bytes::new(data), Fit::Any)
    }
}

/// The dangerous shapes (see the module docs): the tasks a program starts
/// from, and whether it has a manager.
const SHAPES: usize = 10;

fn shape(source: &mut impl Source, fit: Fit) -> (bool, Vec<Vec<Op>>) {
    use Op::*;
    let ignore = Stream {
        handler: HandlerKind::Ignore,
    };
    let fault = |fault| Fault { fault };
    let pick = source.below(if fit == Fit::Loom { 8 } else { SHAPES });
    match pick {
        // close racing stream_workspace (the seed).
        0 => (false, vec![vec![ClientClose], vec![ignore]]),
        // two dials at once, then close.
        1 => (false, vec![vec![ignore, ClientClose], vec![ignore]]),
        // input racing close.
        2 => (false, vec![vec![ignore, ClientClose], vec![Input, Ping]]),
        // close from a handler, and from main.
        3 => (
            false,
            vec![vec![
                Stream {
                    handler: HandlerKind::CloseClient,
                },
                ClientClose,
            ]],
        ),
        // server disconnect racing a new stream.
        4 => (
            false,
            vec![vec![ignore, ServerDisconnect, CloseWorkspaceStream, ignore]],
        ),
        // a stream closed from both sides at once.
        5 => (
            false,
            vec![
                vec![ignore, StreamClose { wait: false }, ClientClose],
                vec![ClientClose],
            ],
        ),
        // a dial in flight (hung) across close.
        6 => (
            false,
            vec![vec![fault(FaultKind::DialHang), ClientClose], vec![ignore]],
        ),
        // a handler panics while input is sent.
        7 => (
            false,
            vec![vec![
                Stream {
                    handler: HandlerKind::Panic,
                },
                Input,
                ignore,
            ]],
        ),
        // the manager's reconnect racing stop.
        8 => (true, vec![vec![ServerDisconnect, ManagerStop, ManagerWait]]),
        // a cancelled close, then close.
        _ => (
            false,
            vec![
                vec![ignore, CloseCancellable, ClientClose],
                vec![fault(FaultKind::Cancel)],
            ],
        ),
    }
}

fn random_op(source: &mut impl Source, manager: bool, fit: Fit) -> Op {
    use Op::*;
    loop {
        let op = match source.below(24) {
            0..=3 => Stream {
                handler: match source.below(6) {
                    0 => HandlerKind::CloseClient,
                    1 => HandlerKind::Panic,
                    _ => HandlerKind::Ignore,
                },
            },
            4 => StreamCancellable,
            5..=7 => Input,
            8 => Ping,
            9 | 10 => StreamClose {
                wait: source.ratio(1, 2),
            },
            11 => CloseWorkspaceStream,
            12 | 13 => ClientClose,
            14 => CloseCancellable,
            15 => ServerSend,
            16 => ServerClose,
            17 => ServerDisconnect,
            18 if manager => ManagerStop,
            19 if manager => ManagerWait,
            18..=23 => Fault {
                fault: FaultKind::ALL[source.below(FaultKind::ALL.len())],
            },
            _ => continue,
        };
        // loom: every dial costs two threads; keep them for the shapes.
        if fit == Fit::Loom && op.dials() && source.ratio(3, 4) {
            continue;
        }
        return op;
    }
}

/// One program from `source`.
pub fn generate(source: &mut impl Source, fit: Fit) -> Program {
    // loom explores few programs: mostly shapes, little else.
    let shaped = match fit {
        Fit::Loom => source.ratio(3, 4),
        Fit::Any => source.ratio(1, 2),
    };
    let (manager, mut tasks) = if shaped {
        shape(source, fit)
    } else {
        let manager = fit == Fit::Any && source.ratio(1, 6);
        (manager, vec![Vec::new()])
    };
    // loom: one or two tasks (a shape with two streams, such as a
    // disconnect racing a new stream, fits only alone); otherwise two or three.
    let want = match fit {
        Fit::Loom => 1 + source.below(2),
        Fit::Any => 2 + source.below(2),
    };
    while tasks.len() < want {
        tasks.push(Vec::new());
    }
    // Sprinkle: 1-6 random ops over the tasks (loom: 0-2); an empty task
    // gets one.
    let extra = match fit {
        Fit::Loom => source.below(3),
        Fit::Any => 1 + source.below(6),
    };
    for _ in 0..extra {
        let t = source.below(tasks.len());
        let at = source.below(tasks[t].len() + 1);
        let op = random_op(source, manager, fit);
        tasks[t].insert(at, op);
    }
    for task in &mut tasks {
        if task.is_empty() {
            task.push(random_op(source, manager, fit));
        }
    }
    let mut program = Program { manager, tasks };
    program.normalize();
    program
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_index_gives_the_same_program() {
        for i in 0..50 {
            assert_eq!(
                Program::generate(i, Fit::Any),
                Program::generate(i, Fit::Any)
            );
            let p = Program::generate(i, Fit::Any);
            assert!(p.valid(), "{p:?}");
            assert_eq!(Program::from_json(&p.to_json()).unwrap(), p);
        }
    }

    #[test]
    fn loom_programs_fit() {
        for i in 0..200 {
            let p = Program::generate(i, Fit::Loom);
            assert!(p.fits_loom(), "program {i}: {p:?}");
        }
    }

    #[test]
    fn fuzz_bytes_give_valid_programs() {
        for data in [&[][..], &[1, 2, 3], &[255; 64]] {
            assert!(Program::from_bytes(data).valid());
        }
    }

    #[test]
    fn shrinking_drops_tasks_left_empty() {
        use Op::*;
        let ignore = Stream {
            handler: HandlerKind::Ignore,
        };
        let p = Program {
            manager: false,
            tasks: vec![vec![ClientClose], vec![ignore], vec![Input, Ping]],
        };
        let candidates = p.shrink_candidates();
        for c in &candidates {
            assert!(
                c.tasks[1..].iter().all(|ops| !ops.is_empty()),
                "a candidate keeps an empty task: {c:?}"
            );
        }
        // Deleting t1's only op deletes t1 (once, not also as an empty t1).
        let without_t1 = Program {
            manager: false,
            tasks: vec![vec![ClientClose], vec![Input, Ping]],
        };
        assert_eq!(candidates.iter().filter(|c| **c == without_t1).count(), 1);
        // Main stays, even empty, and an empty task is not printed.
        let main_only = Program {
            manager: true,
            tasks: vec![vec![], vec![]],
        }
        .without_empty_tasks();
        assert_eq!(main_only.tasks, vec![Vec::<Op>::new()]);
        let text = Program {
            manager: false,
            tasks: vec![vec![], vec![], vec![ignore]],
        }
        .describe();
        assert!(!text.contains("t1"), "{text}");
        assert!(text.contains("main: (no operations"), "{text}");
    }

    #[test]
    fn shrink_candidates_are_smaller_and_valid() {
        let p = Program::generate(3, Fit::Any);
        for c in p.shrink_candidates() {
            assert!(c.valid());
            assert!(c.len() < p.len() || c.tasks.len() < p.tasks.len() || !c.manager);
        }
    }
}

#[cfg(test)]
mod census {
    use super::*;

    #[test]
    #[ignore]
    fn print_loom_programs() {
        for i in 0..40 {
            let p = Program::generate(i, Fit::Loom);
            println!("{i}: {}", p.describe().replace('\n', " | "));
        }
    }
}

//! The operation model: bytes become a sequence of client and server
//! operations (`wsdrain_fuzz::ops::Op`), run against the real client over
//! the in-memory transport on a paused current-thread tokio runtime, each
//! outcome checked against the reference model and the invariants checked
//! after every step (the same model and harness as `tests/proptest_ops.rs`).
//!
//! Every input is bounded: at most `MAX_OPS` operations, every await under a
//! timeout (on the paused clock a deadlock times out at once).
//!
//! The same bytes also run as a generated concurrent program
//! (`wsdrain_model::Program::from_bytes`, the programs `cargo xtask verify`
//! explores under shuttle and loom); a failure there prints the program
//! file and the command that explores it under shuttle.
//!
//! `cargo +nightly fuzz fmt op_model <artifact>` prints what the input's
//! bytes decode to: the generated program (its operation list and its JSON
//! file) and the operation sequence ([`Case`]'s `Debug`).

#![no_main]

use arbitrary::{Arbitrary, Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use std::sync::{Mutex, Once};
use wsdrain::ClientConfig;
use wsdrain_fuzz::ops::{
    Down, Harness, Input, MAX_CLIENTS, Model, Op, Race, STEP, message, text_frame,
};

use wsdrain_model::Program;
use wsdrain_model::exec::run_paused;

/// At most this many operations per input.
const MAX_OPS: usize = 40;

/// The fuzz input: its bytes choose both the generated program and the
/// operation sequence. Its `Debug` (what `cargo fuzz fmt` prints) decodes
/// them into both, instead of listing the bytes.
struct Case(Vec<u8>);

impl<'a> Arbitrary<'a> for Case {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(Case(u.bytes(u.len())?.to_vec()))
    }

    fn arbitrary_take_rest(u: Unstructured<'a>) -> Result<Self> {
        Ok(Case(u.take_rest().to_vec()))
    }
}

impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let program = Program::from_bytes(&self.0).without_handler_panics();
        writeln!(
            f,
            "{} byte(s)\n\ngenerated program ({} ops; panicking handlers ignore their events \
             here):\n{}\nits program file (for wsdrain-cell generated --program-file):\n{}\n",
            self.0.len(),
            program.len(),
            program.describe(),
            serde_json::to_string(&program).map_err(|_| std::fmt::Error)?
        )?;
        match Ops::arbitrary_take_rest(Unstructured::new(&self.0)) {
            Ok(Ops(ops)) => {
                writeln!(f, "operation sequence ({} ops):", ops.len())?;
                for (i, op) in ops.iter().enumerate() {
                    writeln!(f, "  {i:>2}: {op:?}")?;
                }
                Ok(())
            }
            Err(e) => writeln!(f, "operation sequence: none ({e})"),
        }
    }
}

/// A sequence of operations, each valid in the model state it runs in.
#[derive(Debug)]
struct Ops(Vec<Op>);

impl<'a> Arbitrary<'a> for Ops {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let mut model = Model::new();
        let mut ops = Vec::new();
        while ops.len() < MAX_OPS && !u.is_empty() {
            // Out of data half-way through an op: keep what we have.
            let Ok(op) = op(u, &model) else { break };
            model.step(&op);
            ops.push(op);
        }
        Ok(Ops(ops))
    }
}

fn text(u: &mut Unstructured) -> Result<String> {
    let len = u.int_in_range(0..=24)?;
    Ok(String::from_utf8_lossy(u.bytes(len.min(u.len()))?).into_owned())
}

fn number(u: &mut Unstructured) -> Result<i64> {
    Ok(if u.ratio(3, 4)? {
        u.int_in_range(-3..=300)?
    } else {
        u.arbitrary()?
    })
}

fn down(u: &mut Unstructured) -> Result<Down> {
    Ok(match u.int_in_range(0..=8)? {
        0..=3 => Down::Message(message(u.arbitrary()?, &text(u)?, number(u)?)),
        4..=7 => Down::Text(text_frame(u.arbitrary()?, &text(u)?, number(u)?)),
        _ => Down::Binary(u.int_in_range(0..=100_000)?),
    })
}

fn input(u: &mut Unstructured) -> Result<Input> {
    Ok(match u.int_in_range(0..=4)? {
        0..=2 => Input::Shell(text(u)?),
        3 => Input::Resize {
            cols: u.arbitrary()?,
            rows: u.arbitrary()?,
        },
        _ => Input::Ping,
    })
}

/// One operation valid in `model` (the weights follow the proptest's).
fn op(u: &mut Unstructured, model: &Model) -> Result<Op> {
    let clients = model.clients.len();
    let mut streams = Vec::new();
    for (c, m) in model.clients.iter().enumerate() {
        for s in 0..m.streams.len() {
            streams.push((c, s));
            if m.current == Some(s) {
                streams.extend([(c, s); 3]);
            }
        }
    }
    let client = |u: &mut Unstructured| u.choose_index(clients);
    let stream = |u: &mut Unstructured| -> Result<(usize, usize)> { Ok(*u.choose(&streams)?) };
    let op = match u.int_in_range(0..=43)? {
        0..=5 => Op::Stream { client: client(u)? },
        6..=7 => Op::CloseWorkspaceStream { client: client(u)? },
        8 => Op::ClientClose { client: client(u)? },
        9 => Op::Settle,
        10 => Op::Yield,
        11 if clients < MAX_CLIENTS => Op::NewClient {
            queue: u.int_in_range(1..=64)?,
            gated: u.ratio(1, 4)?,
        },
        12 => {
            let open: Vec<usize> = (0..clients)
                .filter(|&c| model.valid(&Op::HandlerClose { client: c }))
                .collect();
            if open.is_empty() {
                Op::Yield
            } else {
                Op::HandlerClose {
                    client: *u.choose(&open)?,
                }
            }
        }
        13..=15 => {
            let race = if u.arbitrary()? {
                Race::TwoDials
            } else {
                Race::CloseDuringDial
            };
            let gated: Vec<usize> = (0..clients)
                .filter(|&c| model.valid(&Op::DialRace { client: c, race }))
                .collect();
            if !gated.is_empty() {
                Op::DialRace {
                    client: *u.choose(&gated)?,
                    race,
                }
            } else if clients < MAX_CLIENTS {
                // No gated client yet: make one (a later race can use it).
                Op::NewClient {
                    queue: u.int_in_range(1..=64)?,
                    gated: true,
                }
            } else {
                Op::Yield
            }
        }
        16..=20 if !streams.is_empty() => {
            let (client, stream) = stream(u)?;
            Op::Input {
                client,
                stream,
                input: input(u)?,
            }
        }
        21..=36 if !streams.is_empty() => {
            let (client, stream) = stream(u)?;
            Op::Send {
                client,
                stream,
                frame: down(u)?,
            }
        }
        37 if !streams.is_empty() => {
            let (client, stream) = stream(u)?;
            Op::ServerClose { client, stream }
        }
        38 if !streams.is_empty() => {
            let (client, stream) = stream(u)?;
            Op::ServerDisconnect { client, stream }
        }
        39..=42 if !streams.is_empty() => {
            let (client, stream) = stream(u)?;
            Op::StreamClose {
                client,
                stream,
                wait: u.arbitrary()?,
            }
        }
        _ => Op::Stream { client: client(u)? },
    };
    // An op the model refuses (e.g. a full stream) becomes a no-op.
    Ok(if model.valid(&op) { op } else { Op::Yield })
}

/// The program being run, for the panic hook.
static CURRENT: Mutex<Option<Program>> = Mutex::new(None);

/// libfuzzer aborts the process on any panic: first save the program that
/// failed and say how to explore it under shuttle.
fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let abort = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let program = CURRENT.lock().ok().and_then(|p| p.clone());
            if let Some(program) = program {
                let file = std::env::temp_dir()
                    .join(format!("wsdrain-op-model-{}.program.json", std::process::id()));
                let _ = std::fs::write(&file, program.to_json());
                eprintln!(
                    "op_model: the generated program failed:\n{}program file: {}\n\
                     explore it under shuttle: RUSTFLAGS=\"--cfg wsdrain_shuttle --cfg wsdrain_bugs\" \
                     CARGO_TARGET_DIR=target/shuttle cargo run --release -p wsdrain-loom-tests \
                     --bin wsdrain-cell -- generated --program-file {}",
                    program.describe(),
                    file.display(),
                    file.display()
                );
            }
            abort(info);
        }));
    });
}

/// The same bytes as a generated concurrent program (`wsdrain-model`, the
/// programs `cargo xtask verify` explores under shuttle and loom), run on
/// the paused runtime: one schedule here, every schedule there. A handler
/// panic (an injected fault the client catches) would abort libfuzzer, so
/// those handlers ignore their events here; the checkers explore them.
fn run_program(data: &[u8]) {
    install_hook();
    let program = Program::from_bytes(data).without_handler_panics();
    *CURRENT.lock().unwrap_or_else(|p| p.into_inner()) = Some(program.clone());
    run_paused(&program, ClientConfig::default(), STEP * 20).expect("the generated program hung");
    *CURRENT.lock().unwrap_or_else(|p| p.into_inner()) = None;
}

fuzz_target!(|case: Case| {
    let data = &case.0;
    run_program(data);
    let Ok(ops) = Ops::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut harness = Harness::new(ClientConfig::default());
        harness.check();
        for op in &ops.0 {
            harness.apply(op).await;
            harness.check();
        }
        harness.finish().await;
        harness.check();
    });
});

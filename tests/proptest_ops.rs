//! Model-based property tests of the client (proptest-state-machine).
//!
//! Random sequences of operations run against the real [`wsdrain::Client`]
//! over the in-memory transport, and a reference model predicts each
//! outcome: `stream_workspace` fails with `AlreadyConnected` while a stream
//! is connected and with `ClientClosed` after `close`; input fails with
//! `StreamClosed` once a stream is closed and otherwise reaches the server
//! in order; every frame the server sends to an open stream reaches the
//! handler, in order; after `Client::close` no task is alive and no
//! connection is open; and so on. The invariants are checked after every
//! operation; every await is bounded, so a hang is a failure.
//!
//! The operations, the model and the harness live in
//! `fuzz/src/ops.rs`, shared with the `op_model` fuzz target
//! (see `docs/fuzzing.md`).
//!
//! The sequences run on a paused current-thread runtime (deterministic; a
//! deadlock is reported at once) and on a 2-worker multi-thread runtime
//! (real parallelism between the client's tasks and the test). 64 cases of
//! up to 30 operations each by default; for a longer run:
//!
//! ```text
//! PROPTEST_CASES=5000 cargo test --release --test proptest_ops
//! ```
//!
//! With `RUSTFLAGS="--cfg wsdrain_bugs"` (as `cargo xtask test` builds it,
//! in `target/bugs`), the `catalog` tests switch historical bugs back on,
//! one at a time, and check that this test finds each of them.

#[allow(dead_code)]
#[path = "../fuzz/src/ops.rs"]
mod ops;

use std::cell::Cell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use ops::{Down, Harness, Input, MAX_CLIENTS, Model, Op, Phase, Race, message, text_frame};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::Union;
use proptest::test_runner::{Config, FileFailurePersistence};
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};
use tokio::runtime::{Builder, Runtime};
use wsdrain::ClientConfig;

// ---------------------------------------------------------------------------
// The reference state machine
// ---------------------------------------------------------------------------

struct Reference;

fn text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => "[a-z0-9 {}:,\"\\\\\\[\\]\u{e9}\u{4e2d}\u{1F600}\n\t]{0,16}",
        1 => any::<String>(),
    ]
    .boxed()
}

fn number() -> BoxedStrategy<i64> {
    prop_oneof![3 => -3i64..300, 1 => any::<i64>()].boxed()
}

fn down() -> BoxedStrategy<Down> {
    prop_oneof![
        4 => (any::<u8>(), text(), number()).prop_map(|(k, s, n)| Down::Message(message(k, &s, n))),
        4 => (any::<u8>(), text(), number()).prop_map(|(k, s, n)| Down::Text(text_frame(k, &s, n))),
        1 => (0usize..100_000).prop_map(Down::Binary),
    ]
    .boxed()
}

fn input() -> BoxedStrategy<Input> {
    prop_oneof![
        3 => text().prop_map(Input::Shell),
        1 => (any::<u16>(), any::<u16>()).prop_map(|(cols, rows)| Input::Resize { cols, rows }),
        1 => Just(Input::Ping),
    ]
    .boxed()
}

impl ReferenceStateMachine for Reference {
    type State = Model;
    type Transition = Op;

    fn init_state() -> BoxedStrategy<Model> {
        Just(Model::new()).boxed()
    }

    fn transitions(state: &Model) -> BoxedStrategy<Op> {
        let clients: Vec<usize> = (0..state.clients.len()).collect();
        // Every (client, stream), with the current streams three more times:
        // most operations should hit a live stream.
        let mut streams = Vec::new();
        for (c, m) in state.clients.iter().enumerate() {
            for s in 0..m.streams.len() {
                streams.push((c, s));
                if m.current == Some(s) {
                    streams.extend([(c, s); 3]);
                }
            }
        }
        let with_open: Vec<usize> = clients
            .iter()
            .copied()
            .filter(|&c| {
                let m = &state.clients[c];
                m.current.is_some_and(|s| m.streams[s].phase == Phase::Open)
            })
            .collect();
        let gated: Vec<usize> = clients
            .iter()
            .copied()
            .filter(|&c| {
                state.valid(&Op::DialRace {
                    client: c,
                    race: Race::TwoDials,
                })
            })
            .collect();

        let client = select(clients);
        let mut ops: Vec<(u32, BoxedStrategy<Op>)> = vec![
            (
                6,
                client
                    .clone()
                    .prop_map(|client| Op::Stream { client })
                    .boxed(),
            ),
            (
                2,
                client
                    .clone()
                    .prop_map(|client| Op::CloseWorkspaceStream { client })
                    .boxed(),
            ),
            (
                1,
                client
                    .clone()
                    .prop_map(|client| Op::ClientClose { client })
                    .boxed(),
            ),
            (1, Just(Op::Settle).boxed()),
            (1, Just(Op::Yield).boxed()),
        ];
        if state.clients.len() < MAX_CLIENTS {
            let queue = prop_oneof![Just(1usize), Just(2), Just(64), 1usize..64];
            let gated = prop_oneof![3 => Just(false), 1 => Just(true)];
            ops.push((
                1,
                (queue, gated)
                    .prop_map(|(queue, gated)| Op::NewClient { queue, gated })
                    .boxed(),
            ));
        }
        if !with_open.is_empty() {
            ops.push((
                1,
                select(with_open)
                    .prop_map(|client| Op::HandlerClose { client })
                    .boxed(),
            ));
        }
        if !gated.is_empty() {
            let race = prop_oneof![Just(Race::CloseDuringDial), Just(Race::TwoDials)];
            ops.push((
                3,
                (select(gated), race)
                    .prop_map(|(client, race)| Op::DialRace { client, race })
                    .boxed(),
            ));
        }
        if !streams.is_empty() {
            let stream = select(streams);
            ops.extend([
                (
                    5,
                    (stream.clone(), input())
                        .prop_map(|((client, stream), input)| Op::Input {
                            client,
                            stream,
                            input,
                        })
                        .boxed(),
                ),
                (
                    8,
                    (stream.clone(), down())
                        .prop_map(|((client, stream), frame)| Op::Send {
                            client,
                            stream,
                            frame,
                        })
                        .boxed(),
                ),
                (
                    1,
                    stream
                        .clone()
                        .prop_map(|(client, stream)| Op::ServerClose { client, stream })
                        .boxed(),
                ),
                (
                    1,
                    stream
                        .clone()
                        .prop_map(|(client, stream)| Op::ServerDisconnect { client, stream })
                        .boxed(),
                ),
                (
                    2,
                    (stream, any::<bool>())
                        .prop_map(|((client, stream), wait)| Op::StreamClose {
                            client,
                            stream,
                            wait,
                        })
                        .boxed(),
                ),
            ]);
        }
        Union::new_weighted(ops).boxed()
    }

    fn preconditions(state: &Model, op: &Op) -> bool {
        state.valid(op)
    }

    fn apply(mut state: Model, op: &Op) -> Model {
        state.step(op);
        state
    }
}

// ---------------------------------------------------------------------------
// The system under test
// ---------------------------------------------------------------------------

/// Panics seen anywhere in this test binary, with the name of the thread
/// they happened on. A panic in a client task (an oracle of the probe, a
/// `WaitGroup` misuse...) is caught by tokio and would go unnoticed.
static PANICS: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

thread_local! {
    /// Silence the default panic output on this thread (the catalog tests
    /// expect many panics).
    static QUIET: Cell<bool> = const { Cell::new(false) };
    /// Switched-on bugs for the clients created on this thread.
    #[cfg(wsdrain_bugs)]
    static BUGS: Cell<wsdrain::Bugs> = const { Cell::new(wsdrain::Bugs::NONE) };
}

fn install_panic_recorder() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current().name().unwrap_or("?").to_owned();
            PANICS
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((thread, info.to_string()));
            if !QUIET.with(Cell::get) {
                previous(info);
            }
        }));
    });
}

fn panics_since(start: usize, threads: &str) -> Vec<String> {
    let panics = PANICS.lock().unwrap_or_else(|p| p.into_inner());
    panics
        .iter()
        .skip(start)
        .filter(|(thread, _)| thread == threads || thread.starts_with(&format!("{threads}-")))
        .map(|(_, message)| message.clone())
        .collect()
}

fn base_config() -> ClientConfig {
    #[cfg(wsdrain_bugs)]
    {
        ClientConfig::default().with_bugs(BUGS.with(Cell::get))
    }
    #[cfg(not(wsdrain_bugs))]
    ClientConfig::default()
}

struct Sut {
    rt: Runtime,
    harness: Harness,
    /// Where this case's panics start in `PANICS`, and the threads its tasks run on.
    panics_from: usize,
    threads: String,
}

impl Sut {
    fn new(multi_thread: bool) -> Self {
        install_panic_recorder();
        static RUNTIMES: AtomicUsize = AtomicUsize::new(0);
        let (rt, threads) = if multi_thread {
            let name = format!("ops-rt{}", RUNTIMES.fetch_add(1, Ordering::Relaxed));
            let rt = Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name(format!("{name}-worker"))
                .enable_time()
                .build()
                .expect("runtime");
            (rt, name)
        } else {
            let rt = Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .expect("runtime");
            let name = std::thread::current().name().unwrap_or("?").to_owned();
            (rt, name)
        };
        let harness = rt.block_on(async { Harness::new(base_config()) });
        let panics_from = PANICS.lock().unwrap_or_else(|p| p.into_inner()).len();
        Self {
            rt,
            harness,
            panics_from,
            threads,
        }
    }

    fn check(&self) {
        self.harness.check();
        let panics = panics_since(self.panics_from, &self.threads);
        assert!(
            panics.is_empty(),
            "a task of the client panicked: {panics:#?}"
        );
    }
}

struct OpsTest<const MULTI_THREAD: bool>;

impl<const MULTI_THREAD: bool> StateMachineTest for OpsTest<MULTI_THREAD> {
    type SystemUnderTest = Sut;
    type Reference = Reference;

    fn init_test(_: &Model) -> Sut {
        Sut::new(MULTI_THREAD)
    }

    fn apply(mut sut: Sut, ref_state: &Model, op: Op) -> Sut {
        sut.rt.block_on(sut.harness.apply(&op));
        assert_eq!(
            &sut.harness.model, ref_state,
            "the harness's model diverged"
        );
        sut
    }

    fn check_invariants(sut: &Sut, _: &Model) {
        sut.check();
    }

    fn teardown(mut sut: Sut, _: Model) {
        sut.rt.block_on(sut.harness.finish());
        sut.check();
    }
}

fn config() -> Config {
    // Config::default() reads the PROPTEST_* environment variables
    // (PROPTEST_CASES, PROPTEST_MAX_SHRINK_ITERS, ...).
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 64;
    }
    // Failing seeds go to tests/proptest_ops.proptest-regressions and are
    // replayed first on later runs.
    config.failure_persistence = Some(Box::new(FileFailurePersistence::WithSource(
        "proptest-regressions",
    )));
    config
}

prop_state_machine! {
    #![proptest_config(config())]

    /// Paused current-thread runtime: deterministic, hangs reported at once.
    #[test]
    fn ops_current_thread(sequential 1..30 => OpsTest<false>);

    /// Two worker threads: the client's tasks run in parallel with the test.
    #[test]
    fn ops_multi_thread(sequential 1..30 => OpsTest<true>);
}

// ---------------------------------------------------------------------------
// Fixed sequences: each op kind at least once, whatever the random cases do
// ---------------------------------------------------------------------------

fn run(multi_thread: bool, ops: &[Op]) {
    let mut sut = Sut::new(multi_thread);
    sut.check();
    for op in ops {
        sut.rt.block_on(sut.harness.apply(op));
        sut.check();
    }
    sut.rt.block_on(sut.harness.finish());
    sut.check();
}

fn tour() -> Vec<Op> {
    let (client, stream) = (0, 0);
    vec![
        Op::Stream { client },
        Op::Stream { client },
        Op::Input {
            client,
            stream,
            input: Input::Shell("ls\n".into()),
        },
        Op::Input {
            client,
            stream,
            input: Input::Resize { cols: 80, rows: 24 },
        },
        Op::Input {
            client,
            stream,
            input: Input::Ping,
        },
        Op::Send {
            client,
            stream,
            frame: Down::Message(message(0, "out", 0)),
        },
        Op::Send {
            client,
            stream,
            frame: Down::Text("{not json".into()),
        },
        Op::Send {
            client,
            stream,
            frame: Down::Text(text_frame(2, "hologram", 1)),
        },
        Op::Send {
            client,
            stream,
            frame: Down::Binary(3),
        },
        Op::StreamClose {
            client,
            stream,
            wait: false,
        },
        Op::Input {
            client,
            stream,
            input: Input::Ping,
        },
        Op::Send {
            client,
            stream,
            frame: Down::Binary(4),
        },
        Op::Stream { client },
        Op::ServerClose { client, stream: 1 },
        Op::Stream { client },
        Op::ServerDisconnect { client, stream: 2 },
        Op::Stream { client },
        Op::CloseWorkspaceStream { client },
        Op::Stream { client },
        Op::Yield,
        Op::Settle,
        Op::NewClient {
            queue: 1,
            gated: true,
        },
        Op::DialRace {
            client: 1,
            race: Race::TwoDials,
        },
        Op::HandlerClose { client: 1 },
        Op::Stream { client: 1 },
        Op::NewClient {
            queue: 2,
            gated: true,
        },
        Op::DialRace {
            client: 2,
            race: Race::CloseDuringDial,
        },
        Op::ClientClose { client },
        Op::Stream { client },
        Op::CloseWorkspaceStream { client },
    ]
}

#[test]
fn tour_of_every_operation() {
    let model_check = {
        let mut model = Model::new();
        tour().iter().map(|op| model.step(op)).collect::<Vec<_>>()
    };
    assert!(
        !model_check.contains(&ops::Expect::Skip),
        "every step of the tour is valid: {model_check:#?}"
    );
    run(false, &tour());
    run(true, &tour());
}

/// Regression (found by `ops_multi_thread`): a stream task counted itself
/// out of the client's wait group before its stream's, so `Client::close()`
/// could return while `WorkspaceStream::wait()` of one of its streams was
/// still pending (about one close in four on two worker threads), although
/// both promise that the stream's tasks have exited.
#[test]
fn stream_wait_is_ready_when_close_returns() {
    for _ in 0..200 {
        run(
            true,
            &[
                Op::Stream { client: 0 },
                Op::Input {
                    client: 0,
                    stream: 0,
                    input: Input::Ping,
                },
                Op::ClientClose { client: 0 },
            ],
        );
    }
}

/// The handler's `Client::close` (close from the reader task) drains every
/// other stream, on both runtimes.
#[test]
fn close_from_the_handler_drains_the_others() {
    let ops = [
        Op::Stream { client: 0 },
        Op::CloseWorkspaceStream { client: 0 },
        Op::Stream { client: 0 },
        Op::Send {
            client: 0,
            stream: 1,
            frame: Down::Binary(1),
        },
        Op::HandlerClose { client: 0 },
        Op::Stream { client: 0 },
    ];
    for _ in 0..50 {
        run(false, &ops);
        run(true, &ops);
    }
}

/// Found by the `decode` fuzz target in seconds: without serde_json's
/// `float_roundtrip` feature a number parsed as a float could come back 1 ULP
/// off after decode -> encode -> decode, so a message whose unknown parts
/// carry one (an unknown type, a `git_commit` object, a payload's `extra`
/// fields) was not "re-encoded unchanged" as `wsdrain::protocol` promises.
/// Fixed by enabling the feature in Cargo.toml.
#[test]
fn floats_in_unknown_fields_survive_decode_encode() {
    use wsdrain::protocol::Envelope;
    for text in [
        r#"{"type":"git_commit","timestamp":1,"git_commit":{"n":128446744073709551615}}"#,
        r#"{"type":"hologram","n":128446744073709551615}"#,
    ] {
        let first = Envelope::decode(text).unwrap();
        let encoded = first.encode();
        let again = Envelope::decode(&encoded).unwrap();
        assert_eq!(again, first, "{text} -> {encoded}");
    }
}

// ---------------------------------------------------------------------------
// The generated concurrent programs (wsdrain-model), on real tokio
// ---------------------------------------------------------------------------

/// Run a generated program (the operation model `cargo xtask verify`
/// explores under shuttle and loom) on a paused current-thread runtime or
/// on two workers; a hang fails after a bounded time.
fn run_program(multi_thread: bool, program: &wsdrain_model::Program) {
    let limit = std::time::Duration::from_secs(60);
    let hung = || panic!("the program hung:\n{}", program.describe());
    if !multi_thread {
        return wsdrain_model::exec::run_paused(program, base_config(), limit)
            .unwrap_or_else(|_| hung());
    }
    let rt = Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("runtime");
    rt.block_on(async {
        tokio::time::timeout(
            limit,
            wsdrain_model::exec::run_tokio(program, base_config()),
        )
        .await
        .unwrap_or_else(|_| hung())
    });
}

proptest! {
    #![proptest_config(Config {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..Config::default()
    })]

    /// Generated programs of 1-3 concurrent tasks (the strategy shrinks a
    /// failure to fewer tasks and operations) on the paused runtime.
    #[test]
    fn generated_programs_current_thread(program in wsdrain_model::strategy::program()) {
        run_program(false, &program);
    }

    /// The same on two worker threads (real parallelism).
    #[test]
    fn generated_programs_multi_thread(program in wsdrain_model::strategy::program()) {
        run_program(true, &program);
    }
}

// ---------------------------------------------------------------------------
// The historical bugs: this test must find them
// ---------------------------------------------------------------------------

#[cfg(wsdrain_bugs)]
mod catalog {
    use super::*;
    use proptest::test_runner::{TestError, TestRunner};
    use wsdrain::{Bug, Bugs};

    /// Run the current-thread state machine with `bug` switched on until it
    /// fails; return the shrunk failing sequence and the failure.
    fn find(bug: Bug) -> (Vec<Op>, String) {
        let config = Config {
            cases: 1024,
            failure_persistence: None,
            max_shrink_iters: 4096,
            ..Config::default()
        };
        BUGS.with(|b| b.set(Bugs::only(bug)));
        QUIET.with(|q| q.set(true));
        let mut runner = TestRunner::new(config.clone());
        let result = runner.run(
            &Reference::sequential_strategy(1..30),
            |(initial, transitions, seen)| {
                OpsTest::<false>::test_sequential(config.clone(), initial, transitions, seen);
                Ok(())
            },
        );
        QUIET.with(|q| q.set(false));
        BUGS.with(|b| b.set(Bugs::NONE));
        match result {
            Err(TestError::Fail(reason, (_, transitions, _))) => (transitions, reason.to_string()),
            other => panic!("{bug} was not found: {other:?}"),
        }
    }

    fn check(bug: Bug) {
        let (sequence, reason) = find(bug);
        eprintln!("{bug}: found, minimal sequence {sequence:?}\n  {reason}");
        assert!(
            sequence.len() <= 6,
            "{bug}: shrunk to {} operations",
            sequence.len()
        );
    }

    #[test]
    fn finds_h1_close_no_drain() {
        check(Bug::CloseNoDrain);
    }

    #[test]
    fn finds_h2_dial_vs_close() {
        check(Bug::DialVsClose);
    }

    #[test]
    fn finds_h3_concurrent_dial_orphan() {
        check(Bug::ConcurrentDialOrphan);
    }

    #[test]
    fn finds_h4_cleanup_clobber() {
        check(Bug::CleanupClobber);
    }

    #[test]
    fn finds_h7_writer_not_woken() {
        check(Bug::WriterNotWoken);
    }

    #[test]
    fn finds_h8_close_from_callback() {
        check(Bug::CloseFromCallback);
    }
}

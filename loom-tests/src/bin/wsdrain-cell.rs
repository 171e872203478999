//! Run one cell of the verification matrix, or replay a counterexample,
//! under the checker this binary was built for. Prints one JSON line.
//!
//! ```text
//! RUSTFLAGS="--cfg wsdrain_loom --cfg wsdrain_bugs" cargo run --release -p wsdrain-loom-tests --bin wsdrain-cell -- \
//!     run --scenario S1 --variant H5 --bound 3
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Run one scenario x variant under the compiled-in checker (loom or shuttle)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Explore a scenario.
    Run {
        /// S1 ... S12 (or the scenario's name).
        #[arg(long)]
        scenario: String,
        /// `fixed`, or a bug of the catalog (H1 ... H8, or its name).
        #[arg(long, default_value = "fixed")]
        variant: String,
        /// loom: the preemption bound (`LOOM_MAX_PREEMPTIONS`).
        #[arg(long, default_value_t = 2)]
        bound: usize,
        /// loom: explore bounds 0, 1, ... up to --bound, stopping at the first failure.
        #[arg(long)]
        deepen: bool,
        /// loom: keep a checkpoint so a failure can be replayed (slower).
        #[arg(long)]
        checkpoint: bool,
        /// shuttle: PCT depth (0: the uniform random scheduler).
        #[arg(long, default_value_t = 3)]
        depth: usize,
        /// shuttle: executions.
        #[arg(long, default_value_t = 1000)]
        iterations: usize,
        /// shuttle: RNG seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Stop after this long (the result is then "incomplete" unless caught).
        #[arg(long, default_value_t = 600)]
        max_seconds: u64,
        /// Do not record the facade trace (faster; counterexamples lose it).
        #[arg(long)]
        no_trace: bool,
    },
    /// Explore generated programs (`wsdrain-model`): shuttle, PCT and
    /// random schedules per program, shrinking a failure; loom, the
    /// programs that fit its threads, exhaustively at --bound.
    Generated {
        /// `fixed`, or a bug of the catalog.
        #[arg(long, default_value = "fixed")]
        variant: String,
        /// The first program's index.
        #[arg(long, default_value_t = 0)]
        first: u64,
        /// Programs to explore.
        #[arg(long, default_value_t = 100)]
        programs: u64,
        /// shuttle: executions per program.
        #[arg(long, default_value_t = 100)]
        schedules: usize,
        /// shuttle: the schedulers' base seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// loom: the preemption bound.
        #[arg(long, default_value_t = 1)]
        bound: usize,
        /// Stop after this long (the result is then "incomplete" unless caught).
        #[arg(long, default_value_t = 600)]
        max_seconds: u64,
        /// Do not record the facade trace (faster; counterexamples lose it).
        #[arg(long)]
        no_trace: bool,
        /// Explore this program file (JSON, e.g. a fuzz finding) instead
        /// of the generated programs.
        #[arg(long)]
        program_file: Option<PathBuf>,
        /// Report a failure as found, without shrinking it (the candidates
        /// a loom shrink explores).
        #[arg(long)]
        no_shrink: bool,
    },
    /// Replay a generated program's counterexample: its program file and
    /// its artifact (loom replay file or shuttle schedule).
    ReplayProgram {
        /// The program file (JSON).
        #[arg(long)]
        program: PathBuf,
        /// `fixed` or H1 ... H8.
        #[arg(long, default_value = "fixed")]
        variant: String,
        /// The checkpoint or schedule file.
        artifact: PathBuf,
    },
    /// Print the bug catalog of this build as JSON: ids, names, and per
    /// scenario why a bug cannot occur there under this checker.
    Catalog,
    /// Replay a counterexample from its artifact (loom checkpoint or shuttle schedule).
    Replay {
        /// S1 ... S12.
        #[arg(long)]
        scenario: String,
        /// `fixed` or H1 ... H8.
        #[arg(long, default_value = "fixed")]
        variant: String,
        /// The checkpoint or schedule file.
        artifact: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("wsdrain-cell: {message}");
            ExitCode::from(2)
        }
    }
}

#[cfg(not(any(wsdrain_loom, wsdrain_shuttle)))]
fn run(_: Command) -> Result<(), String> {
    Err("built without a checker: set RUSTFLAGS=\"--cfg wsdrain_loom --cfg wsdrain_bugs\" or \"--cfg wsdrain_shuttle --cfg wsdrain_bugs\"".into())
}

#[cfg(any(wsdrain_loom, wsdrain_shuttle))]
fn run(command: Command) -> Result<(), String> {
    use std::time::{Duration, Instant};
    use wsdrain_loom_tests::cell::{self, Catalog, CellOutcome, CellResult, Checker, Pending};
    use wsdrain_loom_tests::harness::{self, CHECKER, Strategy};

    harness::install_panic_hook();
    match command {
        Command::Catalog => {
            let json = serde_json::to_string(&Catalog::of_this_build(CHECKER))
                .map_err(|e| e.to_string())?;
            println!("{json}");
            Ok(())
        }
        Command::Run {
            scenario,
            variant,
            bound,
            deepen,
            checkpoint,
            depth,
            iterations,
            seed,
            max_seconds,
            no_trace,
        } => {
            let scenario = cell::parse_scenario(&scenario)?;
            let bugs =
                cell::parse_variant(&variant).ok_or(format!("unknown variant {variant:?}"))?;
            wsdrain::sync::trace::set_enabled(!no_trace);
            let max_duration = Some(Duration::from_secs(max_seconds));
            let mut result = CellResult::new(
                CHECKER,
                scenario.id(),
                cell::variant_name(bugs),
                String::new(),
            );
            let started = Instant::now();
            let strategies: Vec<(Option<usize>, Strategy)> = if CHECKER == Checker::Loom {
                let bounds: Vec<usize> = if deepen {
                    (0..=bound).collect()
                } else {
                    vec![bound]
                };
                result.strategy = if deepen {
                    format!("loom bounds 0..={bound}")
                } else {
                    format!("loom bound {bound}")
                };
                bounds
                    .into_iter()
                    .map(|b| {
                        let checkpoint =
                            checkpoint.then(|| harness::loom_checkpoint(scenario, bugs));
                        (
                            Some(b),
                            Strategy::Loom {
                                preemption_bound: Some(b),
                                max_duration,
                                checkpoint,
                            },
                        )
                    })
                    .collect()
            } else if depth == 0 {
                result.seed = Some(seed);
                result.strategy = format!("random seed {seed}");
                vec![(None, Strategy::Random { iterations, seed })]
            } else {
                result.seed = Some(seed);
                result.strategy = format!("pct depth {depth} seed {seed}");
                vec![(
                    None,
                    Strategy::Pct {
                        depth,
                        iterations,
                        seed,
                    },
                )]
            };
            let mut executions = 0;
            for (bound, strategy) in strategies {
                result.bound = bound;
                cell::set_pending(Some(Pending {
                    result: result.clone(),
                    started,
                    executions_before: executions,
                }));
                let outcome = harness::explore(scenario, bugs, &strategy);
                if std::env::var_os("WSDRAIN_DUMP_TRACE").is_some() {
                    // The last execution's full trace, for sizing a scenario.
                    eprintln!("{}", wsdrain::sync::trace::render(usize::MAX));
                }
                executions += outcome.executions;
                result.executions = executions;
                result.elapsed_ms = cell::ms(started.elapsed());
                if outcome.failure.is_some() {
                    // The panic hook has written the result already.
                    return Ok(());
                }
                if outcome.incomplete {
                    result.result = CellOutcome::Incomplete;
                    break;
                }
            }
            cell::set_pending(None);
            result.coverage = wsdrain_loom_tests::windows::hits(scenario);
            cell::write_once(&result);
            Ok(())
        }
        Command::Generated {
            variant,
            first,
            programs,
            schedules,
            seed,
            bound,
            max_seconds,
            no_trace,
            program_file,
            no_shrink,
        } => {
            let bugs =
                cell::parse_variant(&variant).ok_or(format!("unknown variant {variant:?}"))?;
            wsdrain::sync::trace::set_enabled(!no_trace);
            let program = match program_file {
                Some(file) => Some(wsdrain_model::Program::from_json(
                    &std::fs::read_to_string(&file)
                        .map_err(|e| format!("read {}: {e}", file.display()))?,
                )?),
                None => None,
            };
            let budget = wsdrain_loom_tests::generated::Budget {
                first,
                programs,
                schedules,
                seed,
                bound,
                max: Duration::from_secs(max_seconds),
                program,
                shrink: !no_shrink,
            };
            let result = wsdrain_loom_tests::generated::run(bugs, budget);
            cell::write_once(&result);
            Ok(())
        }
        Command::ReplayProgram {
            program,
            variant,
            artifact,
        } => {
            let bugs =
                cell::parse_variant(&variant).ok_or(format!("unknown variant {variant:?}"))?;
            let result = wsdrain_loom_tests::generated::replay(&program, bugs, &artifact)?;
            cell::write_once(&result);
            Ok(())
        }
        Command::Replay {
            scenario,
            variant,
            artifact,
        } => {
            let scenario = cell::parse_scenario(&scenario)?;
            let bugs =
                cell::parse_variant(&variant).ok_or(format!("unknown variant {variant:?}"))?;
            let mut result = CellResult::new(
                CHECKER,
                scenario.id(),
                cell::variant_name(bugs),
                format!("replay {}", artifact.display()),
            );
            result.artifact = Some(artifact.clone());
            let started = Instant::now();
            cell::set_pending(Some(Pending {
                result: result.clone(),
                started,
                executions_before: 0,
            }));
            let outcome = harness::replay(scenario, bugs, &artifact);
            if outcome.failure.is_none() {
                cell::set_pending(None);
                result.executions = outcome.executions;
                result.elapsed_ms = cell::ms(started.elapsed());
                cell::write_once(&result);
            }
            Ok(())
        }
    }
}

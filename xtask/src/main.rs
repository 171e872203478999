//! `cargo xtask`: the project's own commands.
//!
//! - `cargo xtask verify`: build the loom and shuttle harnesses, run the
//!   verification matrix (fixed client and bugs H1-H8 x scenarios S1-S12 x
//!   checker), print the verdict table and the budgets, write them as JSON
//!   under `target/wsdrain/`. Non-zero exit if the fixed client fails
//!   anything or a bug escapes.
//! - `cargo xtask test`: every test suite, the model-checking ones included.
//! - `cargo xtask release-check`: a plain `cargo build --workspace --release`
//!   must carry no name of the bug catalog (see `release_check`).
//! - `cargo xtask mutants`: mutation run of the concurrency core, judged
//!   by the model suites' fixed-client cells (see `mutants`).
//! - `cargo xtask replay --checker loom --scenario S1 --bug H5 FILE`: replay
//!   a counterexample.

mod coverage;
mod generated;
mod html;
mod matrix;
mod mutants;
mod progress;
mod release_check;
mod report;
mod shard;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use wsdrain_loom_tests::listing::ListingStyle;

#[derive(Parser)]
#[command(about = "wsdrain's project commands")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Model-check the client under loom and shuttle and print the verdict table.
    Verify(matrix::VerifyArgs),
    /// Run every test: the workspace's (unit, real-socket, CLI, doc) and the
    /// loom and shuttle model suites.
    Test {
        /// Skip the model suites (only `cargo test --workspace`).
        #[arg(long)]
        no_models: bool,
    },
    /// Combine the JSON reports of `verify --shard I/N` runs (all N of
    /// them) into the table and verdict of one run.
    Merge {
        /// The shards' JSON reports.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Where to write the merged JSON report.
        #[arg(long, default_value = "target/wsdrain/verify.json")]
        json: PathBuf,
    },
    /// Mutation run: apply cargo-mutants' mutants of the concurrency core
    /// one by one and judge each with the fixed-client cells of the model
    /// suites; print the kill rate and the survivors.
    Mutants(mutants::MutantsArgs),
    /// Prove that a plain `cargo build --workspace --release` contains no
    /// name of the bug catalog (binaries, rlibs).
    ReleaseCheck,
    /// Replay a counterexample from its loom checkpoint or shuttle schedule.
    Replay {
        /// `loom` or `shuttle`.
        #[arg(long, value_parser = matrix::parse_checker)]
        checker: wsdrain_loom_tests::cell::Checker,
        /// S1 ... S12 (or `--program`).
        #[arg(long, required_unless_present = "program")]
        scenario: Option<String>,
        /// A generated program's file (its counterexample's replay command
        /// names it), instead of a scenario.
        #[arg(long, conflicts_with = "scenario")]
        program: Option<PathBuf>,
        /// H1 ... H8 (omit for the fixed client).
        #[arg(long)]
        bug: Option<String>,
        /// The checkpoint (loom) or schedule (shuttle) file.
        artifact: PathBuf,
        /// How to list the interleaving: `columns` or `single`.
        #[arg(long, env = "WSDRAIN_LISTING", value_parser = ["columns", "single"])]
        listing: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Verify(args) => matrix::verify(&args),
        Command::Merge { files, json } => matrix::merge(&files, &json),
        Command::Test { no_models } => matrix::test(no_models),
        Command::Mutants(args) => mutants::run(&args),
        Command::ReleaseCheck => release_check::run(),
        Command::Replay {
            checker,
            scenario,
            program,
            bug,
            artifact,
            listing,
        } => {
            let target = match (&scenario, &program) {
                (_, Some(program)) => matrix::ReplayTarget::Program(program),
                (Some(scenario), None) => matrix::ReplayTarget::Scenario(scenario),
                (None, None) => unreachable!("clap requires one"),
            };
            matrix::replay(
                checker,
                target,
                bug.as_deref(),
                &artifact,
                listing.as_deref().and_then(ListingStyle::parse),
            )
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("xtask: {error}");
            ExitCode::from(2)
        }
    }
}

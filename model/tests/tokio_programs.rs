//! The generated programs on tokio (a paused current-thread runtime: a
//! deadlock shows as the timeout at once). The same programs the shuttle
//! explorer of `cargo xtask verify` runs, one schedule each here.

use std::time::Duration;

use wsdrain::ClientConfig;
use wsdrain_model::Program;
use wsdrain_model::exec::{Hung, run_paused};
use wsdrain_model::generate::Fit;

fn run(program: &Program) {
    run_paused(program, ClientConfig::default(), Duration::from_secs(600))
        .unwrap_or_else(|Hung| panic!("the program hung:\n{}", program.describe()));
}

#[test]
fn the_first_programs_pass_on_tokio() {
    for index in 0..300 {
        let program = Program::generate(index, Fit::Any);
        let outcome = std::panic::catch_unwind(|| run(&program));
        if let Err(payload) = outcome {
            panic!(
                "program {index}: {}\n{}",
                wsdrain_model::exec::panic_message(&*payload),
                program.describe()
            );
        }
    }
}

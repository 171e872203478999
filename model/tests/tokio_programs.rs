//! The generated programs on tokio (a paused current-thread runtime: a
//! deadlock shows as the timeout at once). The same programs the shuttle
//! explorer of `cargo xtask verify` runs, one schedule each here.

use std::time::Duration;

use wsdrain::ClientConfig;
use wsdrain_model::Program;
use wsdrain_model::exec::run_tokio;
use wsdrain_model::generate::Fit;

fn run(program: &Program) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    rt.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(600),
            run_tokio(program, ClientConfig::default()),
        )
        .await
        .unwrap_or_else(|_| panic!("the program hung:\n{}", program.describe()));
    });
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

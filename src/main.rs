//! The `wsdrain` command: `wsdrain serve` runs a workspace-stream server,
//! `wsdrain stream` prints a server's stream as JSON lines.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}

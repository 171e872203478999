//! The `wsdrain` command: `wsdrain serve` runs a workspace-stream server,
//! `wsdrain stream` prints a server's stream as JSON lines.

mod cmd;

fn main() -> std::process::ExitCode {
    cmd::main()
}

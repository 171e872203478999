//! Argument parsing, logging and the runtime of the `wsdrain` binary.

mod serve;
mod stream;
mod token;
mod units;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit codes of `wsdrain`, shared by both subcommands.
pub(crate) mod exit {
    /// Normal end.
    pub(crate) const OK: u8 = 0;
    /// Any other failure.
    pub(crate) const FAILURE: u8 = 1;
    /// Bad usage or configuration (including a bad URL, and `serve` on a
    /// non-loopback address without a token).
    pub(crate) const USAGE: u8 = 2;
    /// `stream`: the server refused the token (HTTP 401).
    pub(crate) const UNAUTHORIZED: u8 = 3;
    /// `stream`: nothing accepted the TCP connection.
    pub(crate) const CONNECTION_REFUSED: u8 = 4;
    /// `stream`: connect + handshake did not finish within --connect-timeout.
    pub(crate) const HANDSHAKE_TIMEOUT: u8 = 5;
    /// `stream`: the server sent a message over --max-message-size.
    pub(crate) const MESSAGE_TOO_LARGE: u8 = 6;
    /// `stream`: the server closed the stream with a Close code other than
    /// 1000 (normal) or 1001 (going away), e.g. 1008 or 1011.
    pub(crate) const SERVER_CLOSE_ABNORMAL: u8 = 7;
    /// `stream`: the server ended the TCP connection without a Close frame.
    /// Not 0: a server process that died looks the same, so only the caller
    /// can know it is a normal end (kandev's Go server ends every stream so);
    /// not 1: nothing failed on the connection.
    pub(crate) const NO_CLOSE_FRAME: u8 = 8;
}

const EXIT_CODES: &str = "\
Exit codes:
  0  normal end (server closed the stream, stdin ended, SIGINT/SIGTERM)
  1  other failure (e.g. the connection broke, the upgrade was rejected,
     stdout failed)
  2  bad usage or configuration
  3  authentication refused by the server (HTTP 401)
  4  connection refused
  5  connect/handshake timeout
  6  message over --max-message-size
  7  stream: the server closed it with a Close code other than 1000/1001
  8  stream: the server ended the connection without a Close frame";

#[derive(Debug, Parser)]
#[command(
    name = "wsdrain",
    version,
    about = "Serve or stream an agentctl workspace stream",
    after_help = EXIT_CODES
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve a workspace directory's stream: file changes, git status, and a shell per connection.
    Serve(serve::ServeArgs),
    /// Connect to a workspace stream and print each message as one JSON line.
    Stream(stream::StreamArgs),
}

pub(crate) fn main() -> ExitCode {
    let cli = Cli::parse();
    let (default_log, runtime) = match &cli.command {
        // `stream` keeps stderr for its own one-line reports unless asked.
        Command::Stream(_) => (
            "error",
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build(),
        ),
        Command::Serve(_) => (
            "info",
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build(),
        ),
    };
    init_logging(default_log);
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("wsdrain: error: cannot start the async runtime: {error}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    let code = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Stream(args) => stream::run(args).await,
        }
    });
    // The stdin reader may be parked in a blocking read: do not wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    ExitCode::from(code)
}

/// Logs go to stderr (stdout is for data). The filter comes from
/// `WSDRAIN_LOG`, else `RUST_LOG`, else `default`; its syntax is
/// `LEVEL` or `TARGET=LEVEL,...` (e.g. `debug`, `wsdrain=debug,warn`).
fn init_logging(default: &str) {
    use std::io::IsTerminal;
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::prelude::*;

    let filter = ["WSDRAIN_LOG", "RUST_LOG"]
        .iter()
        .find_map(|var| {
            let value = std::env::var(var).ok().filter(|v| !v.is_empty())?;
            match value.parse::<Targets>() {
                Ok(filter) => Some(filter),
                Err(error) => {
                    eprintln!("wsdrain: ignoring {var}={value:?}: {error}");
                    None
                }
            }
        })
        .unwrap_or_else(|| default.parse().expect("valid default filter"));
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal()),
        )
        .with(filter)
        .init();
}

/// Register SIGINT and SIGTERM handlers (before anything can be interrupted).
pub(crate) fn shutdown_signals() -> std::io::Result<Signals> {
    use tokio::signal::unix::{SignalKind, signal};
    Ok(Signals {
        interrupt: signal(SignalKind::interrupt())?,
        terminate: signal(SignalKind::terminate())?,
    })
}

/// SIGINT and SIGTERM.
pub(crate) struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    /// The next SIGINT or SIGTERM; its name.
    pub(crate) async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

//! `wsdrain serve`.

use std::ffi::OsString;
use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use wsdrain_cli::server::{Server, ServerConfig};

use super::exit;
use super::units::parse_duration;

#[derive(Debug, Args)]
#[command(after_help = "\
Prints `listening on HOST:PORT` as its first line on stdout; logs go to stderr
(filter with WSDRAIN_LOG or RUST_LOG, e.g. WSDRAIN_LOG=debug).
SIGINT/SIGTERM: stop accepting, close every connection, stop every shell, exit 0
(a second signal exits at once with 130).
Exit codes: 0 clean shutdown, 1 runtime failure (e.g. the address is in use),
2 bad usage or configuration (e.g. a non-loopback address without a token).")]
pub(crate) struct ServeArgs {
    /// Address to listen on, HOST:PORT (port 0: any free port). A non-loopback
    /// address needs a token.
    #[arg(long, default_value = "127.0.0.1:0", value_parser = parse_addr)]
    addr: SocketAddr,
    /// Bearer token clients must send (empty: none).
    #[arg(long, env = "WSDRAIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The workspace directory to serve.
    #[arg(long, default_value = ".")]
    workspace: PathBuf,
    /// The shell each connection gets, on its own pty.
    #[arg(long, env = "SHELL", default_value = "/bin/sh")]
    shell: OsString,
    /// Each connection's outbound queue, in messages.
    #[arg(long, default_value_t = 256)]
    queue_capacity: usize,
    /// How many workspace events a slow connection may fall behind before it
    /// loses the oldest ones (and is sent a `refresh`).
    #[arg(long, default_value_t = 1024)]
    event_buffer: usize,
    /// Drop a connection whose socket takes no data for this long.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    write_timeout: Duration,
    /// Batch window of file events: within a batch, each path's events
    /// coalesce into at most one (see `wsdrain_cli::server` for the rule).
    #[arg(long, default_value = "50ms", value_parser = parse_duration)]
    coalesce_window: Duration,
    /// Least time between two `git status` runs.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    git_interval: Duration,
}

fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    text.to_socket_addrs()
        .map_err(|e| format!("{text:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("{text:?} resolves to no address"))
}

pub(crate) async fn run(args: ServeArgs) -> u8 {
    let mut signals = match super::shutdown_signals() {
        Ok(signals) => signals,
        Err(error) => {
            eprintln!("wsdrain: error: cannot install signal handlers: {error}");
            return exit::FAILURE;
        }
    };
    let shell = if args.shell.is_empty() {
        OsString::from("/bin/sh")
    } else {
        args.shell
    };
    let config = ServerConfig::new(args.workspace)
        .with_addr(args.addr)
        .with_token(args.token)
        .with_shell(shell)
        .with_queue_capacity(args.queue_capacity)
        .with_event_buffer(args.event_buffer)
        .with_write_timeout(args.write_timeout)
        .with_coalesce_window(args.coalesce_window)
        .with_git_interval(args.git_interval);
    let server = match Server::bind(config).await {
        Ok(server) => server,
        Err(error) => {
            eprintln!("wsdrain: error: {error}");
            return if error.is_config() {
                exit::USAGE
            } else {
                exit::FAILURE
            };
        }
    };
    {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "listening on {}", server.local_addr());
        let _ = stdout.flush();
    }
    server
        .run_until(async move {
            let name = signals.recv().await;
            tracing::info!(
                signal = name,
                "shutting down (a second signal exits at once)"
            );
            tokio::spawn(async move {
                let name = signals.recv().await;
                eprintln!("wsdrain: second {name}: exiting without draining");
                std::process::exit(130);
            });
        })
        .await;
    exit::OK
}

//! `wsdrain serve`.

use std::ffi::OsString;
use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use wsdrain_cli::server::{Server, ServerConfig};

use super::units::parse_duration;
use super::{exit, token};

#[derive(Debug, Args)]
#[command(after_help = "\
Prints `listening on HOST:PORT` as its first line on stdout, then the token
line (`token TOKEN ...`, where it was saved); logs go to stderr (filter with
WSDRAIN_LOG or RUST_LOG, e.g. WSDRAIN_LOG=debug). Without --token a random
token is generated and saved to --token-file (default
$XDG_RUNTIME_DIR/wsdrain/token-PORT), where `wsdrain stream` finds it.
Upgrades with an Origin header (web pages) not on --allow-origin, or a Host
that is not this server's, are refused with 403.
SIGINT/SIGTERM: stop accepting, close every connection, stop every shell, exit 0
(a second signal exits at once with 130).
Exit codes: 0 clean shutdown, 1 runtime failure (e.g. the address is in use),
2 bad usage or configuration (e.g. a non-loopback address without a token).")]
pub(crate) struct ServeArgs {
    /// Address to listen on, HOST:PORT (port 0: any free port). A non-loopback
    /// address needs a token.
    #[arg(long, default_value = "127.0.0.1:0", value_parser = parse_addr)]
    addr: SocketAddr,
    /// Bearer token clients must send (default: a random one, printed and
    /// saved to --token-file).
    #[arg(long, env = "WSDRAIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Where to save the token, readable by you only (default: `wsdrain/token-PORT`
    /// under $XDG_RUNTIME_DIR, else $XDG_STATE_HOME, else ~/.local/state). A
    /// generated token is always saved; a --token only when this is given.
    #[arg(long, value_name = "PATH")]
    token_file: Option<PathBuf>,
    /// Accept clients without a token. Anything on this machine that can reach
    /// the port gets a shell as you (web pages are still refused by the
    /// Origin and Host checks).
    #[arg(long = "insecure-no-auth", conflicts_with_all = ["token", "token_file"])]
    no_auth: bool,
    /// Allow upgrades from this browser origin (`scheme://host[:port]`);
    /// repeatable. By default every request with an Origin header is refused.
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    allow_origins: Vec<String>,
    /// Accept this name in the Host header too (besides localhost, loopback
    /// addresses and the bound address); repeatable. For a non-loopback bind
    /// reached through a DNS name.
    #[arg(long = "allow-host", value_name = "NAME")]
    allow_hosts: Vec<String>,
    /// Connections open at once; past it, upgrades are answered 503.
    #[arg(long, default_value_t = 128)]
    max_connections: usize,
    /// Refuse (404) an upgrade whose X-Instance-ID header names another
    /// instance, as agentctl does.
    #[arg(long, value_name = "ID")]
    instance_id: Option<String>,
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
    /// When a connection ends: time between SIGHUP to its shell's session and
    /// SIGKILL to what is left of it (jobs' cleanup traps run meanwhile).
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    shell_grace: Duration,
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
    let (token, generated) = if args.no_auth {
        (None, false)
    } else {
        match args.token.filter(|t| !t.is_empty()) {
            Some(token) => (Some(token), false),
            None => match token::generate() {
                Ok(token) => (Some(token), true),
                Err(error) => {
                    eprintln!("wsdrain: error: cannot generate a token from /dev/urandom: {error}");
                    return exit::FAILURE;
                }
            },
        }
    };
    let config = ServerConfig::new(args.workspace)
        .with_addr(args.addr)
        .with_token(token.clone())
        .with_shell(shell)
        .with_queue_capacity(args.queue_capacity)
        .with_event_buffer(args.event_buffer)
        .with_write_timeout(args.write_timeout)
        .with_coalesce_window(args.coalesce_window)
        .with_git_interval(args.git_interval)
        .with_shell_grace(args.shell_grace)
        .with_allowed_origins(args.allow_origins)
        .with_allowed_hosts(args.allow_hosts)
        .with_max_connections(args.max_connections)
        .with_instance_id(args.instance_id);
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
    let addr = server.local_addr();
    // A generated token goes to the default file unless told otherwise; a
    // given one only where asked.
    let token_file = match (&token, args.token_file) {
        (Some(_), Some(path)) => Some(path),
        (Some(_), None) if generated => token::default_path(addr.port()),
        _ => None,
    };
    let mut saved = None;
    if let (Some(token), Some(path)) = (&token, &token_file) {
        match token::save(path, token) {
            Ok(()) => saved = Some(path.clone()),
            Err(error) => {
                eprintln!(
                    "wsdrain: error: cannot save the token to {}: {error}",
                    path.display()
                );
                return exit::FAILURE;
            }
        }
    }
    {
        // The token goes to the terminal only, never to the log.
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "listening on {addr}");
        match (&token, &saved) {
            (Some(token), Some(path)) => {
                let _ = writeln!(
                    stdout,
                    "token {token} (saved to {}; `wsdrain stream --url http://{addr}` reads it from there)",
                    path.display()
                );
            }
            (Some(_), None) => {
                let _ = writeln!(stdout, "token: the one given (--token or WSDRAIN_TOKEN)");
            }
            (None, _) => {
                let _ = writeln!(
                    stdout,
                    "WARNING: no authentication (--insecure-no-auth): any local user or program can get a shell as you"
                );
                tracing::warn!(
                    "no authentication: any local program reaching the port gets a shell"
                );
            }
        }
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
    if let Some(path) = saved {
        // Only this server's: it wrote the file at start.
        if token::load(&path).ok() == token {
            let _ = std::fs::remove_file(&path);
        }
    }
    exit::OK
}

//! `wsdrain stream`: print a workspace stream as JSON lines.

use std::io::{BufRead, BufWriter, Write};
use std::time::Duration;

use clap::Args;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use wsdrain::protocol::Message;
use wsdrain::{Client, ClientConfig, Error, Event, Handler, Skipped, StreamEnd};

use super::exit;
use super::units::{parse_duration, parse_size};

/// How long to wait, after stdin ended, for the `pong` that proves the
/// server has read every input line.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on writing out what is still queued for stdout at exit.
const STDOUT_DRAIN: Duration = Duration::from_millis(300);

#[derive(Debug, Args)]
#[command(after_help = "\
Each message from the server is printed as one JSON line on stdout (nothing
else goes to stdout, so `wsdrain stream ... | jq` works). Each line read on
stdin is sent as `shell_input`, newline included. Malformed messages, unknown
message types and binary frames are reported on stderr and skipped.

The stream ends with exit 0 when the server closes it normally (Close code 1000
or 1001), when stdin ends (after the server has acknowledged every input line;
see --linger), when stdout is a closed pipe (e.g. `| head`), or on
SIGINT/SIGTERM (the client is closed and drained first), whatever stdin is.
The server's Close code and reason are printed on stderr. A server that ends
the connection without a Close frame (kandev's Go server always does; a server
process that exited looks the same) gets exit 8, not a transport error.

Exit codes:
  0  normal end
  1  other failure (e.g. the connection broke, the upgrade was rejected, stdout
     failed, e.g. a full disk)
  2  bad usage (e.g. a malformed --url)
  3  authentication refused by the server (HTTP 401)
  4  connection refused
  5  connect/handshake timeout (--connect-timeout)
  6  a message over --max-message-size
  7  the server closed the stream with a Close code other than 1000/1001
  8  the server ended the connection without a Close frame")]
pub(crate) struct StreamArgs {
    /// The agent's base URL, http://HOST:PORT (the stream is at /api/v1/workspace/stream).
    #[arg(long)]
    url: String,
    /// Bearer token to send (empty: none). Default: read from --token-file.
    #[arg(long, env = "WSDRAIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Read the token from this file (one trailing newline is trimmed). Default
    /// for a loopback URL: the file `wsdrain serve` saved for that port, if any.
    #[arg(long, value_name = "PATH")]
    token_file: Option<std::path::PathBuf>,
    /// Send `X-Instance-ID: ID` on the upgrade, as kandev's Go client sends its
    /// execution id; a Go server with another instance id answers 404 (exit 1).
    #[arg(long, value_name = "ID")]
    instance_id: Option<String>,
    /// Bound on TCP connect plus the WebSocket handshake (e.g. 10s, 500ms).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    connect_timeout: Duration,
    /// Largest message accepted from the server (e.g. 16MiB, 64KiB, 1000000).
    #[arg(long, default_value = "16MiB", value_parser = parse_size)]
    max_message_size: usize,
    /// Send a `ping` this often (its `pong` is printed like any message).
    #[arg(long, value_parser = parse_duration)]
    ping_interval: Option<Duration>,
    /// Do not read stdin: stream until the server closes or a signal arrives.
    #[arg(long)]
    no_stdin: bool,
    /// After stdin ends and the input is acknowledged, keep printing for this long.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    linger: Duration,
}

/// Prints the stream's events (the library's handler, on its reader task).
struct Printer {
    out: mpsc::Sender<String>,
    pongs: watch::Sender<u64>,
    /// Set at shutdown: a line that cannot be queued is then dropped
    /// rather than holding up the drain.
    stopping: CancellationToken,
}

impl Handler for Printer {
    async fn handle(&mut self, event: Event) {
        let envelope = match event {
            Event::Message(envelope) => envelope,
            Event::Skipped(Skipped::Malformed { error, len }) => {
                eprintln!("wsdrain: skipped a malformed message ({len} bytes): {error}");
                return;
            }
            Event::Skipped(Skipped::Binary { len }) => {
                eprintln!("wsdrain: skipped a binary frame ({len} bytes)");
                return;
            }
            other => {
                eprintln!("wsdrain: skipped {other:?}");
                return;
            }
        };
        if let Message::Unknown { kind, .. } = &envelope.message {
            eprintln!("wsdrain: skipped a message of unknown type {kind:?}");
            return;
        }
        let pong = envelope.message == Message::Pong;
        tokio::select! {
            _ = self.out.send(envelope.encode()) => {}
            () = self.stopping.cancelled() => {}
        }
        if pong {
            self.pongs.send_modify(|n| *n += 1);
        }
    }
}

enum Outcome {
    Interrupted,
    InputDone,
    /// Stdout is a closed pipe (`| head`): a normal end.
    StdoutClosed,
    /// Writing stdout failed otherwise (e.g. a full disk): data was lost.
    StdoutFailed(std::io::Error),
    Ended(StreamEnd),
}

pub(crate) async fn run(args: StreamArgs) -> u8 {
    let mut signals = match super::shutdown_signals() {
        Ok(signals) => signals,
        Err(error) => {
            eprintln!("wsdrain: error: cannot install signal handlers: {error}");
            return exit::FAILURE;
        }
    };
    let mut config = ClientConfig::default()
        .with_connect_timeout(args.connect_timeout)
        .with_max_message_size(args.max_message_size)
        // A SIGINT must end the process within a second, stuck server or not.
        .with_close_timeout(Duration::from_millis(300));
    let token = match args.token.filter(|t| !t.is_empty()) {
        Some(token) => Some(token),
        None => match &args.token_file {
            Some(path) => match super::token::load(path) {
                Ok(token) => Some(token),
                Err(error) => {
                    eprintln!(
                        "wsdrain: error: cannot read the token file {}: {error}",
                        path.display()
                    );
                    return exit::USAGE;
                }
            },
            None => super::token::default_for_url(&args.url)
                .and_then(|path| super::token::load(&path).ok()),
        },
    };
    if let Some(token) = token.filter(|t| !t.is_empty()) {
        config = config.with_token(token);
    }
    if let Some(id) = args.instance_id.filter(|id| !id.is_empty()) {
        config = config.with_instance_id(id);
    }
    let client = match Client::with_config(&args.url, config) {
        Ok(client) => client,
        Err(error) => return failure(&error),
    };

    let stopping = CancellationToken::new();
    let (out, out_rx) = mpsc::channel(1024);
    let mut stdout_done = Some(spawn_stdout_writer(out_rx));
    let (pongs, mut pongs_rx) = watch::channel(0u64);
    let printer = Printer {
        out,
        pongs,
        stopping: stopping.clone(),
    };

    let connected = tokio::select! {
        r = client.stream_workspace(printer) => r,
        name = signals.recv() => {
            tracing::info!(signal = name, "interrupted while connecting");
            client.close().await;
            return exit::OK;
        }
    };
    let stream = match connected {
        Ok(stream) => stream,
        Err(error) => return failure(&error),
    };

    let (stdin_tx, mut stdin_rx) = mpsc::channel::<String>(64);
    let stdin_open = !args.no_stdin;
    if stdin_open {
        spawn_stdin_reader(stdin_tx);
    } else {
        drop(stdin_tx);
    }
    let mut ended = {
        let stream = stream.clone();
        Box::pin(async move { stream.wait().await })
    };
    let mut ticker = args.ping_interval.filter(|d| !d.is_zero()).map(|period| {
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker
    });
    let mut pings_sent = 0u64;

    let outcome = 'run: loop {
        tokio::select! {
            name = signals.recv() => {
                tracing::info!(signal = name, "interrupted");
                break Outcome::Interrupted;
            }
            end = &mut ended => break Outcome::Ended(end),
            r = async { stdout_done.as_mut().expect("stdout writer").await }, if stdout_done.is_some() => {
                stdout_done = None;
                // Ok: every line is written because the stream's reader has
                // ended; `ended` tells how. Err: stdout is gone (e.g. `| head`).
                if let Ok(Err(error)) = r {
                    if error.kind() == std::io::ErrorKind::BrokenPipe {
                        tracing::debug!(%error, "stdout closed");
                        break Outcome::StdoutClosed;
                    }
                    break Outcome::StdoutFailed(error);
                }
            }
            line = stdin_rx.recv(), if stdin_open => {
                let Some(line) = line else {
                    break Outcome::InputDone;
                };
                tokio::select! {
                    // Err: the stream closed; `ended` says how.
                    _ = stream.write_shell_input(line) => {}
                    name = signals.recv() => {
                        tracing::info!(signal = name, "interrupted");
                        break 'run Outcome::Interrupted;
                    }
                }
            }
            () = async { ticker.as_mut().expect("ticker").tick().await; }, if ticker.is_some() => {
                tokio::select! {
                    r = stream.ping() => if r.is_ok() { pings_sent += 1 },
                    name = signals.recv() => {
                        tracing::info!(signal = name, "interrupted");
                        break 'run Outcome::Interrupted;
                    }
                }
            }
        }
    };

    // Stdin ended: the input is queued, not yet delivered. The server answers
    // pings in order, so the pong of one last ping proves it read every line.
    let outcome = match outcome {
        Outcome::InputDone => {
            let flushed = async {
                if stream.ping().await.is_ok() {
                    let target = pings_sent + 1;
                    if tokio::time::timeout(FLUSH_TIMEOUT, pongs_rx.wait_for(|&n| n >= target))
                        .await
                        .is_err()
                    {
                        eprintln!(
                            "wsdrain: no pong within {FLUSH_TIMEOUT:?} after the end of input; closing"
                        );
                    }
                }
                tokio::time::sleep(args.linger).await;
            };
            tokio::select! {
                () = flushed => Outcome::InputDone,
                end = &mut ended => Outcome::Ended(end),
                _ = signals.recv() => Outcome::Interrupted,
            }
        }
        other => other,
    };

    // The drain barrier: when close() returns, no task of the stream runs.
    stopping.cancel();
    client.close().await;
    drop(ended);
    let end = match &outcome {
        Outcome::Ended(end) => Some(end.clone()),
        _ => None,
    };
    // Every sender of the stdout queue is gone now: let the writer finish.
    let mut stdout_error = match outcome {
        Outcome::StdoutFailed(error) => Some(error),
        _ => None,
    };
    drop(stream);
    drop(client);
    if let Some(done) = stdout_done
        && let Ok(Ok(Err(error))) = tokio::time::timeout(STDOUT_DRAIN, done).await
        && error.kind() != std::io::ErrorKind::BrokenPipe
    {
        stdout_error.get_or_insert(error);
    }
    if let Some(error) = stdout_error {
        // Output was lost: that is never a normal end.
        eprintln!("wsdrain: error: cannot write to stdout: {error}");
        return exit::FAILURE;
    }
    match end {
        Some(end) => end_code(&end),
        None => exit::OK,
    }
}

/// Report how the server ended the stream on stderr; its exit code.
fn end_code(end: &StreamEnd) -> u8 {
    match end {
        StreamEnd::ServerClosed { code, reason } => {
            let code_text = match code {
                Some(code) => format!("{code} ({})", close_code_name(*code)),
                None => "none".to_owned(),
            };
            eprintln!("wsdrain: the server closed the stream: code {code_text}, reason {reason:?}");
            if end.is_normal() {
                exit::OK
            } else {
                exit::SERVER_CLOSE_ABNORMAL
            }
        }
        StreamEnd::ServerDisconnected => {
            eprintln!(
                "wsdrain: the server ended the connection without a Close frame \
                 (kandev's Go server ends every stream this way; a server that exited looks the same)"
            );
            exit::NO_CLOSE_FRAME
        }
        StreamEnd::Failed(error) => failure(error),
        _ => exit::OK,
    }
}

/// The RFC 6455 name of a Close status code.
fn close_code_name(code: u16) -> &'static str {
    match code {
        1000 => "normal",
        1001 => "going away",
        1002 => "protocol error",
        1003 => "unsupported data",
        1007 => "invalid payload",
        1008 => "policy violation",
        1009 => "message too big",
        1010 => "extension required",
        1011 => "server error",
        1012 => "service restart",
        1013 => "try again later",
        3000..=4999 => "application-defined",
        _ => "unknown",
    }
}

/// Report `error` on stderr; its exit code.
fn failure(error: &Error) -> u8 {
    eprintln!("wsdrain: error: {error}");
    match error {
        Error::Unauthorized => exit::UNAUTHORIZED,
        Error::ConnectionRefused { .. } => exit::CONNECTION_REFUSED,
        Error::HandshakeTimeout(_) => exit::HANDSHAKE_TIMEOUT,
        Error::MessageTooLarge { .. } => exit::MESSAGE_TOO_LARGE,
        Error::InvalidUrl { .. } | Error::InvalidToken => exit::USAGE,
        _ => exit::FAILURE,
    }
}

/// Write lines to stdout on a thread of its own, flushing whenever the queue
/// runs empty. Resolves when the queue is closed and written, or on error.
fn spawn_stdout_writer(
    mut lines: mpsc::Receiver<String>,
) -> oneshot::Receiver<std::io::Result<()>> {
    let (done, done_rx) = oneshot::channel();
    let mut write = move || -> std::io::Result<()> {
        let stdout = std::io::stdout();
        let mut out = BufWriter::with_capacity(64 * 1024, stdout.lock());
        while let Some(line) = lines.blocking_recv() {
            out.write_all(line.as_bytes())?;
            out.write_all(b"\n")?;
            while let Ok(line) = lines.try_recv() {
                out.write_all(line.as_bytes())?;
                out.write_all(b"\n")?;
            }
            out.flush()?;
        }
        out.flush()
    };
    std::thread::Builder::new()
        .name("stdout".into())
        .spawn(move || {
            let _ = done.send(write());
        })
        .expect("spawn the stdout thread");
    done_rx
}

/// Read stdin lines on a thread of its own (a blocking read cannot be
/// cancelled; the process exits without joining it). Each line keeps its
/// newline; a last line without one gets one. The channel closes at EOF.
fn spawn_stdin_reader(lines: mpsc::Sender<String>) {
    let read = move || {
        let stdin = std::io::stdin();
        let mut stdin = stdin.lock();
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match stdin.read_until(b'\n', &mut buf) {
                Ok(0) => return,
                Ok(_) => {
                    let mut line = String::from_utf8_lossy(&buf).into_owned();
                    if !line.ends_with('\n') {
                        line.push('\n');
                    }
                    if lines.blocking_send(line).is_err() {
                        return;
                    }
                }
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => {
                    eprintln!(
                        "wsdrain: error reading stdin: {error}; treating it as the end of input"
                    );
                    return;
                }
            }
        }
    };
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(read)
        .expect("spawn the stdin thread");
}

//! The send bench's alternatives and their connections, which
//! `examples/send_small.rs` runs too (one copy: the example profiles exactly
//! what the bench times). Included with `#[path]` by both; `crate::support`
//! is the bench support.

use std::time::{Duration, Instant};

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use wsdrain::protocol::{Envelope, Message};
use wsdrain::{Client, WorkspaceStream};

use crate::support::{BenchServer, Mode};

pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
pub(crate) type Receipts = mpsc::UnboundedReceiver<Instant>;

pub(crate) const BATCH: u64 = 1000;

/// 64 bytes of shell input.
pub(crate) fn data() -> &'static str {
    "ls -la --color=never /work/main/src && git status --short; date\n"
}

pub(crate) fn encoded() -> WsMessage {
    WsMessage::Text(
        Envelope::new(Message::ShellInput {
            data: data().to_owned(),
        })
        .encode()
        .into(),
    )
}

#[derive(Clone, Copy, PartialEq)]
pub(crate) enum How {
    Wsdrain,
    PlainSend,
    PlainBatched,
    PlainTasks,
}

/// A sender and the receipts of the frames it sent, moved into a task for
/// each run and back.
pub(crate) enum Sender {
    Wsdrain(WorkspaceStream),
    Plain(SplitSink<Socket, WsMessage>),
    Tasks(mpsc::Sender<Envelope>),
}

/// A shell input as `write_shell_input(data())` queues it.
pub(crate) fn envelope() -> Envelope {
    Envelope::new(Message::ShellInput {
        data: data().to_owned(),
    })
}

/// `plain_tasks`' writer task: `run_writer` (src/stream.rs) with tokio's
/// parts and without the close signal.
pub(crate) async fn plain_writer(
    mut sink: SplitSink<Socket, WsMessage>,
    mut input: mpsc::Receiver<Envelope>,
) {
    let mut batch = Vec::with_capacity(64);
    while input.recv_many(&mut batch, 64).await > 0 {
        let mut batches = 1;
        loop {
            let full = batch.len() == 64;
            for envelope in batch.drain(..) {
                if sink
                    .feed(WsMessage::Text(envelope.encode().into()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            if !full || batches == 16 {
                break;
            }
            tokio::task::yield_now().await;
            while batch.len() < 64 {
                match input.try_recv() {
                    Ok(envelope) => batch.push(envelope),
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                break;
            }
            batches += 1;
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
}

pub(crate) struct Bench {
    sender: Option<Sender>,
    receipts: Option<Receipts>,
}

impl Bench {
    /// `iters` batches of `BATCH` messages; the time until the server got
    /// the last one.
    pub(crate) fn throughput(&mut self, rt: &Runtime, how: How, iters: u64) -> Duration {
        let mut sender = self.sender.take().unwrap();
        let mut receipts = self.receipts.take().unwrap();
        let (sender, receipts, elapsed) = rt
            .block_on(rt.spawn(async move {
                let start = Instant::now();
                for _ in 0..iters {
                    for _ in 0..BATCH {
                        match (&mut sender, how) {
                            (Sender::Wsdrain(stream), _) => {
                                stream.write_shell_input(data()).await.unwrap()
                            }
                            (Sender::Plain(sink), How::PlainBatched) => {
                                sink.feed(encoded()).await.unwrap()
                            }
                            (Sender::Plain(sink), _) => sink.send(encoded()).await.unwrap(),
                            (Sender::Tasks(input), _) => input.send(envelope()).await.unwrap(),
                        }
                    }
                    if let (Sender::Plain(sink), How::PlainBatched) = (&mut sender, how) {
                        sink.flush().await.unwrap();
                    }
                    for _ in 0..BATCH {
                        receipts.recv().await.unwrap();
                    }
                }
                (sender, receipts, start.elapsed())
            }))
            .unwrap();
        self.sender = Some(sender);
        self.receipts = Some(receipts);
        elapsed
    }

    /// `iters` messages one at a time; each message's latency.
    pub(crate) fn latencies(&mut self, rt: &Runtime, iters: u64) -> Vec<Duration> {
        let mut sender = self.sender.take().unwrap();
        let mut receipts = self.receipts.take().unwrap();
        let (sender, receipts, samples) = rt
            .block_on(rt.spawn(async move {
                let mut samples = Vec::with_capacity(iters as usize);
                for _ in 0..iters {
                    let start = Instant::now();
                    match &mut sender {
                        Sender::Wsdrain(stream) => stream.write_shell_input(data()).await.unwrap(),
                        Sender::Plain(sink) => sink.send(encoded()).await.unwrap(),
                        Sender::Tasks(input) => input.send(envelope()).await.unwrap(),
                    }
                    let arrived = receipts.recv().await.unwrap();
                    samples.push(arrived.saturating_duration_since(start));
                }
                (sender, receipts, samples)
            }))
            .unwrap();
        self.sender = Some(sender);
        self.receipts = Some(receipts);
        samples
    }

    pub(crate) fn latency_total(&mut self, rt: &Runtime, iters: u64) -> Duration {
        self.latencies(rt, iters).into_iter().sum()
    }
}

/// The three connections the alternatives send on, each to its own sink
/// server (so receipts never mix): wsdrain's stream, a plain split sink
/// (`plain_send` and `plain_batched` take turns on it) and `plain_tasks`'
/// queue to its writer task. The servers live as long as this.
pub(crate) struct Connections {
    pub(crate) client: Client,
    pub(crate) wsdrain: Bench,
    pub(crate) plain: Bench,
    pub(crate) tasks: Bench,
    pub(crate) servers: [BenchServer; 3],
}

pub(crate) fn connect(rt: &Runtime) -> Connections {
    let (wsdrain_tx, wsdrain_rx) = mpsc::unbounded_channel();
    let wsdrain_server = BenchServer::start(Mode::Sink {
        receipts: wsdrain_tx,
    });
    let (plain_tx, plain_rx) = mpsc::unbounded_channel();
    let plain_server = BenchServer::start(Mode::Sink { receipts: plain_tx });
    let (tasks_tx, tasks_rx) = mpsc::unbounded_channel();
    let tasks_server = BenchServer::start(Mode::Sink { receipts: tasks_tx });

    let client = Client::new(&wsdrain_server.base_url()).unwrap();
    let stream = rt
        .block_on(client.stream_workspace(|_| std::future::ready(())))
        .unwrap();
    let wsdrain = Bench {
        sender: Some(Sender::Wsdrain(stream)),
        receipts: Some(wsdrain_rx),
    };
    let (sink, _stream) = rt.block_on(async {
        let (socket, _) =
            tokio_tungstenite::connect_async_with_config(plain_server.ws_url(), None, true)
                .await
                .unwrap();
        socket.split()
    });
    let input = rt.block_on(async {
        let (socket, _) =
            tokio_tungstenite::connect_async_with_config(tasks_server.ws_url(), None, true)
                .await
                .unwrap();
        let (sink, read_half) = socket.split();
        let (input, queue) = mpsc::channel(64);
        tokio::spawn(async move {
            // Kept as long as the writer runs, as the others keep theirs.
            let _read_half = read_half;
            plain_writer(sink, queue).await
        });
        input
    });
    let tasks = Bench {
        sender: Some(Sender::Tasks(input)),
        receipts: Some(tasks_rx),
    };
    let plain = Bench {
        sender: Some(Sender::Plain(sink)),
        receipts: Some(plain_rx),
    };
    Connections {
        client,
        wsdrain,
        plain,
        tasks,
        servers: [wsdrain_server, plain_server, tasks_server],
    }
}

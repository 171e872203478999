//! A workspace stream: its handle, its shared state and its two tasks.

use std::future::{Future, poll_fn};
use std::panic::AssertUnwindSafe;
use std::pin::{Pin, pin};
use std::task::Poll;

use futures_util::FutureExt;
use futures_util::future::{Either, select};

use crate::client::Shared;
use crate::handler::{Event, Handler, Skipped};
use crate::probe::Role;
use crate::protocol::{Envelope, Message};
use crate::sync::atomic::{AtomicBool, Ordering};
use crate::sync::unchecked::{PlainArc, SetOnce};
use crate::sync::{
    Arc, CloseSignal, Closed, Queue, TaskId, WaitGroup, current_task, spawn, yield_now,
};
use crate::transport::{Frame, FrameReader, FrameWriter, Received, ServerEnd, Transport};
use crate::{Error, Result};

/// How a stream ended, as [`WorkspaceStream::wait`] reports it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum StreamEnd {
    /// This side closed it (`WorkspaceStream::close`, `Client::close`, ...).
    Closed,
    /// The server closed it with a Close frame: its status code (`None` if
    /// the frame carried none) and reason. 1000 and 1001 are normal ends;
    /// other codes say what went wrong (1008 policy, 1011 server error, ...).
    ServerClosed {
        /// The Close frame's status code (RFC 6455, section 7.4).
        code: Option<u16>,
        /// The reason the server gave (may be empty).
        reason: String,
    },
    /// The server ended the TCP connection cleanly without a Close frame.
    /// kandev's Go server ends every stream this way, so from a Go peer this
    /// is its normal end; from a server that sends Close frames it means the
    /// server process went away. (A reset connection is `Failed` instead.)
    ServerDisconnected,
    /// The connection failed; the error says how.
    Failed(PlainArc<Error>),
}

impl StreamEnd {
    /// Whether this is a normal end: closed by this side, by the server
    /// with code 1000 or 1001 (or a Close frame with no code), or by a
    /// server that sends no Close frame (a Go peer).
    pub fn is_normal(&self) -> bool {
        match self {
            StreamEnd::Closed | StreamEnd::ServerDisconnected => true,
            StreamEnd::ServerClosed { code, .. } => matches!(code, None | Some(1000 | 1001)),
            StreamEnd::Failed(_) => false,
        }
    }
}

/// State shared by a stream's handle, its tasks and the client.
#[derive(Debug)]
pub(crate) struct StreamInner {
    pub(crate) id: u64,
    /// Shutdown requested: what `done()` reports and what both tasks check.
    /// It wakes `done()`'s waiters and a writer inside a write, not a reader
    /// parked in a read (see `stop_reading`).
    closed: CloseSignal,
    /// Input for the writer task; closing it wakes the writer.
    input: Queue<Envelope>,
    /// The close chain's last link: the writer closes it as it exits, after
    /// its Close frame, and only then is a reader parked in a read woken.
    /// `close()` wakes one task (the writer), which hands over to the
    /// reader, whose exit releases the closer, all on one worker; waking
    /// both tasks from `close()` made tokio wake the runtime's second worker
    /// (a futex call) in every close (docs/performance.md, section 5).
    stop_reading: CloseSignal,
    /// The reader and the writer, as in Go's per-stream `wg`.
    pub(crate) wg: WaitGroup,
    /// Which task is the reader (for `Client::close` from a handler): set
    /// by the reader itself, and only the reader can find its own id in it.
    reader_task: SetOnce<Option<TaskId>>,
    /// Whether the reader's `done()` has been given, by the reader itself or
    /// on its behalf by a `Client::close` running on it.
    reader_released: AtomicBool,
    /// How the stream ended: read by `wait()` after the stream's `wg`.
    end: SetOnce<StreamEnd>,
}

impl StreamInner {
    pub(crate) fn new(id: u64, capacity: usize) -> Self {
        Self {
            id,
            closed: CloseSignal::new(),
            input: Queue::new(capacity),
            stop_reading: CloseSignal::new(),
            wg: WaitGroup::named(crate::sync::trace::name(|| format!("stream#{id}.wg"))),
            reader_task: SetOnce::new(),
            reader_released: AtomicBool::new(false),
            end: SetOnce::new(),
        }
    }

    /// Request shutdown of both tasks: set the close signal, and close the
    /// input queue, which wakes the writer; the writer stops the reader as
    /// it exits (`stop_reading`). A reader running a handler sees the signal
    /// before its next read. Idempotent.
    pub(crate) fn close(&self) {
        self.mark_closed();
        let discarded = self.input.close();
        if discarded > 0 {
            tracing::debug!(
                stream = self.id,
                discarded,
                "queued input discarded at close"
            );
        }
    }

    fn mark_closed(&self) {
        if self.closed.close() {
            tracing::debug!(stream = self.id, "workspace stream closing");
        }
    }

    /// Close only the connection side: fire `done` and stop the reader
    /// directly, as closing a Go conn does. On its own this is bug H7: the
    /// writer is not woken.
    pub(crate) fn close_connection(&self) {
        self.mark_closed();
        self.stop_reading.close();
    }

    /// Close the way the configured client does (H7 closes the connection only).
    pub(crate) fn close_as<T>(&self, shared: &Shared<T>) {
        if bug!(shared, WriterNotWoken) {
            self.close_connection();
        } else {
            self.close();
        }
    }

    pub(crate) fn is_reader(&self, task: Option<TaskId>) -> bool {
        task.is_some() && self.reader_task.get().copied().flatten() == task
    }

    /// Count the reader out of the client's `tasks` exactly once: at the
    /// reader's exit, or earlier from a `Client::close` running on the
    /// reader (so that close does not wait for itself). Only `tasks`: the
    /// stream's `wg` counts the reader's real exit, so `wait()` and a
    /// `Client::close` from outside still wait for the handler to return.
    pub(crate) fn release_reader(&self, tasks: &WaitGroup) {
        // AcqRel: whichever side wins, the other sees it and skips.
        if !self.reader_released.swap(true, Ordering::AcqRel) {
            tasks.done();
        }
    }

    fn finish(&self, end: StreamEnd) {
        self.end.set(end);
    }
}

/// Handle of a workspace stream; clones refer to the same stream.
///
/// Input methods queue a message for the stream's writer task (waiting for
/// room when the queue is full) and fail with [`Error::StreamClosed`] once
/// the stream is closed. `Ok` means the message was queued, not delivered:
/// input still queued when the stream closes is discarded (and logged).
#[derive(Debug, Clone)]
pub struct WorkspaceStream {
    pub(crate) inner: Arc<StreamInner>,
}

impl WorkspaceStream {
    /// This stream's number within its client, from 1 (for logs).
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// Send `data` to the workspace shell's stdin.
    pub async fn write_shell_input(&self, data: impl Into<String>) -> Result<()> {
        self.enqueue(Message::ShellInput { data: data.into() })
            .await
    }

    /// Resize the workspace shell's terminal. (`u16`: every terminal size
    /// fits, and it widens to the wire's 64-bit `int` without loss.)
    pub async fn resize_shell(&self, cols: u16, rows: u16) -> Result<()> {
        self.enqueue(Message::ShellResize {
            cols: cols.into(),
            rows: rows.into(),
        })
        .await
    }

    /// Ask the server for a `pong`.
    pub async fn ping(&self) -> Result<()> {
        self.enqueue(Message::Ping).await
    }

    async fn enqueue(&self, message: Message) -> Result<()> {
        if self.inner.closed.is_closed() {
            return Err(Error::StreamClosed);
        }
        self.inner
            .input
            .send(Envelope::new(message))
            .await
            .map_err(|_| Error::StreamClosed)
    }

    /// Request shutdown of both tasks (the writer sends its Close frame and
    /// stops the reader as it exits). Idempotent; returns at once (use
    /// [`wait`](Self::wait) to know they have exited).
    pub fn close(&self) {
        self.inner.close();
    }

    /// Whether shutdown has been requested (by either side).
    pub fn is_closed(&self) -> bool {
        self.inner.closed.is_closed()
    }

    /// Resolves once shutdown has been requested, by this side or because
    /// the server ended the stream. The tasks may still be unwinding: use
    /// [`wait`](Self::wait) for that.
    pub fn done(&self) -> Closed<'_> {
        self.inner.closed.closed()
    }

    /// Resolves once both tasks of the stream have exited, with how the
    /// stream ended. Do not await it from this stream's own handler (the
    /// reader would wait for itself); use `Client::close` there.
    pub async fn wait(&self) -> StreamEnd {
        self.inner.wg.wait().await;
        self.inner.end.get().cloned().unwrap_or(StreamEnd::Closed)
    }
}

/// Runs a tracked task: the probe hears of its start and exit, and its
/// wait-group `done`s run when it ends, even by panic.
struct TaskGuard<T: Transport> {
    shared: Arc<Shared<T>>,
    stream: Arc<StreamInner>,
    role: Role,
    ticket: crate::probe::Ticket,
}

impl<T: Transport> Drop for TaskGuard<T> {
    fn drop(&mut self) {
        // The probe first: once a waiter sees the count drop, the probe
        // must already show this task gone.
        self.shared.probe.exited(self.ticket);
        // The real exit, for `WorkspaceStream::wait` and `Client::close`.
        // Before the client's count: a `Client::close` that sees this task
        // counted out must also find the stream's `wait()` ready.
        self.stream.wg.done();
        match self.role {
            Role::Reader => self.stream.release_reader(&self.shared.tasks),
            _ => self.shared.tasks.done(),
        }
    }
}

/// Start the reader and the writer of a freshly published stream. The
/// caller has already counted them on both wait groups.
pub(crate) fn start_tasks<T: Transport, H: Handler>(
    shared: &Arc<Shared<T>>,
    stream: &Arc<StreamInner>,
    reader: T::Reader,
    writer: T::Writer,
    handler: H,
) {
    let guard = |role| TaskGuard {
        shared: shared.clone(),
        stream: stream.clone(),
        role,
        ticket: shared.probe.spawned(role, Some(stream.id)),
    };
    crate::trace_point!("spawn reader#{0} and writer#{0}", stream.id);
    let reader_guard = guard(Role::Reader);
    spawn(async move {
        reader_guard.shared.probe.started(reader_guard.ticket);
        run_reader(&reader_guard.shared, &reader_guard.stream, reader, handler).await;
    });
    let writer_guard = guard(Role::Writer);
    spawn(async move {
        writer_guard.shared.probe.started(writer_guard.ticket);
        run_writer(&writer_guard.stream, writer).await;
    });
}

async fn run_reader<T: Transport, H: Handler>(
    shared: &Arc<Shared<T>>,
    stream: &Arc<StreamInner>,
    reader: T::Reader,
    mut handler: H,
) {
    stream.reader_task.set(current_task());
    // The exit cleanup runs in a guard, so that it runs however the reader
    // ends, unwinding included: as plain code after the loop, a panic
    // skipped it and left a zombie (published, never closed, writer parked).
    let mut exit = ReaderExit {
        shared,
        stream,
        closed_here: false,
    };
    // Declared after the guard, so dropped (connection closed) before it runs.
    let mut reader = reader;
    let end = read_loop(stream, &mut reader, &mut handler).await;
    drop(reader);
    tracing::debug!(stream = stream.id, ?end, "workspace stream reader exiting");
    // Closed by this side: whoever closed the signal closes the input queue
    // too (`StreamInner::close`), so the guard's close would only repeat it.
    // Skipping it keeps two lock steps out of every reader's exit, which the
    // model checkers would interleave with everything else.
    exit.closed_here = matches!(end, StreamEnd::Closed);
    stream.finish(end);
}

/// The reader's exit cleanup: unpublish its stream (only if it is still the
/// client's current one: a newer stream may have replaced it) and close it.
struct ReaderExit<'a, T> {
    shared: &'a Arc<Shared<T>>,
    stream: &'a Arc<StreamInner>,
    /// The reader saw the stream closed by this side (see `run_reader`).
    closed_here: bool,
}

impl<T> Drop for ReaderExit<'_, T> {
    fn drop(&mut self) {
        let (shared, stream) = (self.shared, self.stream);
        // Only if the reader did not get to say how the stream ended: it
        // unwound, or its task was dropped (its runtime shut down).
        if stream.end.get().is_none() {
            let cause = if std::thread::panicking() {
                Error::HandlerPanicked {
                    message: "the reader task unwound".into(),
                }
            } else {
                Error::Transport("the reader task was dropped (its runtime shut down?)".into())
            };
            stream.finish(StreamEnd::Failed(PlainArc::new(cause)));
        }
        {
            let mut state = shared.state.lock();
            crate::trace_point!("reader exit cleanup");
            let ours = state
                .current
                .as_ref()
                .is_some_and(|current| Arc::ptr_eq(current, stream));
            if (ours || bug!(shared, CleanupClobber))
                && let Some(cleared) = state.current.take()
            {
                shared.probe.cleared_by_reader(stream.id, cleared.id);
            }
        }
        if !self.closed_here {
            stream.close_as(shared);
        }
    }
}

/// The read loop, inside one `catch_unwind` for the whole loop rather than
/// one per handler call (a `CatchUnwind` future per message, with the event
/// moved into an async block for it, was about a quarter of the reader's
/// own instructions per message: docs/performance.md, section 3). A
/// panicking handler ends the stream `Failed(HandlerPanicked)`, like a
/// broken connection: the cleanup runs, `wait()` says why, a manager
/// reconnects. Only a panic raised while the
/// handler runs (its call included: a closure handler may panic before it
/// returns its future) is caught; any other panic unwinds on, as it did.
async fn read_loop<R: FrameReader, H: Handler>(
    stream: &StreamInner,
    reader: &mut R,
    handler: &mut H,
) -> StreamEnd {
    // Outside the caught future, so that a handler's panic drops nothing
    // of the client's (the stop signal's registration) while it unwinds:
    // what unwinds is the handler's call and future, as before (and the
    // read's finished future, whose drop does nothing).
    // Not the close signal: the writer stops the reader as it exits.
    let mut stop = pin!(stream.stop_reading.closed());
    let mut in_handler = false;
    // Unwind-safe to assert: after a handler panic nothing the loop left
    // half-done is used again (the handler is never called again, the
    // reader is dropped), and any other panic is resumed.
    let caught = AssertUnwindSafe(read_frames(
        stream,
        reader,
        handler,
        stop.as_mut(),
        &mut in_handler,
    ))
    .catch_unwind()
    .await;
    match caught {
        Ok(end) => end,
        Err(payload) if in_handler => {
            let message = panic_message(&*payload);
            tracing::error!(stream = stream.id, %message, "handler panicked; closing the stream");
            StreamEnd::Failed(PlainArc::new(Error::HandlerPanicked { message }))
        }
        Err(payload) => std::panic::resume_unwind(payload),
    }
}

/// Reads, decodes and hands each frame to the handler until the stream
/// ends; `in_handler` is set while the handler runs.
async fn read_frames<R: FrameReader, H: Handler>(
    stream: &StreamInner,
    reader: &mut R,
    handler: &mut H,
    mut stop: Pin<&mut Closed<'_>>,
    in_handler: &mut bool,
) -> StreamEnd {
    loop {
        // Checked before every read: a handler may have closed the stream.
        if stream.closed.is_closed() {
            return StreamEnd::Closed;
        }
        // The read first; the stop only while the read is pending (and
        // then, once registered, for the price of an atomic load).
        let mut recv = pin!(reader.recv());
        let mut waited = false;
        let next = poll_fn(|cx| match recv.as_mut().poll(cx) {
            Poll::Ready(frame) => Poll::Ready(Some(frame)),
            Poll::Pending => {
                waited = true;
                stop.as_mut().poll(cx).map(|()| None)
            }
        });
        let Some(frame) = next.await else {
            return StreamEnd::Closed;
        };
        // A frame that arrived while the reader was parked may come after a
        // close, which no longer wakes the reader at once (the writer sends
        // its Close frame first): it is not handed to the handler. A frame
        // ready without a wait was checked for just above.
        if waited && stream.closed.is_closed() {
            return StreamEnd::Closed;
        }
        let event = match frame {
            Ok(Received::Frame(Frame::Text(text))) => match Envelope::decode(text.as_str()) {
                Ok(envelope) => Event::Message(envelope),
                Err(error) => {
                    tracing::warn!(stream = stream.id, %error, len = text.len(), "skipping malformed message");
                    Event::Skipped(Skipped::Malformed {
                        error: error.to_string(),
                        len: text.len(),
                    })
                }
            },
            Ok(Received::Frame(Frame::Binary(len))) => {
                tracing::warn!(stream = stream.id, len, "skipping binary frame");
                Event::Skipped(Skipped::Binary { len })
            }
            // The read is polled first, so once this side has asked
            // for the close, the read can still win with the end that close
            // caused (the server's answer to our Close frame): that stream
            // was closed by this side all the same. Without the check, about
            // one local close in ten reported `ServerClosed` over real sockets.
            Ok(Received::End(_)) | Err(_) if stream.closed.is_closed() => {
                return StreamEnd::Closed;
            }
            Ok(Received::End(ServerEnd::Close { code, reason })) => {
                return StreamEnd::ServerClosed { code, reason };
            }
            Ok(Received::End(ServerEnd::NoCloseFrame)) => return StreamEnd::ServerDisconnected,
            Err(error) => {
                tracing::debug!(stream = stream.id, %error, "workspace stream read failed");
                return StreamEnd::Failed(PlainArc::new(error));
            }
        };
        crate::trace_point!("handler called");
        // A panic from here to the reset is the handler's (`read_loop`).
        *in_handler = true;
        handler.handle(event).await;
        *in_handler = false;
    }
}

/// Most queued messages the writer takes per wake-up: it feeds them all
/// and flushes once. The queue's capacity bounds it too.
const WRITE_BATCH: usize = 64;

/// Most full batches fed between two flushes (a burst of 1,024 messages).
const MAX_BATCHES_PER_FLUSH: usize = 16;

/// The text of a panic's payload (`panic!` gives a `&str` or a `String`).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(a panic payload that is not a string)".to_owned())
}

/// The writer's exit, however it ends: stop the reader, the close chain's
/// last link (`StreamInner::stop_reading`), after the Close frame went out.
/// A writer that ended without a close (it unwound, or its task was
/// dropped) closes the stream first, so that `done()` fires and the reader
/// does not report a close this side never asked for.
struct WriterExit<'a> {
    stream: &'a StreamInner,
    /// The loop ended the normal way: the stream was closed.
    closed: bool,
}

impl Drop for WriterExit<'_> {
    fn drop(&mut self) {
        if !self.closed {
            let cause = Error::Transport("the writer task unwound or was dropped".into());
            self.stream.finish(StreamEnd::Failed(PlainArc::new(cause)));
            self.stream.close();
        }
        self.stream.stop_reading.close();
    }
}

async fn run_writer<W: FrameWriter>(stream: &StreamInner, mut writer: W) {
    let mut exit = WriterExit {
        stream,
        closed: false,
    };
    let mut batch = Vec::new();
    // Created once: re-polled only while a write is pending.
    let mut closed = pin!(stream.closed.closed());
    while stream.input.recv_many(&mut batch, WRITE_BATCH).await > 0 {
        // Every message taken out of the queue for this write, over all its
        // batches: what a close abandons is all of them (none was flushed).
        let mut taken = batch.len();
        let write = async {
            // In order; one flush for the lot (one write to the socket
            // instead of one per message). A feed that does not wait still
            // does work (encoding, copying, writing a full buffer out), so
            // the close signal is checked between messages too: a close
            // stops the writer after at most one more message.
            let mut batches = 1;
            loop {
                let full = batch.len() == WRITE_BATCH;
                for envelope in batch.drain(..) {
                    if stream.closed.is_closed() {
                        return Ok(false);
                    }
                    writer.feed(envelope.encode()).await?;
                }
                // A full batch: senders are likely waiting for the room it
                // freed. Let them refill the queue and feed that too before
                // flushing, so a burst costs one flush, not one per batch.
                // A lone message (not a full batch) is flushed at once.
                if !full || batches == MAX_BATCHES_PER_FLUSH {
                    break;
                }
                yield_now().await;
                let more = stream.input.try_recv_many(&mut batch, WRITE_BATCH);
                if more == 0 {
                    break;
                }
                taken += more;
                batches += 1;
            }
            writer.flush().await.map(|()| true)
        };
        // Race the write against the close signal. A peer that stops reading
        // fills the TCP window and the write never completes; closing the
        // queue cannot wake a writer that is inside a write, so without this
        // `Client::close()` hung forever (Go does not: closing the conn
        // unblocks a pending write). The abandoned messages were only queued,
        // never delivered, like the queued input `close` discards. If the
        // write is ready at once the close signal is not even polled.
        let written = match select(pin!(write), closed.as_mut()).await {
            Either::Left((result, _)) => Some(result),
            Either::Right(((), _)) => None,
        };
        match written {
            Some(Ok(true)) => {}
            Some(Err(error)) => {
                tracing::debug!(stream = stream.id, %error, "workspace stream write failed");
                stream.finish(StreamEnd::Failed(PlainArc::new(error)));
                stream.close();
                break;
            }
            Some(Ok(false)) | None => {
                tracing::debug!(
                    stream = stream.id,
                    abandoned = taken,
                    "write abandoned: stream closed"
                );
                break;
            }
        }
    }
    // Every way out of the loop follows a close (the queue's, the signal's,
    // or the one after a failed write).
    exit.closed = true;
    // Bounded by `close_timeout` in the real transport, even if still stuck.
    // The reader is stopped after it (`exit`'s drop).
    writer.close().await;
}

#[cfg(all(test, not(any(wsdrain_loom, wsdrain_shuttle))))]
mod tests {
    use super::*;

    /// A writer that records what it is fed and counts its flushes.
    #[derive(Clone)]
    struct Recording(Arc<crate::sync::Mutex<(Vec<String>, usize)>>);

    impl Default for Recording {
        fn default() -> Self {
            Self(Arc::new(crate::sync::Mutex::new((Vec::new(), 0))))
        }
    }

    impl FrameWriter for Recording {
        async fn feed(&mut self, text: String) -> Result<()> {
            self.0.lock().0.push(text);
            Ok(())
        }

        async fn flush(&mut self) -> Result<()> {
            self.0.lock().1 += 1;
            Ok(())
        }

        async fn close(self) {}
    }

    /// A burst larger than the queue goes out in order with one flush, not
    /// one per queue-full (it was 16 flushes for 1,000 messages).
    #[tokio::test(flavor = "current_thread")]
    async fn a_burst_is_flushed_once_in_order() {
        let stream = Arc::new(StreamInner::new(1, 64));
        let recording = Recording::default();
        let writer = tokio::spawn({
            let (stream, recording) = (stream.clone(), recording.clone());
            async move { run_writer(&stream, recording).await }
        });
        for i in 0..1000 {
            let message = Message::ShellInput {
                data: i.to_string(),
            };
            stream.input.send(Envelope::new(message)).await.unwrap();
        }
        for _ in 0..10_000 {
            let written = {
                let (fed, flushes) = &*recording.0.lock();
                fed.len() == 1000 && *flushes > 0
            };
            if written {
                break;
            }
            tokio::task::yield_now().await;
        }
        stream.close();
        writer.await.unwrap();
        let (fed, flushes) = std::mem::take(&mut *recording.0.lock());
        let data: Vec<String> = fed
            .iter()
            .map(|text| match Envelope::decode(text).unwrap().message {
                Message::ShellInput { data } => data,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        let expected: Vec<String> = (0..1000).map(|i: i32| i.to_string()).collect();
        assert_eq!(data, expected, "every message, in order");
        assert!(flushes <= 2, "{flushes} flushes for one burst");
    }

    /// A burst that never lets the queue run dry is still flushed every
    /// `MAX_BATCHES_PER_FLUSH` batches: what was fed does not wait for the
    /// senders to pause. (Found by the mutation run: a writer that flushed
    /// only once the queue ran dry survived every other test.)
    #[tokio::test(flavor = "current_thread")]
    async fn a_sustained_burst_is_flushed_every_max_batches() {
        let stream = Arc::new(StreamInner::new(1, WRITE_BATCH));
        let recording = Recording::default();
        let total = WRITE_BATCH * MAX_BATCHES_PER_FLUSH * 3;
        // The sender refills the queue while the writer yields between
        // batches (one thread: the writer's yield lets it run).
        let sender = tokio::spawn({
            let stream = stream.clone();
            async move {
                for i in 0..total {
                    let message = Message::ShellInput {
                        data: i.to_string(),
                    };
                    stream.input.send(Envelope::new(message)).await.unwrap();
                }
            }
        });
        let writer = tokio::spawn({
            let (stream, recording) = (stream.clone(), recording.clone());
            async move { run_writer(&stream, recording).await }
        });
        // Bounded: a writer that stopped taking input must fail the test,
        // not hang it.
        tokio::time::timeout(std::time::Duration::from_secs(60), sender)
            .await
            .expect("the writer stopped taking input")
            .unwrap();
        for _ in 0..10_000 {
            if recording.0.lock().0.len() == total {
                break;
            }
            tokio::task::yield_now().await;
        }
        stream.close();
        writer.await.unwrap();
        let (fed, flushes) = std::mem::take(&mut *recording.0.lock());
        assert_eq!(fed.len(), total, "every message");
        assert!(
            flushes >= 3,
            "{flushes} flush(es) for {total} messages that never let the queue run dry"
        );
    }

    /// A reader that gives one `ping` frame, then panics.
    struct PingThenPanic(bool);

    impl FrameReader for PingThenPanic {
        async fn recv(&mut self) -> Result<Received> {
            if std::mem::replace(&mut self.0, true) {
                panic!("reader bug");
            }
            let text = Envelope::new(Message::Ping).encode();
            Ok(Received::Frame(Frame::Text(text.into())))
        }
    }

    /// A handler's panic (in its call or in its future) ends the stream
    /// `Failed(HandlerPanicked)` with the handler's message.
    #[tokio::test(flavor = "current_thread")]
    async fn a_handler_panic_ends_the_read_loop_failed() {
        let stream = StreamInner::new(1, 4);
        let mut in_call = |_: Event| -> std::future::Ready<()> { panic!("handler bug") };
        let end = read_loop(&stream, &mut PingThenPanic(false), &mut in_call).await;
        assert!(
            matches!(&end, StreamEnd::Failed(e) if matches!(&**e, Error::HandlerPanicked { message } if message == "handler bug")),
            "{end:?}"
        );
        let mut in_future = |_: Event| async { panic!("handler future bug") };
        let end = read_loop(&stream, &mut PingThenPanic(false), &mut in_future).await;
        assert!(
            matches!(&end, StreamEnd::Failed(e) if matches!(&**e, Error::HandlerPanicked { message } if message == "handler future bug")),
            "{end:?}"
        );
    }

    /// A panic outside the handler is not taken for the handler's: it
    /// unwinds on out of the read loop (the reader's exit guard reports it),
    /// as it did when only the handler's call was inside `catch_unwind`.
    #[tokio::test(flavor = "current_thread")]
    async fn a_reader_panic_unwinds_out_of_the_read_loop() {
        let stream = StreamInner::new(1, 4);
        let handled = Arc::new(crate::sync::Mutex::new(0));
        let mut handler = {
            let handled = handled.clone();
            move |_: Event| {
                *handled.lock() += 1;
                std::future::ready(())
            }
        };
        let caught = AssertUnwindSafe(read_loop(&stream, &mut PingThenPanic(false), &mut handler))
            .catch_unwind()
            .await;
        let payload = caught.expect_err("the reader's panic must unwind out of read_loop");
        assert_eq!(panic_message(&*payload), "reader bug");
        assert_eq!(*handled.lock(), 1, "the frame before the panic was handled");
    }

    /// A reader fed by a channel: parked in a read until a frame is sent.
    struct Fed(tokio::sync::mpsc::UnboundedReceiver<Received>);

    impl FrameReader for Fed {
        async fn recv(&mut self) -> Result<Received> {
            Ok(self
                .0
                .recv()
                .await
                .unwrap_or(Received::End(ServerEnd::NoCloseFrame)))
        }
    }

    fn ping_frame() -> Received {
        Received::Frame(Frame::Text(Envelope::new(Message::Ping).encode().into()))
    }

    /// The close chain: `close()` does not wake a reader parked in a read
    /// (the writer stops it as it exits), so a frame that arrives in
    /// between must not reach the handler: the stream was closed before it.
    #[tokio::test(flavor = "current_thread")]
    async fn a_frame_that_arrives_after_a_close_is_not_handled() {
        let stream = Arc::new(StreamInner::new(1, 4));
        let (frames, rx) = tokio::sync::mpsc::unbounded_channel();
        let handled = Arc::new(crate::sync::Mutex::new(0));
        let reader = tokio::spawn({
            let (stream, handled) = (stream.clone(), handled.clone());
            async move {
                let mut handler = move |_: Event| {
                    *handled.lock() += 1;
                    std::future::ready(())
                };
                read_loop(&stream, &mut Fed(rx), &mut handler).await
            }
        });
        frames.send(ping_frame()).unwrap();
        while *handled.lock() == 0 {
            tokio::task::yield_now().await;
        }
        // Parked in its next read; close, then a frame arrives.
        tokio::task::yield_now().await;
        stream.close();
        frames.send(ping_frame()).unwrap();
        let end = reader.await.unwrap();
        assert!(matches!(end, StreamEnd::Closed), "{end:?}");
        assert_eq!(*handled.lock(), 1, "the frame after the close was handled");
    }

    /// However the writer ends, its exit stops a reader parked in a read;
    /// a writer that ends without a close (it unwound) closes the stream
    /// and says why, so the reader does not report a close nobody asked for.
    #[tokio::test(flavor = "current_thread")]
    async fn a_writer_exit_stops_the_reader() {
        for closed in [true, false] {
            let stream = Arc::new(StreamInner::new(1, 4));
            let (_frames, rx) = tokio::sync::mpsc::unbounded_channel();
            let reader = tokio::spawn({
                let stream = stream.clone();
                async move {
                    let mut handler = |_: Event| std::future::ready(());
                    read_loop(&stream, &mut Fed(rx), &mut handler).await
                }
            });
            tokio::task::yield_now().await;
            if closed {
                stream.close();
                tokio::task::yield_now().await;
                assert!(
                    !reader.is_finished(),
                    "close() woke the parked reader itself"
                );
            }
            drop(WriterExit {
                stream: &stream,
                closed,
            });
            let end = tokio::time::timeout(std::time::Duration::from_secs(10), reader)
                .await
                .expect("the writer's exit did not stop the reader")
                .unwrap();
            assert!(matches!(end, StreamEnd::Closed), "{end:?}");
            assert!(stream.closed.is_closed());
            assert_eq!(stream.input.close(), 0);
            if !closed {
                assert!(
                    matches!(stream.end.get(), Some(StreamEnd::Failed(_))),
                    "{:?}",
                    stream.end.get()
                );
            }
        }
    }

    /// A writer that takes `ok` messages, then waits forever (a peer that
    /// stopped reading).
    struct StuckAfter(usize);

    impl FrameWriter for StuckAfter {
        async fn feed(&mut self, _text: String) -> Result<()> {
            if self.0 == 0 {
                std::future::pending::<()>().await;
            }
            self.0 -= 1;
            Ok(())
        }

        async fn flush(&mut self) -> Result<()> {
            Ok(())
        }

        async fn close(self) {}
    }

    /// The debug log of a write abandoned at close counts every message the
    /// write took from the queue, over all its batches: it said 64 (the
    /// first batch) for a write of two.
    #[tokio::test(flavor = "current_thread")]
    async fn an_abandoned_write_logs_every_message_it_took() {
        #[derive(Clone, Default)]
        struct Logs(Arc<crate::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Logs {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let logs = Logs::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer({
                let logs = logs.clone();
                move || logs.clone()
            })
            .finish();
        let _default = tracing::subscriber::set_default(subscriber);

        // 200 queued before the writer starts: it takes a full batch of
        // 64, feeds it, takes the next 64 and gets stuck on the 100th.
        let stream = Arc::new(StreamInner::new(1, 1024));
        for i in 0..200 {
            let message = Message::ShellInput {
                data: i.to_string(),
            };
            stream.input.try_send(Envelope::new(message)).unwrap();
        }
        let writer = tokio::spawn({
            let stream = stream.clone();
            async move { run_writer(&stream, StuckAfter(99)).await }
        });
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        stream.close();
        writer.await.unwrap();
        let logs = String::from_utf8(logs.0.lock().clone()).unwrap();
        let line = logs
            .lines()
            .find(|line| line.contains("write abandoned"))
            .unwrap_or_else(|| panic!("no abandoned write in the logs:\n{logs}"));
        assert!(line.contains("abandoned=128"), "{line}");
        assert!(logs.contains("discarded=72"), "{logs}");
    }
}

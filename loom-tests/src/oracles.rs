//! The harness's own oracles, judged by the scenarios in every explored
//! execution (the client's probe judges drain-barrier, no-orphan and
//! identity from inside):
//!
//! - **no-zombie**: after a stream ends, by any cause, the client forgets
//!   it, its `done()` and `wait()` resolve, its input methods fail, and a
//!   new `stream_workspace` can succeed ([`no_zombie`], [`Watched`]);
//! - **ready-at-barrier**: every stream's `wait()` is ready when
//!   `Client::close()` returns ([`ready_at_barrier`]);
//! - **input-honesty**: `Ok` from an input method means the message was
//!   queued and is delivered in order or discarded with the stream's end,
//!   never delivered after a later one; a refused message is never
//!   delivered ([`input_honesty`]);
//! - **manager-promise**: a managed stream that ends for any reason but
//!   `stop()` is reconnected or the manager says why not.
//!
//! A promise that something *eventually* happens (a reconnect, a `wait()`
//! that resolves) is checked by waiting for it inside [`expecting`]: if the
//! execution deadlocks there, the checker's deadlock report is named after
//! the broken promise instead of plain liveness.

use std::sync::Mutex;

use wsdrain::probe::Oracle;

/// The promise the execution is waiting on, if any.
static EXPECTING: Mutex<Option<(Oracle, String)>> = Mutex::new(None);

/// Forget any promise left by a previous execution.
pub fn reset() {
    *EXPECTING.lock().unwrap_or_else(|p| p.into_inner()) = None;
}

/// Run `wait` (which blocks until `what` happens) as the promise of
/// `oracle`: a deadlock inside it is reported as that oracle's violation.
pub fn expecting<T>(oracle: Oracle, what: &str, wait: impl FnOnce() -> T) -> T {
    *EXPECTING.lock().unwrap_or_else(|p| p.into_inner()) = Some((oracle, what.to_owned()));
    let out = wait();
    reset();
    out
}

/// A checker's failure (its oracle, if typed, and its message), named after
/// the promise being waited on when it is a deadlock there.
pub fn explain(oracle: Option<Oracle>, message: String) -> (Option<Oracle>, String) {
    let pending = EXPECTING
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .or_else(wsdrain_model::exec::pending_promise);
    match (pending, oracle.or_else(|| Oracle::classify(&message))) {
        (Some((expected, what)), Some(Oracle::Liveness)) => (
            Some(expected),
            format!(
                "oracle[{expected}] violated: {what} never happened (the execution deadlocked \
                 waiting for it: {message})"
            ),
        ),
        _ if is_causality(&message) => (
            Some(Oracle::DrainBarrier),
            format!(
                "oracle[{}] violated: a barrier returned without synchronising with a task's exit \
                 (the exit does not happen before the return, so what the task wrote need not be \
                 visible to the caller: a missing Acquire or Release?); the last step names the \
                 task. loom: {}",
                Oracle::DrainBarrier,
                message.trim_end()
            ),
        ),
        _ => (oracle, message),
    }
}

/// Whether loom failed the execution on a happens-before witness
/// (`wsdrain::sync::Witness`, the client's only loom cell): its panic is
/// raised inside loom, so its location says nothing and is left out.
pub fn is_causality(message: &str) -> bool {
    message.contains("Causality violation")
}

/// Whether S1-S8 check the oracles of issue 10 too (the default: they are
/// checked in every execution where they apply). `WSDRAIN_ORACLES=before`
/// judges S1-S8 as before that issue (probe and end-of-execution checks
/// only): the "before" judge of the mutation run (`cargo xtask mutants`).
pub fn everywhere() -> bool {
    static EVERYWHERE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *EVERYWHERE.get_or_init(|| std::env::var("WSDRAIN_ORACLES").as_deref() != Ok("before"))
}

/// Fail the execution for `oracle`.
pub fn violated(oracle: Oracle, message: impl std::fmt::Display) -> ! {
    std::panic::panic_any(wsdrain::probe::Violation {
        oracle,
        message: format!("oracle[{oracle}] violated: {message}"),
    })
}

#[cfg(any(wsdrain_loom, wsdrain_shuttle))]
pub use checks::*;

#[cfg(any(wsdrain_loom, wsdrain_shuttle))]
mod checks {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use wsdrain::probe::Oracle;
    use wsdrain::sync::CloseSignal;
    use wsdrain::transport::{MemoryTransport, ServerConn};
    use wsdrain::{Client, Error, Event, Handler, StreamEnd, WorkspaceStream};

    use super::violated;

    /// A handler that fires a signal when it is dropped, which is when its
    /// stream's reader task has finished (returned or unwound), after the
    /// reader's exit cleanup.
    pub struct Watched<H> {
        inner: H,
        gone: CloseSignal,
    }

    /// `inner`, and the signal fired when the reader that owns it is gone.
    pub fn watched<H: Handler>(inner: H) -> (Watched<H>, CloseSignal) {
        let gone = CloseSignal::new();
        (
            Watched {
                inner,
                gone: gone.clone(),
            },
            gone,
        )
    }

    impl<H: Handler> Handler for Watched<H> {
        fn handle(&mut self, event: Event) -> impl Future<Output = ()> + Send {
            self.inner.handle(event)
        }
    }

    impl<H> Drop for Watched<H> {
        fn drop(&mut self) {
            self.gone.close();
        }
    }

    /// Whether `future` is ready at its first poll.
    pub fn ready_now<F: Future>(future: F) -> Option<F::Output> {
        let mut cx = Context::from_waker(Waker::noop());
        match pin!(future).poll(&mut cx) {
            Poll::Ready(out) => Some(out),
            Poll::Pending => None,
        }
    }

    /// no-zombie, for a stream whose reader has finished: the client no
    /// longer holds it, `done()` has fired, and input is refused. (Its
    /// `wait()` resolving and a new stream succeeding are checked by the
    /// scenario, which owns the order of its steps.)
    pub fn no_zombie(client: &Client<MemoryTransport>, stream: &WorkspaceStream) {
        if client
            .workspace_stream()
            .is_some_and(|current| current.id() == stream.id())
        {
            violated(
                Oracle::NoZombie,
                format!(
                    "stream {} ended (its reader finished) but the client still holds it: \
                     every later stream_workspace fails AlreadyConnected",
                    stream.id()
                ),
            );
        }
        if !stream.is_closed() {
            violated(
                Oracle::NoZombie,
                format!(
                    "stream {} ended but done() never fired: its writer stays parked",
                    stream.id()
                ),
            );
        }
        if let Some(Ok(())) = ready_now(stream.ping()) {
            violated(
                Oracle::NoZombie,
                format!("stream {} ended but ping() still answers Ok", stream.id()),
            );
        }
    }

    /// A `wait()` that reports a handler's panic.
    pub fn ended_by_panic(stream: &WorkspaceStream, end: &StreamEnd) {
        if !matches!(end, StreamEnd::Failed(e) if matches!(**e, Error::HandlerPanicked { .. })) {
            violated(
                Oracle::NoZombie,
                format!(
                    "stream {} ended by a handler panic but wait() says {end:?}",
                    stream.id()
                ),
            );
        }
    }

    /// ready-at-barrier: right after `Client::close()` returned.
    /// A stream that only this side closed (the server ended nothing) ends
    /// `StreamEnd::Closed`, also when the server's answer to the close
    /// reached its reader first (the reference semantics: "closed by this
    /// side").
    pub fn ended_as_closed(stream: &WorkspaceStream) {
        match ready_now(stream.wait()) {
            None | Some(StreamEnd::Closed) => {}
            Some(end) => violated(
                Oracle::Model,
                format!(
                    "stream {} was closed by this side only, but wait() says {end:?}",
                    stream.id()
                ),
            ),
        }
    }

    pub fn ready_at_barrier(streams: &[&WorkspaceStream]) {
        for stream in streams {
            if ready_now(stream.wait()).is_none() {
                violated(
                    Oracle::ReadyAtBarrier,
                    format!(
                        "Client::close() returned but stream {}'s wait() is not ready",
                        stream.id()
                    ),
                );
            }
        }
    }

    /// Right after a `Client::close()` from outside returned: every stream
    /// the execution holds is ready at the barrier (ready-at-barrier) and
    /// is no zombie (its end is complete: forgotten by the client, `done()`
    /// fired, input refused). Checked unless [`super::everywhere`] is off.
    pub fn after_close(client: &Client<MemoryTransport>, streams: &[&WorkspaceStream]) {
        if !super::everywhere() {
            return;
        }
        ready_at_barrier(streams);
        for stream in streams {
            no_zombie(client, stream);
        }
    }

    /// input-honesty, at the end of an execution (every input call has
    /// returned, the client is closed): `sent` is each input's payload and
    /// whether its call answered `Ok`; what the server received on `conn`
    /// must be, in order, a subsequence of the accepted ones.
    pub fn input_honesty(conn: &ServerConn, sent: &[(&str, bool)]) {
        let mut delivered = Vec::new();
        while let Some(text) = ready_now(conn.recv()).flatten() {
            delivered.push(text);
        }
        let mut next = 0;
        for text in &delivered {
            let Some(at) = sent[next..]
                .iter()
                .position(|(payload, _)| text.contains(payload))
            else {
                violated(
                    Oracle::InputHonesty,
                    format!(
                        "the server received {text:?} after a later message, or one never sent"
                    ),
                );
            };
            let (payload, ok) = sent[next + at];
            if !ok {
                violated(
                    Oracle::InputHonesty,
                    format!("input {payload:?} was refused (StreamClosed) yet delivered"),
                );
            }
            next += at + 1;
        }
    }
}

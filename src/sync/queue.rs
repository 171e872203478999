//! A bounded multi-producer, single-consumer async queue that can be closed.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use super::Mutex;
use super::waiters::{Waiters, wake_all};

/// A bounded FIFO between many senders and one receiver (the stream's
/// writer task), like Go's buffered `chan` or tokio's `mpsc::channel`, plus
/// an explicit [`close`](Queue::close).
///
/// - [`send`](Queue::send) waits while the queue is full (backpressure) and
///   fails with the item once the queue is closed: nothing is lost silently.
/// - [`recv`](Queue::recv) yields items in order and `None` once closed and
///   empty.
/// - [`close`](Queue::close) is idempotent; it wakes the receiver and every
///   blocked sender and returns how many queued items it discarded.
/// - [`close_sending`](Queue::close_sending) closes it for senders only:
///   the receiver still gets what was queued, then `None` (a connection's
///   write side closing: what was written is not taken back).
///
/// Share it behind an `Arc`.
#[derive(Debug)]
pub struct Queue<T> {
    state: Mutex<State<T>>,
}

#[derive(Debug)]
struct State<T> {
    items: VecDeque<T>,
    capacity: usize,
    closed: bool,
    receiver: Option<Waker>,
    senders: Waiters,
}

impl<T> State<T> {
    /// Move up to `limit` items into `buf`, in order; returns how many, and
    /// the wakers of as many blocked senders as slots were freed (to wake
    /// once the lock is released).
    fn take_into(&mut self, buf: &mut Vec<T>, limit: usize) -> (usize, Vec<Waker>) {
        let n = self.items.len().min(limit);
        if n == 0 {
            return (0, Vec::new());
        }
        buf.extend(self.items.drain(..n));
        let senders = (0..n).map_while(|_| self.senders.take_one()).collect();
        (n, senders)
    }
}

/// Error of [`Queue::send`]: the queue was closed; the item comes back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("queue closed")]
pub struct SendError<T>(pub T);

impl<T> Queue<T> {
    /// A new, open queue holding at most `capacity` items (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self::with_items(capacity, None)
    }

    /// A new, open queue that already holds `items` (no synchronisation
    /// step: nobody else can see the queue yet).
    /// Items beyond the capacity are kept; sends wait until they drain.
    pub fn with_items(capacity: usize, items: impl IntoIterator<Item = T>) -> Self {
        let capacity = capacity.max(1);
        let mut queued = VecDeque::with_capacity(capacity.min(64));
        queued.extend(items);
        Self {
            state: Mutex::new(State {
                items: queued,
                capacity,
                closed: false,
                receiver: None,
                senders: Waiters::default(),
            }),
        }
    }

    /// Enqueue `item`, waiting for room; fails once the queue is closed.
    pub fn send(&self, item: T) -> SendFuture<'_, T> {
        SendFuture {
            queue: self,
            item: Some(item),
            key: None,
        }
    }

    /// Enqueue without waiting: `Err` with the item if full or closed.
    pub fn try_send(&self, item: T) -> Result<(), SendError<T>> {
        let mut state = self.state.lock();
        if state.closed || state.items.len() >= state.capacity {
            return Err(SendError(item));
        }
        state.items.push_back(item);
        let receiver = state.receiver.take();
        drop(state);
        if let Some(waker) = receiver {
            waker.wake();
        }
        Ok(())
    }

    /// The next item, or `None` once the queue is closed and empty. Single consumer:
    /// a second concurrent receiver would steal the first one's wake-ups.
    pub fn recv(&self) -> Recv<'_, T> {
        Recv { queue: self }
    }

    /// Wait for items, then move up to `limit` of them (at least 1) into
    /// `buf` in order, in one critical section; resolves to how many were
    /// moved, or 0 once the queue is closed and empty (like tokio's `recv_many`).
    /// Single consumer, like [`recv`](Queue::recv).
    pub fn recv_many<'a>(&'a self, buf: &'a mut Vec<T>, limit: usize) -> RecvMany<'a, T> {
        RecvMany {
            queue: self,
            buf,
            limit: limit.max(1),
        }
    }

    /// Move up to `limit` queued items (at least 1) into `buf` without
    /// waiting; returns how many were moved (0 if none is queued, or once
    /// the queue is closed and empty). Single consumer, like [`recv`](Queue::recv).
    pub fn try_recv_many(&self, buf: &mut Vec<T>, limit: usize) -> usize {
        let mut state = self.state.lock();
        let (n, senders) = state.take_into(buf, limit.max(1));
        drop(state);
        wake_all(senders);
        n
    }

    /// Close the queue: later sends fail, the receiver gets `None`, queued
    /// items are dropped. Returns the number of items discarded (0 on the
    /// second and later calls).
    #[cfg_attr(any(wsdrain_loom, wsdrain_shuttle), track_caller)]
    pub fn close(&self) -> usize {
        crate::trace_point!("Queue::close");
        self.shut(true).len()
    }

    /// Close the queue for senders only: later sends fail and blocked
    /// senders get their items back, as after [`close`](Queue::close), but
    /// the receiver still gets every queued item, in order, before `None`.
    /// A later `close` discards what is left.
    #[cfg_attr(any(wsdrain_loom, wsdrain_shuttle), track_caller)]
    pub fn close_sending(&self) {
        crate::trace_point!("Queue::close");
        self.shut(false);
    }

    /// Mark the queue closed (one critical section), waking the receiver
    /// and every blocked sender the first time; with `discard`, take the
    /// queued items out (returned, to be dropped outside the lock).
    fn shut(&self, discard: bool) -> VecDeque<T> {
        let (discarded, receiver, senders) = {
            let mut state = self.state.lock();
            let discarded = if discard {
                std::mem::take(&mut state.items)
            } else {
                VecDeque::new()
            };
            if state.closed {
                // Nobody is parked on a closed queue: nothing to wake.
                return discarded;
            }
            state.closed = true;
            (discarded, state.receiver.take(), state.senders.take_all())
        };
        // Wake and drop outside the lock.
        if let Some(waker) = receiver {
            waker.wake();
        }
        wake_all(senders);
        discarded
    }

    /// Whether [`close`](Queue::close) or [`close_sending`](Queue::close_sending)
    /// has run.
    pub fn is_closed(&self) -> bool {
        self.state.lock().closed
    }
}

/// Future returned by [`Queue::send`].
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct SendFuture<'a, T> {
    queue: &'a Queue<T>,
    item: Option<T>,
    key: Option<u64>,
}

impl<T> Unpin for SendFuture<'_, T> {}

impl<T> Future for SendFuture<'_, T> {
    type Output = Result<(), SendError<T>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let item = this
            .item
            .take()
            .expect("SendFuture polled after completion");
        let mut state = this.queue.state.lock();
        if state.closed {
            crate::trace_point!("Queue::send refused (closed)");
            // `close` took every parked waker: ours is gone.
            this.key = None;
            return Poll::Ready(Err(SendError(item)));
        }
        if state.items.len() < state.capacity {
            if let Some(key) = this.key.take() {
                state.senders.remove(key);
            }
            state.items.push_back(item);
            let receiver = state.receiver.take();
            drop(state);
            if let Some(waker) = receiver {
                waker.wake();
            }
            return Poll::Ready(Ok(()));
        }
        crate::trace_point!("Queue::send parks (full)");
        this.key = Some(state.senders.park(this.key, cx.waker()));
        this.item = Some(item);
        Poll::Pending
    }
}

impl<T> Drop for SendFuture<'_, T> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            let waker = {
                let mut state = self.queue.state.lock();
                state.senders.remove(key);
                // We may have been woken for a free slot we will not use:
                // pass the wake-up on so no other sender is stranded.
                (state.items.len() < state.capacity)
                    .then(|| state.senders.take_one())
                    .flatten()
            };
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }
}

/// Future returned by [`Queue::recv`].
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct Recv<'a, T> {
    queue: &'a Queue<T>,
}

impl<T> Future for Recv<'_, T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut state = self.queue.state.lock();
        // Items first: after `close` there are none, after `close_sending`
        // they are still the receiver's.
        if let Some(item) = state.items.pop_front() {
            // One slot freed: wake one blocked sender.
            let sender = state.senders.take_one();
            drop(state);
            if let Some(waker) = sender {
                waker.wake();
            }
            return Poll::Ready(Some(item));
        }
        if state.closed {
            return Poll::Ready(None);
        }
        match &mut state.receiver {
            Some(parked) if parked.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

/// Future returned by [`Queue::recv_many`].
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct RecvMany<'a, T> {
    queue: &'a Queue<T>,
    buf: &'a mut Vec<T>,
    limit: usize,
}

impl<T> Future for RecvMany<'_, T> {
    type Output = usize;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        let this = self.get_mut();
        let mut state = this.queue.state.lock();
        // Items first, as in `Recv`.
        let (n, senders) = state.take_into(this.buf, this.limit);
        if n > 0 {
            drop(state);
            wake_all(senders);
            return Poll::Ready(n);
        }
        if state.closed {
            return Poll::Ready(0);
        }
        match &mut state.receiver {
            Some(parked) if parked.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

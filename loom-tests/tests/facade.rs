//! The sync facade's compound primitives, model-checked directly: the
//! `WaitGroup` releases its waiter only after every `done`, a `CloseSignal`
//! wakes every waiter, a `Queue` keeps order, applies backpressure and
//! releases blocked senders on close. Small models: 2-3 threads.
#![cfg(any(wsdrain_loom, wsdrain_shuttle))]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Wake, Waker};

use wsdrain::sync::atomic::{AtomicUsize, Ordering};
use wsdrain::sync::{Arc, CloseSignal, Queue, SendError, WaitGroup, block_on, model_thread};

fn model(f: impl Fn() + Send + Sync + 'static) {
    wsdrain_loom_tests::small_model::check(3, 2_000, f);
}

#[test]
fn wait_group_waits_for_every_done() {
    model(|| {
        let wg = Arc::new(WaitGroup::new());
        let finished = Arc::new(AtomicUsize::new(0));
        wg.add(2);
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let (wg, finished) = (wg.clone(), finished.clone());
                model_thread(move || {
                    finished.fetch_add(1, Ordering::Relaxed);
                    wg.done();
                })
            })
            .collect();
        block_on(wg.wait());
        // `done` releases, `wait` acquires: both increments are visible.
        assert_eq!(finished.load(Ordering::Relaxed), 2);
        for worker in workers {
            worker.join().unwrap();
        }
    });
}

#[test]
fn wait_group_waiter_and_late_done() {
    model(|| {
        let wg = Arc::new(WaitGroup::new());
        wg.add(1);
        let waiter = {
            let wg = wg.clone();
            model_thread(move || block_on(wg.wait()))
        };
        wg.done();
        waiter.join().unwrap();
        assert_eq!(wg.count(), 0);
    });
}

#[test]
#[should_panic(expected = "WaitGroup: negative counter")]
fn wait_group_negative_counter_panics() {
    model(|| {
        WaitGroup::new().done();
    });
}

#[test]
fn close_signal_wakes_every_waiter() {
    model(|| {
        let signal = CloseSignal::new();
        let waiter = {
            let signal = signal.clone();
            model_thread(move || block_on(signal.closed()))
        };
        assert!(signal.close());
        assert!(!signal.close(), "close is idempotent");
        block_on(signal.closed());
        waiter.join().unwrap();
    });
}

/// `is_closed()` returning `true` publishes what the closer wrote before
/// `close()` (its Release and Acquire, which no scenario depends on: every
/// read after it in the client is of state under a lock). loom explores
/// the stale read of `written` if either side is weakened.
#[test]
fn a_closed_signal_shows_what_the_closer_wrote() {
    model(|| {
        let signal = CloseSignal::new();
        let written = Arc::new(AtomicUsize::new(0));
        let closer = {
            let (signal, written) = (signal.clone(), written.clone());
            model_thread(move || {
                written.store(1, Ordering::Relaxed);
                signal.close();
            })
        };
        if signal.is_closed() {
            assert_eq!(
                written.load(Ordering::Relaxed),
                1,
                "closed, yet the closer's write is not visible"
            );
        }
        block_on(signal.closed());
        assert_eq!(
            written.load(Ordering::Relaxed),
            1,
            "woken, yet the closer's write is not visible"
        );
        closer.join().unwrap();
    });
}

#[test]
fn queue_keeps_order_and_releases_senders_on_close() {
    model(|| {
        let queue = Arc::new(Queue::new(1));
        let sender = {
            let queue = queue.clone();
            model_thread(move || {
                let first = block_on(queue.send(1));
                let second = block_on(queue.send(2)); // may wait for room
                (first, second)
            })
        };
        let got = block_on(queue.recv());
        assert_eq!(got, Some(1), "FIFO");
        assert!(!queue.is_closed());
        queue.close();
        assert!(queue.is_closed());
        let (first, second) = sender.join().unwrap();
        assert!(first.is_ok());
        // The second send either got in before close (then was discarded)
        // or was refused with its item: never lost silently, never stuck.
        if let Err(error) = second {
            assert_eq!(error.0, 2);
        }
        assert_eq!(block_on(queue.recv()), None);
    });
}

#[test]
fn queue_recv_many_takes_in_order_and_frees_room() {
    model(|| {
        let queue = Arc::new(Queue::new(2));
        let sender = {
            let queue = queue.clone();
            model_thread(move || {
                for i in 1..=3 {
                    // The third waits for room a `recv_many` frees.
                    block_on(queue.send(i)).unwrap();
                }
            })
        };
        let mut got = Vec::new();
        while got.len() < 3 {
            let n = block_on(queue.recv_many(&mut got, 8));
            assert!(n > 0, "open queue: recv_many waits for an item");
        }
        assert_eq!(got, [1, 2, 3], "FIFO, nothing lost or doubled");
        sender.join().unwrap();
        queue.close();
        assert_eq!(block_on(queue.recv_many(&mut got, 8)), 0, "closed");
    });
}

#[test]
fn close_signal_polled_again_while_parked_still_wakes() {
    model(|| {
        let signal = CloseSignal::new();
        let waiter = {
            let signal = signal.clone();
            model_thread(move || {
                block_on(async {
                    let mut closed = std::pin::pin!(signal.closed());
                    // A first poll may park; the await polls again with the
                    // same waker (the lock-free re-poll) and must still
                    // see the close.
                    std::future::poll_fn(|cx| {
                        let _ = closed.as_mut().poll(cx);
                        std::task::Poll::Ready(())
                    })
                    .await;
                    closed.await
                })
            })
        };
        signal.close();
        waiter.join().unwrap();
    });
}

/// A waker that records that it was woken (plain `std`: the models do not
/// need to see it).
#[derive(Default)]
struct Woken(std::sync::atomic::AtomicBool);

impl Wake for Woken {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Woken {
    fn new() -> (std::sync::Arc<Woken>, Waker) {
        let woken = std::sync::Arc::new(Woken::default());
        (woken.clone(), Waker::from(woken))
    }

    fn was_woken(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A wait polled again by another task (a future moved between tasks, or
/// polled from a new `select`) must wake that task, not the first one.
/// (Found by the mutation run: keeping the first waker survived every
/// scenario, whose futures never change task.)
#[test]
fn close_signal_wakes_the_waker_of_the_latest_poll() {
    // On a thread of its own, next to another step (shuttle's PCT wants
    // concurrency to explore).
    model(|| {
        let body = model_thread(|| {
            let signal = CloseSignal::new();
            let (_, first) = Woken::new();
            let (latest, second) = Woken::new();
            let mut closed = pin!(signal.closed());
            assert!(
                closed
                    .as_mut()
                    .poll(&mut Context::from_waker(&first))
                    .is_pending()
            );
            assert!(
                closed
                    .as_mut()
                    .poll(&mut Context::from_waker(&second))
                    .is_pending()
            );
            signal.close();
            assert!(latest.was_woken(), "the latest poll's waker was not woken");
        });
        CloseSignal::new().close();
        body.join().unwrap();
    });
}

/// A wait dropped before the close takes its waker out: a loop that
/// selects on `closed()` must not grow the signal's waiter list. (Found by
/// the mutation run: a drop that leaves the waker parked survived every
/// scenario; it costs memory, not behaviour.)
#[test]
fn a_dropped_wait_leaves_no_waker_behind() {
    // On a thread of its own, next to another step (shuttle's PCT wants
    // concurrency to explore).
    model(|| {
        let body = model_thread(|| {
            let signal = CloseSignal::new();
            let (_, waker) = Woken::new();
            for _ in 0..3 {
                let mut closed = pin!(signal.closed());
                assert!(
                    closed
                        .as_mut()
                        .poll(&mut Context::from_waker(&waker))
                        .is_pending()
                );
                // (So that the check below can see a waker left behind.)
                assert_eq!(signal.parked(), 1, "a pending wait parks its waker");
            }
            assert_eq!(signal.parked(), 0, "dropped waits left their wakers parked");
        });
        CloseSignal::new().close();
        body.join().unwrap();
    });
}

/// A registered wait that is dropped (cancelled) takes itself out of the
/// group. (Found by the mutation run: a drop that stays registered
/// survived every scenario, none of which cancels a wait.)
#[test]
fn a_cancelled_wait_group_wait_unregisters() {
    // On a thread of its own, next to another step (shuttle's PCT wants
    // concurrency to explore).
    model(|| {
        let body = model_thread(|| {
            let wg = WaitGroup::new();
            wg.add(1);
            let (_, waker) = Woken::new();
            {
                let mut wait = pin!(wg.wait());
                assert!(
                    wait.as_mut()
                        .poll(&mut Context::from_waker(&waker))
                        .is_pending()
                );
                assert_eq!(wg.waiting(), 1);
            }
            assert_eq!(wg.waiting(), 0, "a cancelled wait stayed registered");
            wg.done();
        });
        CloseSignal::new().close();
        body.join().unwrap();
    });
}

/// A wait released (the counter reached zero) and dropped before it was
/// polled again leaves the group sound: it is reused as usual. (Found by
/// the mutation run: a drop that took out a released waiter survived.)
#[test]
fn a_wait_dropped_after_its_release_leaves_the_group_sound() {
    // On a thread of its own, next to another step (shuttle's PCT wants
    // concurrency to explore).
    model(|| {
        let body = model_thread(|| {
            let wg = WaitGroup::new();
            wg.add(1);
            let (woken, waker) = Woken::new();
            {
                let mut wait = pin!(wg.wait());
                assert!(
                    wait.as_mut()
                        .poll(&mut Context::from_waker(&waker))
                        .is_pending()
                );
                wg.done();
                assert!(woken.was_woken(), "the release wakes the waiter");
            }
            assert_eq!((wg.count(), wg.waiting()), (0, 0));
            wg.add(1);
            wg.done();
            block_on(wg.wait());
        });
        CloseSignal::new().close();
        body.join().unwrap();
    });
}

/// Misuse is reported to the caller who made it, as Go's runtime does: an
/// `add` from zero while a waiter is still registered (here it races the
/// `done` that releases the waiter) panics in that `add` ("add called
/// concurrently with wait") whenever the release sees it too. (Found by the
/// mutation run: an `add` whose check never fired survived every scenario,
/// none of which misuses a group; only the releaser panicked then.)
/// shuttle only: the misuse panics are caught inside the modelled threads.
#[cfg(all(wsdrain_shuttle, not(wsdrain_loom)))]
#[test]
fn an_add_racing_a_release_panics_in_the_add() {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::task::Poll;

    /// Whether `f` panicked (with a `WaitGroup` message: nothing else may).
    fn misuse(f: impl FnOnce()) -> bool {
        let Err(payload) = catch_unwind(AssertUnwindSafe(f)) else {
            return false;
        };
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        assert!(message.contains("WaitGroup"), "unexpected panic: {message}");
        true
    }

    model(|| {
        let wg = Arc::new(WaitGroup::new());
        let give_up = CloseSignal::new();
        wg.add(1);
        // Waits until released, or until main gives up (a release that
        // panicked never comes).
        let waiter = {
            let (wg, give_up) = (wg.clone(), give_up.clone());
            model_thread(move || {
                let mut wait = pin!(wg.wait());
                let mut gave_up = pin!(give_up.closed());
                misuse(|| {
                    block_on(std::future::poll_fn(|cx| {
                        if wait.as_mut().poll(cx).is_ready() || gave_up.as_mut().poll(cx).is_ready()
                        {
                            Poll::Ready(())
                        } else {
                            Poll::Pending
                        }
                    }))
                })
            })
        };
        let adder = {
            let wg = wg.clone();
            model_thread(move || misuse(|| wg.add(1)))
        };
        let released_into_an_add = misuse(|| wg.done());
        let add_panicked = adder.join().unwrap();
        give_up.close();
        waiter.join().unwrap();
        if released_into_an_add {
            assert!(
                add_panicked,
                "the release saw the add that raced it, but the add itself did not panic"
            );
        }
    });
}

/// `try_send` refuses, handing the item back, when the queue is full and
/// once it is closed. (Found by the mutation run: a `try_send` that refused
/// only when full *and* closed survived every scenario; only the in-memory
/// server uses it.)
#[test]
fn try_send_refuses_when_full_or_closed() {
    // On a thread of its own, next to another step (shuttle's PCT wants
    // concurrency to explore).
    model(|| {
        let body = model_thread(|| {
            let queue = Queue::new(1);
            assert_eq!(queue.try_send(1), Ok(()));
            assert_eq!(queue.try_send(2), Err(SendError(2)), "full");
            assert_eq!(block_on(queue.recv()), Some(1));
            queue.close();
            assert_eq!(queue.try_send(3), Err(SendError(3)), "closed");
        });
        CloseSignal::new().close();
        body.join().unwrap();
    });
}

/// A full queue makes `send` wait: it holds `capacity` items, not one
/// more. (Found by the mutation run: a send that admitted one item over
/// the capacity survived every scenario.)
#[test]
fn send_waits_while_the_queue_is_full() {
    // On a thread of its own, next to another step (shuttle's PCT wants
    // concurrency to explore).
    model(|| {
        let body = model_thread(|| {
            let queue = Queue::new(1);
            block_on(queue.send(1)).unwrap();
            let (_, waker) = Woken::new();
            let mut second = pin!(queue.send(2));
            assert!(
                second
                    .as_mut()
                    .poll(&mut Context::from_waker(&waker))
                    .is_pending(),
                "a send into a full queue of capacity 1 went through"
            );
        });
        CloseSignal::new().close();
        body.join().unwrap();
    });
}

/// A sender woken for a free slot and then dropped (cancelled) passes the
/// wake-up on: the next parked sender is not stranded. (Found by the
/// mutation run: a drop that kept the wake-up survived every scenario,
/// none of which cancels a send.)
#[test]
fn a_cancelled_woken_sender_passes_the_wake_up_on() {
    // On a thread of its own, next to another step (shuttle's PCT wants
    // concurrency to explore).
    model(|| {
        let body = model_thread(|| {
            let queue = Queue::new(1);
            block_on(queue.send(0)).unwrap();
            let (first_woken, first_waker) = Woken::new();
            let (second_woken, second_waker) = Woken::new();
            let mut first = Box::pin(queue.send(1));
            let mut second = pin!(queue.send(2));
            assert!(
                first
                    .as_mut()
                    .poll(&mut Context::from_waker(&first_waker))
                    .is_pending()
            );
            assert!(
                second
                    .as_mut()
                    .poll(&mut Context::from_waker(&second_waker))
                    .is_pending()
            );
            // A slot frees up: the oldest parked sender is woken ...
            assert_eq!(block_on(queue.recv()), Some(0));
            assert!(first_woken.was_woken() && !second_woken.was_woken());
            // ... and gives up without sending: the next one must hear of it.
            drop(first);
            assert!(
                second_woken.was_woken(),
                "the cancelled sender kept the wake-up of the free slot"
            );
            assert!(
                second
                    .as_mut()
                    .poll(&mut Context::from_waker(&second_waker))
                    .is_ready()
            );
        });
        CloseSignal::new().close();
        body.join().unwrap();
    });
}

/// A receive polled again from another task (a future moved between
/// tasks) must wake that task when an item comes, not the first one; for
/// `recv` and `recv_many` alike. (Found by the mutation run: a receiver
/// that kept its first waker survived every scenario, whose receivers never
/// change task.)
#[test]
fn a_receive_wakes_the_waker_of_its_latest_poll() {
    // On a thread of its own, next to another step (shuttle's PCT wants
    // concurrency to explore).
    model(|| {
        let body = model_thread(|| {
            let queue = Queue::new(2);
            for many in [false, true] {
                let (first_woken, first) = Woken::new();
                let (latest_woken, latest) = Woken::new();
                let mut buf = Vec::new();
                let mut recv: std::pin::Pin<Box<dyn Future<Output = Option<usize>>>> = if many {
                    Box::pin(async {
                        let n = queue.recv_many(&mut buf, 2).await;
                        buf.first().copied().filter(|_| n > 0)
                    })
                } else {
                    Box::pin(queue.recv())
                };
                for waker in [&first, &latest] {
                    assert!(
                        recv.as_mut()
                            .poll(&mut Context::from_waker(waker))
                            .is_pending()
                    );
                }
                queue.try_send(7).unwrap();
                assert!(
                    latest_woken.was_woken() && !first_woken.was_woken(),
                    "recv_many: {many}: the item woke the first poll's task, not the latest"
                );
                drop(recv);
                assert_eq!(queue.try_recv_many(&mut Vec::new(), 2), 1);
            }
        });
        CloseSignal::new().close();
        body.join().unwrap();
    });
}

/// `close_sending` closes a queue for senders only: what was queued is
/// still received, in order, then `None`; a later send fails with its
/// item. (The in-memory connection's write side: before it, a client that
/// closed took back what it had written, so the input-honesty checks made
/// after `Client::close()` saw nothing and could not fire.)
#[test]
fn close_sending_keeps_what_was_queued_for_the_receiver() {
    model(|| {
        let queue = Arc::new(Queue::new(2));
        let sender = {
            let queue = queue.clone();
            model_thread(move || {
                block_on(queue.send(1)).unwrap();
                block_on(queue.send(2)).unwrap();
                queue.close_sending();
                assert_eq!(block_on(queue.send(3)), Err(SendError(3)));
            })
        };
        let mut got = Vec::new();
        while let Some(item) = block_on(queue.recv()) {
            got.push(item);
        }
        assert_eq!(got, [1, 2], "every item sent before, in order, then None");
        sender.join().unwrap();
        assert_eq!(queue.close(), 0, "nothing left to discard");
    });
}

/// After `close_sending`, `recv_many` still drains, and a `close` discards
/// what the receiver has not taken; racing it, the receiver gets a prefix
/// and `close` the rest, nothing lost or doubled.
#[test]
fn close_after_close_sending_discards_the_rest() {
    model(|| {
        let queue = Arc::new(Queue::with_items(4, [1, 2, 3]));
        queue.close_sending();
        let closer = {
            let queue = queue.clone();
            model_thread(move || queue.close())
        };
        let mut got = Vec::new();
        let taken = block_on(queue.recv_many(&mut got, 2));
        let discarded = closer.join().unwrap();
        assert_eq!(got, [1, 2][..taken], "in order, from the front");
        assert_eq!(taken + discarded, 3, "nothing lost or doubled");
        assert_eq!(block_on(queue.recv()), None);
    });
}

/// A model task the probe tracks as a stream's `role` (a client's task for
/// the drain-barrier oracle): it starts, exits, then runs `after_exit`
/// (what a task does after its probe exit: its wait-group `done`s).
#[cfg(wsdrain_loom)]
fn tracked_task(
    probe: &Arc<wsdrain::probe::Probe>,
    role: wsdrain::probe::Role,
    after_exit: impl FnOnce() + Send + 'static,
) -> loom::thread::JoinHandle<()> {
    let ticket = probe.spawned(role, Some(1));
    let probe = probe.clone();
    model_thread(move || {
        probe.started(ticket);
        probe.exited(ticket);
        after_exit();
    })
}

/// The drain-barrier oracle's happens-before witness (loom only: shuttle is
/// sequentially consistent). A barrier that learns a task is gone through a
/// `Relaxed` flag runs after the task's exit but has not synchronised with
/// it, and loom fails the execution; through `Release`/`Acquire` it has,
/// and the same model passes. (A wait group whose fast path loaded its
/// counter `Relaxed` passed every scenario before the witness; with it,
/// S1 catches that in 369 executions.)
#[cfg(wsdrain_loom)]
fn barrier_after_an_exit(store: Ordering, load: Ordering) {
    use wsdrain::probe::{Probe, Role};
    use wsdrain::sync::atomic::AtomicBool;
    model(move || {
        let probe = Arc::new(Probe::new("client"));
        let gone = Arc::new(AtomicBool::new(false));
        let task = {
            let gone = gone.clone();
            tracked_task(&probe, Role::Writer, move || gone.store(true, store))
        };
        if gone.load(load) {
            probe.barrier_returned("close()");
        }
        task.join().unwrap();
    });
}

#[cfg(wsdrain_loom)]
#[test]
#[should_panic(expected = "Causality violation")]
fn a_barrier_that_does_not_synchronise_with_an_exit_fails() {
    barrier_after_an_exit(Ordering::Relaxed, Ordering::Relaxed);
}

#[cfg(wsdrain_loom)]
#[test]
fn a_barrier_that_synchronises_with_an_exit_passes() {
    barrier_after_an_exit(Ordering::Release, Ordering::Acquire);
}

/// A `wait()` that returns synchronises with every `done`, not only the
/// last one: each task's exit (its witness) happens before the return,
/// whether the waiter found the counter at zero or was parked and woken.
#[cfg(wsdrain_loom)]
#[test]
fn a_wait_synchronises_with_every_done() {
    use wsdrain::probe::{Probe, Role};
    model(|| {
        let probe = Arc::new(Probe::new("client"));
        let wg = Arc::new(WaitGroup::new());
        wg.add(2);
        let tasks: Vec<_> = [Role::Reader, Role::Writer]
            .into_iter()
            .map(|role| {
                let wg = wg.clone();
                tracked_task(&probe, role, move || wg.done())
            })
            .collect();
        block_on(wg.wait());
        probe.barrier_returned("close()");
        for task in tasks {
            task.join().unwrap();
        }
    });
}

//! The bodies of S9-S11: handlers that misbehave (a panic injected as a
//! fault, closes from two handlers at once, `StreamManager::wait()` from a
//! handler), judged by the probe and by the harness's own oracles
//! ([`crate::oracles`]).

use std::sync::{Arc, Mutex};

use wsdrain::probe::Oracle;
use wsdrain::sync::{CloseSignal, block_on};
use wsdrain::transport::{Fault, MemoryTransport};
use wsdrain::{Bugs, Event, ManagerConfig, StreamManager};

use crate::oracles::{
    ended_by_panic, expecting, input_honesty, no_zombie, ready_at_barrier, violated, watched,
};
use crate::scenarios::bodies::{assert_drained, client, end_checks, ignore};
use crate::scenarios::windows::{FIRST_INPUT_QUEUED, FIRST_INPUT_REFUSED};

/// S9: the handler panics on its first event (the server's `connected`),
/// an injected fault, while main queues input.
pub(crate) fn s9(bugs: Bugs) {
    let transport = MemoryTransport::new(); // `connected` is the event that panics
    transport.inject(Fault::HandlerPanic);
    let client = client(&transport, bugs);
    let (handler, reader_gone) = watched(transport.faulty_handler(ignore));
    let stream = block_on(client.stream_workspace(handler)).expect("stream");
    // Races the panic and the reader's cleanup: queued (Ok) or refused.
    let first = block_on(stream.write_shell_input("input-one")).is_ok();
    wsdrain::sync::trace::mark(if first {
        FIRST_INPUT_QUEUED
    } else {
        FIRST_INPUT_REFUSED
    });
    expecting(
        Oracle::NoZombie,
        "the reader of the stream whose handler panicked finishes",
        || block_on(reader_gone.closed()),
    );
    no_zombie(&client, &stream);
    let end = expecting(
        Oracle::NoZombie,
        "wait() of the stream whose handler panicked resolves",
        || block_on(stream.wait()),
    );
    ended_by_panic(&stream, &end);
    let second_input = block_on(stream.write_shell_input("input-two")).is_ok();
    if second_input {
        violated(
            Oracle::NoZombie,
            "input to a stream whose handler panicked was accepted",
        );
    }
    let second = match block_on(client.stream_workspace(ignore)) {
        Ok(second) => second,
        Err(error) => violated(
            Oracle::NoZombie,
            format!("no new stream after the handler panicked: {error}"),
        ),
    };
    block_on(client.close());
    ready_at_barrier(&[&stream, &second]);
    assert_drained(&client, "close()");
    input_honesty(
        &transport.connections()[0],
        &[("input-one", first), ("input-two", second_input)],
    );
    end_checks(&transport);
}

/// S10 under loom: stream A's handler, on its first event (the server's `connected`),
/// retires its own stream (`close_workspace_stream`) and calls
/// `Client::close()`; main opens stream B meanwhile, whose handler calls
/// `Client::close()` on its first event too, and then closes the client.
///
/// B may lose to A (`AlreadyConnected` before the retirement, a closed
/// client after A's close): the executions where it won hit the two
/// handlers' window. Before (A's handler parked on a signal until main had
/// retired A and opened B; two signals): bound 0 168 executions, bound 1
/// unfinished after 1.18M; now bound 1 483, bound 2 25,996. Under
/// shuttle this body hits the two handlers' window once in ~1,000 PCT
/// schedules, so shuttle keeps [`s10_shuttle`] (every schedule has B).
pub(crate) fn s10(bugs: Bugs) {
    if crate::cell::Checker::COMPILED != Some(crate::cell::Checker::Loom) {
        return s10_shuttle(bugs);
    }
    // `connected` triggers both handlers; the server is a sink.
    let transport = MemoryTransport::new().with_sink_server();
    let client = client(&transport, bugs);
    let closes = |retire: bool| {
        let client = client.clone();
        move |_event: Event| {
            let client = client.clone();
            async move {
                if retire {
                    let _ = client.close_workspace_stream();
                }
                client.close().await;
            }
        }
    };
    let a = block_on(client.stream_workspace(closes(true))).expect("stream A");
    let b = block_on(client.stream_workspace(closes(false))).ok();
    block_on(client.close());
    ready_at_barrier(&[&a]);
    if let Some(b) = &b {
        ready_at_barrier(&[b]);
    }
    assert_drained(&client, "close() from outside, with two handlers closing");
    end_checks(&transport);
}

/// S10 under shuttle: stream A's handler parks on its first event; main retires A
/// (`close_workspace_stream`) and opens B; then A's handler, B's handler
/// and main all call `Client::close()`.
fn s10_shuttle(bugs: Bugs) {
    let transport = MemoryTransport::new(); // `connected` triggers both handlers
    let client = client(&transport, bugs);
    let entered = CloseSignal::new();
    let go = CloseSignal::new();
    let handler_a = {
        let (client, entered, go) = (client.clone(), entered.clone(), go.clone());
        let mut first = true;
        move |_event: Event| {
            let run = std::mem::replace(&mut first, false);
            let (client, entered, go) = (client.clone(), entered.clone(), go.clone());
            async move {
                if run {
                    entered.close();
                    go.closed().await;
                    client.close().await;
                }
            }
        }
    };
    let handler_b = {
        let client = client.clone();
        let mut first = true;
        move |_event: Event| {
            let run = std::mem::replace(&mut first, false);
            let client = client.clone();
            async move {
                if run {
                    client.close().await;
                }
            }
        }
    };
    let _a = block_on(client.stream_workspace(handler_a)).expect("stream A");
    block_on(entered.closed());
    let retired = client
        .close_workspace_stream()
        .expect("stream A is current");
    let b = block_on(client.stream_workspace(handler_b)).expect("stream B");
    go.close();
    block_on(client.close());
    ready_at_barrier(&[&retired, &b]);
    assert_drained(&client, "close() from outside, with two handlers closing");
    end_checks(&transport);
}

/// S11 under shuttle: a managed stream's handler calls
/// `StreamManager::wait()` when the server sends it a trigger frame; the
/// first managed stream's handler panics first (injected), and the manager
/// must reconnect. loom's 5 threads (main, supervisor, merger, reader,
/// writer) leave no room for a second stream: see [`s11_loom`].
pub(crate) fn s11(bugs: Bugs) {
    let loom = crate::cell::Checker::COMPILED == Some(crate::cell::Checker::Loom);
    if loom {
        return s11_loom(bugs);
    }
    let transport = MemoryTransport::new().with_accept_limit(2);
    transport.inject(Fault::HandlerPanic);
    let client = client(&transport, bugs);
    let slot: Arc<Mutex<Option<StreamManager>>> = Arc::default();
    let live = CloseSignal::new();
    let waited = CloseSignal::new();
    let make = {
        let (transport, slot, live, waited) = (
            transport.clone(),
            slot.clone(),
            live.clone(),
            waited.clone(),
        );
        move || {
            let (slot, live, waited) = (slot.clone(), live.clone(), waited.clone());
            transport.faulty_handler(move |event: Event| {
                let trigger = matches!(event, Event::Skipped(_));
                let manager = slot.lock().unwrap().clone();
                let (live, waited) = (live.clone(), waited.clone());
                async move {
                    if !trigger {
                        live.close();
                    } else if let Some(manager) = manager {
                        manager.wait().await;
                        waited.close();
                    }
                }
            })
        }
    };
    let manager = StreamManager::start(client.clone(), make, ManagerConfig::default());
    *slot.lock().unwrap() = Some(manager.clone());
    expecting(
        Oracle::ManagerPromise,
        "the manager reconnects after its stream's handler panicked",
        || block_on(live.closed()),
    );
    let newest = transport.connections().pop().expect("a managed connection");
    newest.send_text("trigger: not a protocol message");
    block_on(waited.closed());
    wait_and_drain(&client, manager, &slot, &transport);
}

/// S11 under loom: the managed stream's first event (the server's
/// `connected`) is the trigger, so main sends nothing and awaits no
/// signal of the handler's: it fills the handler's slot, lets it go, and
/// waits. The handler's `wait()` is what stops the manager, so main's
/// `wait()` returns only after it (a deadlocked handler is a deadlock of
/// main's too: the liveness oracle). Before (the trigger frame sent by
/// main, two signals): bound 0 490 executions, bound 1 unfinished after
/// 1.16M; now 26 and 105,002.
fn s11_loom(bugs: Bugs) {
    let transport = MemoryTransport::new()
        .with_sink_server()
        .with_accept_limit(1);
    let client = client(&transport, bugs);
    let slot: Arc<Mutex<Option<StreamManager>>> = Arc::default();
    // The manager dials on its own task: the handler may run before main
    // has put the manager in the slot.
    let ready = CloseSignal::new();
    let make = {
        let (slot, ready) = (slot.clone(), ready.clone());
        move || {
            let (slot, ready) = (slot.clone(), ready.clone());
            move |_event: Event| {
                let (slot, ready) = (slot.clone(), ready.clone());
                async move {
                    ready.closed().await;
                    let manager = slot.lock().unwrap().clone();
                    if let Some(manager) = manager {
                        manager.wait().await;
                    }
                }
            }
        }
    };
    let manager = StreamManager::start(client.clone(), make, ManagerConfig::default());
    *slot.lock().unwrap() = Some(manager.clone());
    ready.close();
    wait_and_drain(&client, manager, &slot, &transport);
}

/// The end of S11 (both forms): main's `StreamManager::wait()` must drain
/// the client and the manager; then the handler's copy of the manager goes.
fn wait_and_drain(
    client: &wsdrain::Client<MemoryTransport>,
    manager: StreamManager,
    slot: &Mutex<Option<StreamManager>>,
    transport: &MemoryTransport,
) {
    block_on(manager.wait());
    assert_drained(client, "StreamManager::wait()");
    if manager.live_tasks() > 0 {
        violated(
            Oracle::DrainBarrier,
            "StreamManager::wait() returned with manager tasks alive",
        );
    }
    drop(slot.lock().unwrap().take());
    drop(manager);
    end_checks(transport);
}

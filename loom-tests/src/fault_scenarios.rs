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

/// S10: stream A's handler parks on its first event; main retires A
/// (`close_workspace_stream`) and opens B; then A's handler, B's handler
/// and main all call `Client::close()`.
pub(crate) fn s10(bugs: Bugs) {
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

/// S11: a managed stream's handler calls `StreamManager::wait()` when the
/// server sends it a trigger frame. Under shuttle the first managed
/// stream's handler panics first (injected), and the manager must
/// reconnect; loom's 5 threads (main, supervisor, merger, reader, writer)
/// leave no room for a second stream.
pub(crate) fn s11(bugs: Bugs) {
    let loom = crate::cell::Checker::COMPILED == Some(crate::cell::Checker::Loom);
    let transport = MemoryTransport::new().with_accept_limit(if loom { 1 } else { 2 });
    if !loom {
        transport.inject(Fault::HandlerPanic);
    }
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
    let what = if loom {
        "the managed stream delivers its first event"
    } else {
        "the manager reconnects after its stream's handler panicked"
    };
    expecting(Oracle::ManagerPromise, what, || block_on(live.closed()));
    let newest = transport.connections().pop().expect("a managed connection");
    newest.send_text("trigger: not a protocol message");
    block_on(waited.closed());
    block_on(manager.wait());
    assert_drained(&client, "StreamManager::wait()");
    if manager.live_tasks() > 0 {
        violated(
            Oracle::DrainBarrier,
            "StreamManager::wait() returned with manager tasks alive",
        );
    }
    drop(slot.lock().unwrap().take());
    drop(manager);
    end_checks(&transport);
}

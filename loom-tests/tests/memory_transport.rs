//! The in-memory transport, the harness's own test double, model-checked
//! through the client as the scenarios use it: each knob, each server
//! action and each injected fault does what it says. A transport that
//! silently drops a fault, a server close or its connection bookkeeping
//! leaves every scenario passing while it tests less. (Found by the
//! mutation run: each of these survived every scenario and the generated
//! programs.) Small models: main, the stream's reader and writer, at most
//! one thread more; each case of a test is a model of its own (loom counts
//! every thread an execution starts against its five). loom at bound 1:
//! the 17 tests in about 25 s.
#![cfg(any(wsdrain_loom, wsdrain_shuttle))]

use wsdrain::protocol::Message;
use wsdrain::sync::{Arc, CloseSignal, Queue, block_on, model_thread};
use wsdrain::transport::{Fault, MemoryTransport, ServerConn, ServerEnd};
use wsdrain::{Client, ClientConfig, Error, Event, Skipped, StreamEnd};
use wsdrain_loom_tests::oracles::ready_now;
use wsdrain_loom_tests::scenarios::parked;

fn model(f: impl Fn() + Send + Sync + 'static) {
    wsdrain_loom_tests::small_model::check(1, 1_000, f);
}

fn client(transport: &MemoryTransport) -> Client<MemoryTransport> {
    client_with(transport, ClientConfig::default())
}

fn client_with(transport: &MemoryTransport, config: ClientConfig) -> Client<MemoryTransport> {
    let config = config.with_input_queue_capacity(1);
    Client::with_transport(transport.clone(), "mem://workspace", config)
}

async fn ignore(_: Event) {}

/// A server that sends nothing first and reads what the client writes.
fn reading() -> MemoryTransport {
    MemoryTransport::new().with_connected_message(false)
}

/// A sink server if `sink`, else a reading one (see [`reading`]).
fn reading_or_sink(sink: bool) -> MemoryTransport {
    if sink {
        reading().with_sink_server()
    } else {
        reading()
    }
}

/// A handler that hands every event to `events` (never blocks: the queue
/// has room for every event a test sends).
fn recording(events: &Arc<Queue<Event>>) -> impl wsdrain::Handler + use<> {
    let events = events.clone();
    move |event: Event| {
        let _ = events.try_send(event);
        async {}
    }
}

fn message(event: Option<Event>) -> Option<Message> {
    match event {
        Some(Event::Message(envelope)) => Some(envelope.message),
        _ => None,
    }
}

/// `with_dial_gate`: `entered()` waits for a dial to reach the gate, which
/// holds it (no connection yet) until `release()`. S2 closes the client
/// while the dial is held there.
#[test]
fn a_dial_gate_holds_the_dial_until_released() {
    model(|| {
        let (transport, gate) = reading().with_sink_server().with_dial_gate();
        let client = client(&transport);
        assert!(
            ready_now(gate.entered()).is_none(),
            "entered() before any dial reached the gate"
        );
        let caller = {
            let client = client.clone();
            model_thread(move || block_on(client.stream_workspace(ignore)).is_ok())
        };
        block_on(gate.entered());
        assert!(
            transport.connections().is_empty(),
            "a dial got past the gate before release()"
        );
        gate.release();
        assert!(caller.join().unwrap(), "the released dial failed");
        block_on(client.close());
    });
}

/// `with_accept_signal`: `first_accept()` resolves once the server has
/// accepted a connection, not before (S8 under loom waits on it).
#[test]
fn the_accept_signal_fires_at_the_first_accept() {
    model(|| {
        let transport = reading().with_sink_server().with_accept_signal();
        let client = client(&transport);
        assert!(
            ready_now(transport.first_accept()).is_none(),
            "first_accept() before any dial"
        );
        let _stream = block_on(client.stream_workspace(ignore)).expect("stream");
        assert!(
            ready_now(transport.first_accept()).is_some(),
            "first_accept() still pending after an accept"
        );
        block_on(client.close());
    });
}

/// `with_token`: a dial without the server's token fails `Unauthorized`
/// and opens nothing; with it, it connects.
#[test]
fn a_server_with_a_token_refuses_a_dial_without_it() {
    model(|| {
        let transport = reading().with_sink_server().with_token("t0k");
        let without = client(&transport);
        let refused = block_on(without.stream_workspace(ignore));
        assert!(
            matches!(refused, Err(Error::Unauthorized)),
            "a dial without the token: {refused:?}"
        );
        let wrong = client_with(&transport, ClientConfig::default().with_token("other"));
        let refused = block_on(wrong.stream_workspace(ignore));
        assert!(
            matches!(refused, Err(Error::Unauthorized)),
            "a dial with the wrong token: {refused:?}"
        );
        assert!(transport.connections().is_empty());
        let with = client_with(&transport, ClientConfig::default().with_token("t0k"));
        let accepted = block_on(with.stream_workspace(ignore));
        assert!(accepted.is_ok(), "a dial with the token: {accepted:?}");
        block_on(with.close());
    });
}

/// `connected` is the first message a stream gets, unless the server was
/// told not to send it (most scenarios, to keep their state space small).
#[test]
fn connected_comes_first_unless_switched_off() {
    for send_connected in [true, false] {
        model(move || {
            let transport = MemoryTransport::new()
                .with_sink_server()
                .with_connected_message(send_connected);
            let client = client(&transport);
            let events = Arc::new(Queue::new(4));
            let _stream = block_on(client.stream_workspace(recording(&events))).expect("stream");
            let conn = transport.connections()[0].clone();
            assert!(conn.send(Message::ShellOutput { data: "out".into() }));
            let first = message(block_on(events.recv()));
            let expected = if send_connected {
                Message::Connected
            } else {
                Message::ShellOutput { data: "out".into() }
            };
            assert_eq!(
                first,
                Some(expected),
                "with_connected_message({send_connected})"
            );
            block_on(client.close());
        });
    }
}

/// `with_sink_server`: what the client writes is discarded and `recv()`
/// says so at once; a reading server gets the client's input.
#[test]
fn a_sink_server_discards_what_a_reading_server_gets() {
    for sink in [true, false] {
        model(move || {
            let transport = reading_or_sink(sink);
            let client = client(&transport);
            let stream = block_on(client.stream_workspace(ignore)).expect("stream");
            let conn = transport.connections()[0].clone();
            if sink {
                assert_eq!(
                    ready_now(conn.recv()),
                    Some(None),
                    "a sink server's recv() waits"
                );
                // Three inputs through a queue of 1: the third finds room
                // only once the writer has fed the first and taken the
                // second, so a sink that failed the send refuses it.
                for input in ["a", "b", "c"] {
                    let queued = block_on(stream.write_shell_input(input));
                    assert!(queued.is_ok(), "input {input} to a sink server: {queued:?}");
                }
            } else {
                assert!(
                    ready_now(conn.recv()).is_none(),
                    "a reading server's recv() answered before the client wrote"
                );
                block_on(stream.write_shell_input("typed")).expect("input queued");
                let got = block_on(conn.recv());
                assert!(
                    got.as_deref().is_some_and(|text| text.contains("typed")),
                    "a reading server got {got:?}"
                );
            }
            block_on(client.close());
            let end = block_on(stream.wait());
            assert!(matches!(end, StreamEnd::Closed), "sink {sink}: {end:?}");
        });
    }
}

/// A client streaming to a reading server, with three inputs queued: the
/// server holds the first, unread. (Through an input queue of 1 the third
/// input finds room only once the writer has written the first and taken
/// the second.)
fn first_input_written() -> (Client<MemoryTransport>, ServerConn) {
    let transport = reading();
    let client = client(&transport);
    let stream = block_on(client.stream_workspace(ignore)).expect("stream");
    let conn = transport.connections()[0].clone();
    for input in ["a", "b", "c"] {
        block_on(stream.write_shell_input(input)).expect("input queued");
    }
    (client, conn)
}

/// What the client wrote before it closed stays the server's to read: a
/// closing write side does not take back what was written. (Closing
/// discarded it before, so the input-honesty checks made after
/// `Client::close()` found nothing to judge and could not fire.)
#[test]
fn what_was_written_before_close_stays_readable() {
    model(|| {
        let (client, conn) = first_input_written();
        block_on(client.close());
        let mut read = Vec::new();
        while let Some(text) = block_on(conn.recv()) {
            read.push(text);
        }
        assert!(
            read.first().is_some_and(|text| text.contains("\"a\"")),
            "the server read {read:?} after the close"
        );
        assert!(read.len() <= 3, "{read:?}");
    });
}

/// A server's `disconnect()` drops the connection with what it had not
/// read: unlike the client's close, nothing written stays readable.
#[test]
fn a_disconnect_discards_what_the_server_had_not_read() {
    model(|| {
        let (client, conn) = first_input_written();
        conn.disconnect();
        assert_eq!(block_on(conn.recv()), None, "read after the drop");
        block_on(client.close());
    });
}

/// A dropped connection refuses the client's sends, a sink server's too:
/// with the reader held in its handler (so it cannot see the drop), the
/// writer's failed send alone ends the stream.
#[test]
fn a_dropped_connection_fails_the_clients_send() {
    for sink in [true, false] {
        model(move || {
            let transport = reading_or_sink(sink);
            let client = client(&transport);
            let (entered, go) = (CloseSignal::new(), CloseSignal::new());
            let stream = block_on(client.stream_workspace(parked(&entered, &go))).expect("stream");
            let conn = transport.connections()[0].clone();
            assert!(conn.send_text("holds the reader"));
            block_on(entered.closed());
            conn.disconnect();
            block_on(stream.write_shell_input("into a dropped connection")).expect("input queued");
            // Only the writer can end the stream now.
            block_on(stream.done());
            go.close();
            let end = block_on(stream.wait());
            assert!(failed_in_transport(&end), "sink {sink}: {end:?}");
            block_on(client.close());
        });
    }
}

/// `with_capacity` and `with_close_answer`: the handler holds the reader
/// on the first frame, so nothing else leaves the server's queue of room
/// 1; the client closes its write side (the server's `recv()` ends), and
/// the server that answers the close has filled that room with its Close
/// frame: its next send is refused. One that does not answer has room.
#[test]
fn the_close_answer_waits_in_the_servers_queue() {
    for answers in [true, false] {
        model(move || {
            let transport = reading().with_capacity(1);
            let transport = if answers {
                transport.with_close_answer()
            } else {
                transport
            };
            let client = client(&transport);
            let (entered, go) = (CloseSignal::new(), CloseSignal::new());
            let stream = block_on(client.stream_workspace(parked(&entered, &go))).expect("stream");
            let conn = transport.connections()[0].clone();
            assert!(conn.send_text("first"));
            block_on(entered.closed());
            // The reader holds the first frame: the queue is empty again.
            stream.close();
            assert_eq!(block_on(conn.recv()), None, "the client's write side ends");
            assert_eq!(
                conn.send_text("after the close"),
                !answers,
                "with_close_answer: {answers}, with_capacity(1)"
            );
            go.close();
            block_on(client.close());
            assert!(matches!(block_on(stream.wait()), StreamEnd::Closed));
        });
    }
}

/// `with_capacity`: a server's sends are refused, never blocked, once the
/// client's queue holds `capacity` frames it has not read.
#[test]
fn a_full_queue_refuses_the_servers_send() {
    model(|| {
        let transport = reading().with_sink_server().with_capacity(2);
        let client = client(&transport);
        let (entered, go) = (CloseSignal::new(), CloseSignal::new());
        let _stream = block_on(client.stream_workspace(parked(&entered, &go))).expect("stream");
        let conn = transport.connections()[0].clone();
        assert!(conn.send_text("held by the handler"));
        block_on(entered.closed());
        assert!(conn.send_text("one"));
        assert!(conn.send_text("two"));
        assert!(!conn.send_text("three"), "a third frame in a queue of 2");
        go.close();
        block_on(client.close());
    });
}

/// The connection bookkeeping the no-orphan oracle and the generated
/// programs read: a connection is open while the client holds a half of
/// it, `open_connections()` counts those, and connections are numbered
/// from 1 in accept order (the programs tell a new connection from one they
/// hold by its id).
#[test]
fn connections_are_counted_open_and_numbered_in_accept_order() {
    model(|| {
        let transport = reading().with_sink_server();
        let client = client(&transport);
        assert_eq!(transport.open_connections(), 0);
        let first = block_on(client.stream_workspace(ignore)).expect("first stream");
        let conn = transport.connections()[0].clone();
        assert!(conn.is_open(), "a live stream's connection is not open");
        assert_eq!(transport.open_connections(), 1);
        first.close();
        block_on(first.wait());
        let second = block_on(client.stream_workspace(ignore)).expect("second stream");
        let ids: Vec<u64> = transport.connections().iter().map(|c| c.id()).collect();
        assert_eq!(ids, [1, 2], "connection ids");
        block_on(client.close());
        block_on(second.wait());
        assert!(!conn.is_open(), "a closed stream's connection is open");
        assert_eq!(transport.open_connections(), 0);
    });
}

/// The server's frames and ends reach the client as sent: a protocol
/// message, a binary frame, and each way to end the stream; once the
/// client's reader is gone, the server's sends are refused.
#[test]
fn the_servers_frames_and_ends_reach_the_client() {
    for end in 0..3 {
        model(move || {
            let transport = reading().with_sink_server();
            let client = client(&transport);
            let events = Arc::new(Queue::new(4));
            let stream = block_on(client.stream_workspace(recording(&events))).expect("stream");
            let conn = transport.connections()[0].clone();
            assert!(conn.send(Message::ShellExit { code: 3 }));
            assert_eq!(
                message(block_on(events.recv())),
                Some(Message::ShellExit { code: 3 })
            );
            assert!(conn.send_binary(5));
            let binary = block_on(events.recv());
            assert!(
                matches!(binary, Some(Event::Skipped(Skipped::Binary { len: 5 }))),
                "{binary:?}"
            );
            let (ended, expected) = match end {
                0 => (
                    conn.close(),
                    StreamEnd::ServerClosed {
                        code: Some(1000),
                        reason: String::new(),
                    },
                ),
                1 => (
                    conn.close_with(ServerEnd::Close {
                        code: Some(4000),
                        reason: "bye".into(),
                    }),
                    StreamEnd::ServerClosed {
                        code: Some(4000),
                        reason: "bye".into(),
                    },
                ),
                _ => (
                    conn.close_with(ServerEnd::NoCloseFrame),
                    StreamEnd::ServerDisconnected,
                ),
            };
            assert!(ended, "the server's end was refused");
            let got = block_on(stream.wait());
            assert_eq!(format!("{got:?}"), format!("{expected:?}"));
            block_on(client.close());
            assert!(!conn.send_text("late"), "a send after the reader is gone");
            assert!(!conn.close(), "a close after the reader is gone");
        });
    }
}

/// `Fault::DialError` refuses the next dial; `Fault::DialHang` holds it
/// until `Fault::ConnectTimeout` fires, and it then fails. Neither opens a
/// connection, and the dial after them connects.
#[test]
fn injected_dial_faults_fail_the_next_dial() {
    model(|| {
        let transport = reading().with_sink_server();
        let client = client(&transport);
        transport.inject(Fault::DialError);
        let refused = block_on(client.stream_workspace(ignore));
        assert!(
            matches!(refused, Err(Error::ConnectionRefused { .. })),
            "{refused:?}"
        );
        transport.inject(Fault::DialHang);
        let hanging = {
            let client = client.clone();
            model_thread(move || block_on(client.stream_workspace(ignore)).map(|_| ()))
        };
        transport.inject(Fault::ConnectTimeout);
        let timed_out = hanging.join().unwrap();
        assert!(
            matches!(timed_out, Err(Error::HandshakeTimeout(_))),
            "{timed_out:?}"
        );
        assert!(transport.connections().is_empty());
        let _stream = block_on(client.stream_workspace(ignore)).expect("the next dial");
        block_on(client.close());
    });
}

fn failed_in_transport(end: &StreamEnd) -> bool {
    matches!(end, StreamEnd::Failed(error) if matches!(**error, Error::Transport(_)))
}

/// `Fault::SendError`: the client's next send fails, and with it the stream.
#[test]
fn an_injected_send_error_fails_the_stream() {
    model(|| {
        let transport = reading();
        let client = client(&transport);
        let stream = block_on(client.stream_workspace(ignore)).expect("stream");
        transport.inject(Fault::SendError);
        block_on(stream.write_shell_input("lost")).expect("input queued");
        let end = block_on(stream.wait());
        assert!(failed_in_transport(&end), "{end:?}");
        block_on(client.close());
        let conn = transport.connections()[0].clone();
        assert_eq!(ready_now(conn.recv()), Some(None), "a failed send arrived");
    });
}

/// `Fault::RecvError`: the client's receive fails, and with it the stream.
#[test]
fn an_injected_receive_error_fails_the_stream() {
    model(|| {
        let transport = reading().with_sink_server();
        let client = client(&transport);
        let stream = block_on(client.stream_workspace(ignore)).expect("stream");
        transport.inject(Fault::RecvError);
        let end = block_on(stream.wait());
        assert!(failed_in_transport(&end), "{end:?}");
        block_on(client.close());
    });
}

/// `Fault::HalfClose`: the server closes its side normally.
#[test]
fn an_injected_half_close_ends_the_stream_server_closed() {
    model(|| {
        let transport = reading().with_sink_server();
        let client = client(&transport);
        let stream = block_on(client.stream_workspace(ignore)).expect("stream");
        transport.inject(Fault::HalfClose);
        let end = block_on(stream.wait());
        assert!(
            matches!(
                end,
                StreamEnd::ServerClosed {
                    code: Some(1000),
                    ..
                }
            ),
            "{end:?}"
        );
        block_on(client.close());
    });
}

/// `Fault::StopReading`: the client's sends block, so nothing it writes
/// after the fault reaches the server (which receives on a thread of its
/// own, as the client writes: a close discards what the server has not
/// read yet), in any interleaving; `close()` still returns.
#[test]
fn an_injected_stop_reading_blocks_the_clients_sends() {
    model(|| {
        let transport = reading();
        let client = client(&transport);
        let stream = block_on(client.stream_workspace(ignore)).expect("stream");
        transport.inject(Fault::StopReading);
        let conn = transport.connections()[0].clone();
        let server = model_thread(move || block_on(conn.recv()));
        block_on(stream.write_shell_input("held")).expect("input queued");
        // Room for it once the writer has taken the first (a queue of 1).
        block_on(stream.write_shell_input("queued")).expect("input queued");
        block_on(client.close());
        let got = server.join().unwrap();
        assert_eq!(got, None, "a server that stopped reading got {got:?}");
        assert!(matches!(block_on(stream.wait()), StreamEnd::Closed));
    });
}

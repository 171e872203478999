//! The client frees what a stream took: after a warm-up, thousands of
//! open, input, end and drop cycles leave the live heap where it was, for
//! each way a stream ends (`Client::close`, `WorkspaceStream::close`, a
//! server disconnect, a managed stream stopped by its manager). A leak of
//! one allocation per cycle would show as kilobytes here.
//!
//! The heap is counted by this test binary's global allocator (its own
//! process: no other test shares the count), on a current-thread runtime,
//! so the runtime's own allocations repeat exactly from cycle to cycle.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use wsdrain::transport::MemoryTransport;
use wsdrain::{Client, ClientConfig, Event, ManagerConfig, StreamManager};

struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to `System` unchanged; only the count is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const WARM_UP: usize = 500;
const CYCLES: usize = 3_000;
/// Room for a container of the runtime's that grows once more after the
/// warm-up; far below one leaked allocation per cycle (3,000 x 16 bytes).
const SLACK_BYTES: isize = 4096;

#[derive(Debug, Clone, Copy)]
enum End {
    ClientClose,
    StreamClose,
    ServerDisconnect,
    ManagerStop,
}

async fn ignore(_: Event) {}

async fn cycle(end: End) {
    let transport = MemoryTransport::new();
    let client = Client::with_transport(
        transport.clone(),
        "mem://workspace",
        ClientConfig::default(),
    );
    if let End::ManagerStop = end {
        let manager = StreamManager::start(client.clone(), || ignore, ManagerConfig::default());
        while manager.connects() == 0 {
            tokio::task::yield_now().await;
        }
        manager.stop();
        manager.wait().await;
        client.close().await;
        return;
    }
    let stream = client.stream_workspace(ignore).await.expect("stream");
    stream.write_shell_input("echo hi\n").await.expect("input");
    match end {
        End::ClientClose => {}
        End::StreamClose => {
            stream.close();
            stream.wait().await;
        }
        End::ServerDisconnect => {
            transport.connections()[0].disconnect();
            stream.wait().await;
        }
        End::ManagerStop => unreachable!(),
    }
    client.close().await;
    assert_eq!(client.live_tasks(), 0);
}

fn live_bytes_grow_by(end: End) -> isize {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        for _ in 0..WARM_UP {
            cycle(end).await;
        }
        let before = LIVE_BYTES.load(Ordering::Relaxed);
        for _ in 0..CYCLES {
            cycle(end).await;
        }
        LIVE_BYTES.load(Ordering::Relaxed) - before
    })
}

// One test function: the count is process-wide, so the ends run one after
// the other, never in parallel test threads.
#[test]
fn a_finished_stream_leaves_nothing_behind() {
    for end in [
        End::ClientClose,
        End::StreamClose,
        End::ServerDisconnect,
        End::ManagerStop,
    ] {
        let grown = live_bytes_grow_by(end);
        assert!(
            grown <= SLACK_BYTES,
            "{CYCLES} cycles ending by {end:?} left {grown} more bytes live \
             ({} per cycle): something a stream took is never freed",
            grown / CYCLES as isize
        );
    }
}

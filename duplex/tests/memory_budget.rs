//! The server-wide memory budget over real sockets: large incoming
//! messages that together exceed it close the connection that would go
//! over with 1009 (the others carry on), a writer whose peer does not read
//! is dropped once its unsent data exceeds it, a room member that does not
//! read is closed as a slow consumer, and everything counted is given back.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use duplex::{Error, MemoryBudget, Message, Relay, Rooms, Server, ServerSocket};
use tokio::sync::mpsc;

const MIB: usize = 1 << 20;

/// Waits until `budget` counts at least `bytes`.
async fn wait_used(budget: &MemoryBudget, bytes: usize) {
    let start = Instant::now();
    while budget.used() < bytes {
        assert!(
            start.elapsed() < STEP,
            "the budget counts {} bytes, expected at least {bytes}",
            budget.used()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until `budget` counts nothing.
async fn wait_released(budget: &MemoryBudget) {
    let start = Instant::now();
    while budget.used() > 0 {
        assert!(
            start.elapsed() < STEP,
            "the budget still counts {} bytes",
            budget.used()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The first `sent` bytes of a binary frame of `len` zero bytes (masked
/// with a zero key, so the payload stays zeros).
fn partial_frame(len: usize, sent: usize) -> Vec<u8> {
    let mut bytes = frame_header(0x82, len as u64, Some([0; 4]));
    bytes.resize(bytes.len() + sent, 0);
    bytes
}

#[tokio::test]
async fn incoming_messages_over_the_budget_close_with_1009() {
    let server = Running::start(echo_server().config(no_deflate()).memory_budget(16 * MIB)).await;
    let budget = server.handle.hub().memory_budget().clone();
    assert_eq!(budget.limit(), 16 * MIB);

    // Three clients each hold 2.5 MiB of a 3 MiB frame, in read buffers
    // of 2.5 to 5 MiB: within the budget.
    let mut holders = Vec::new();
    for i in 1..=3 {
        let mut client = RawClient::open(server.addr, "/echo").await;
        client.send(&partial_frame(3 * MIB, 5 * MIB / 2)).await;
        wait_used(&budget, i * (5 * MIB / 2 - 64 * 1024)).await;
        holders.push(client);
    }
    // A fourth, with 10 MiB of a 12 MiB frame, would take it over: closed
    // with 1009, nothing echoed.
    let mut over = RawClient::open(server.addr, "/echo").await;
    over.send_lenient(&partial_frame(12 * MIB, 10 * MIB)).await;
    let (close, before) = over.expect_close(STEP).await;
    assert_eq!(close.close_code(), 1009, "{}", close.close_reason());
    assert!(
        close.close_reason().contains("memory budget"),
        "{}",
        close.close_reason()
    );
    assert!(before.is_empty());
    assert_eq!(budget.refused_incoming(), 1);
    assert!(budget.used() <= budget.limit());

    // The others finish their messages and get them back whole.
    for client in &mut holders {
        client.send(&vec![0u8; MIB / 2]).await;
    }
    for client in &mut holders {
        let echo = within(STEP, "the echo of 3 MiB", client.read_frame())
            .await
            .expect("an echo");
        assert_eq!((echo.opcode, echo.payload.len()), (0x2, 3 * MIB));
    }
    wait_released(&budget).await;
    drop(holders);
    server.stop().await;
}

#[tokio::test]
async fn a_writer_whose_peer_does_not_read_is_dropped_over_the_budget() {
    // The route queues 32 MiB for a client that never reads: far more than
    // socket buffers absorb, so the flush stalls with most of it unsent.
    let (results, mut result) = mpsc::unbounded_channel();
    let server = Server::new()
        .config(no_deflate())
        .memory_budget(4 * MIB)
        .route("/flood", move |mut ws: ServerSocket, _request| {
            let results = results.clone();
            async move {
                let chunk = Message::binary(vec![7u8; MIB]);
                for _ in 0..32 {
                    ws.feed(chunk.clone()).unwrap();
                }
                let _ = results.send(ws.flush().await);
            }
        });
    let server = Running::start(server).await;
    let budget = server.handle.hub().memory_budget().clone();
    let _silent = RawClient::open(server.addr, "/flood").await;
    let flushed = within(STEP, "the stalled flush to fail", result.recv())
        .await
        .unwrap();
    assert!(matches!(flushed, Err(Error::QueueFull)), "{flushed:?}");
    assert_eq!(budget.refused_outgoing(), 1);
    wait_released(&budget).await;
    server.wait_idle(STEP).await;
    server.stop().await;
}

#[tokio::test]
async fn a_room_member_that_does_not_read_is_closed_as_a_slow_consumer() {
    // The member's queue may hold 8 MiB by its own limits; the budget of
    // 2 MiB is what stops it.
    let rooms = Arc::new(Rooms::new());
    let server = Server::new()
        .config(no_deflate())
        .memory_budget(2 * MIB)
        .rooms(rooms.clone())
        .handler("/chat/{room}", Relay::for_request);
    let server = Running::start(server).await;
    let budget = server.handle.hub().memory_budget().clone();
    let url = server.url("/chat/lobby");
    let _silent = RawClient::open(server.addr, "/chat/lobby").await;
    let mut talker = duplex::connect(&url).await.unwrap();
    let start = Instant::now();
    while rooms.member_count("lobby") < 2 {
        assert!(start.elapsed() < STEP, "members did not join");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Below the per-connection allowance: the talker's own incoming
    // messages are never counted, only the silent member's queue is.
    let text = "x".repeat(32 * 1024);
    let start = Instant::now();
    let closed_slow = || {
        let stats = server.handle.hub().queue_stats();
        stats.closed_slow.load(std::sync::atomic::Ordering::Relaxed)
    };
    while closed_slow() == 0 {
        assert!(
            start.elapsed() < STEP,
            "the silent member was not closed (budget used {})",
            budget.used()
        );
        talker.send(Message::text(text.clone())).await.unwrap();
    }
    assert!(budget.refused_outgoing() >= 1);
    assert!(budget.used() <= budget.limit());
    // The talker is unaffected.
    talker.send("still here").await.unwrap();
    talker.close(None).await.unwrap();
    wait_released(&budget).await;
    server.stop().await;
}

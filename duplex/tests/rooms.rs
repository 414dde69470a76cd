//! Rooms and the chat relay over real sockets on 127.0.0.1: fan-out to
//! every other member of a room (in order, nothing lost or duplicated, no
//! leaks between rooms), rooms appearing and vanishing, slow consumers
//! under both policies with the server's memory bounded, and large
//! payloads shared by a whole room.
//!
//! The tests of this file run one at a time (they take [`SERIAL`]) so that
//! the memory measured by the slow-consumer tests is their own.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{rss_bytes, within, Running};
use duplex::{
    ClientSocket, CloseCode, Message, QueueLimits, Server, SlowConsumerPolicy,
    DEFAULT_CLOSE_TIMEOUT,
};
use duplex::{Relay, Rooms};
use tokio::sync::{watch, Barrier, Mutex};

/// Tests of this file take this lock: see the module docs.
static SERIAL: Mutex<()> = Mutex::const_new(());

/// The bound of one waiting step.
const STEP: Duration = Duration::from_secs(10);

fn relay_server(rooms: &Arc<Rooms>) -> Server {
    Server::new()
        .rooms(rooms.clone())
        .handler("/chat/{room}", Relay::for_request)
}

/// Waits until `room` has exactly `n` members.
async fn wait_members(rooms: &Rooms, room: &str, n: usize) {
    let start = Instant::now();
    while rooms.member_count(room) != n {
        assert!(
            start.elapsed() < STEP,
            "room {room:?} has {} members, not {n}, after {STEP:?}",
            rooms.member_count(room)
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Waits until the registry has exactly `n` rooms.
async fn wait_room_count(rooms: &Rooms, n: usize) {
    let start = Instant::now();
    while rooms.room_count() != n {
        assert!(
            start.elapsed() < STEP,
            "{} rooms ({:?}), not {n}, after {STEP:?}",
            rooms.room_count(),
            rooms.room_names()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Samples [`rss_bytes`] until `stop` is set; returns the peak.
fn sample_peak_rss(stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut peak = rss_bytes();
        while !stop.load(Ordering::Relaxed) {
            peak = peak.max(rss_bytes());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        peak.max(rss_bytes())
    })
}

/// `len` incompressible bytes: the sender, the sequence number (big
/// endian), then a pseudo-random stream seeded by both. Incompressible so
/// that `permessage-deflate` (negotiated by default) cannot hide the
/// volume from the socket buffers.
fn payload(sender: u8, seq: u32, len: usize) -> Bytes {
    let mut out = Vec::with_capacity(len + 8);
    out.push(sender);
    out.extend_from_slice(&seq.to_be_bytes());
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (u64::from(sender) << 40) ^ u64::from(seq);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

/// The sender and sequence number of a [`payload`], checking the rest.
fn check_payload(data: &Bytes, len: usize) -> (u8, u32) {
    assert_eq!(data.len(), len, "payload length");
    let sender = data[0];
    let seq = u32::from_be_bytes([data[1], data[2], data[3], data[4]]);
    assert!(
        *data == payload(sender, seq, len),
        "payload of {sender}:{seq} corrupted"
    );
    (sender, seq)
}

const ROOMS: usize = 5;
const PER_ROOM: usize = 10;
const MESSAGES: usize = 200;

/// One member of the big relay test: sends its numbered messages while
/// receiving everyone else's, checks them, then closes normally.
async fn chat_member(ws: ClientSocket, room: usize, me: usize, done: Arc<Barrier>) {
    let (mut reader, mut writer) = ws.split();
    let send = async {
        for seq in 0..MESSAGES {
            writer
                .feed(Message::text(format!("room-{room}:{me}:{seq}")))
                .expect("feed");
            if seq % 16 == 15 {
                writer.flush().await.expect("flush");
            }
        }
        writer.flush().await.expect("flush");
    };
    let receive = async {
        let mut next = [0usize; PER_ROOM];
        let mut count = 0;
        while count < (PER_ROOM - 1) * MESSAGES {
            let text = match reader.recv().await {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("member {me} of room {room} after {count} messages: {other:?}"),
            };
            let parts: Vec<&str> = text.as_str().split(':').collect();
            let [from_room, from, seq] = parts[..] else {
                panic!("unexpected message {:?}", text.as_str());
            };
            assert_eq!(
                from_room,
                format!("room-{room}"),
                "member {me} got another room's message"
            );
            let from: usize = from.parse().expect("client number");
            let seq: usize = seq.parse().expect("sequence number");
            assert_ne!(from, me, "member {me} of room {room} got its own message");
            assert_eq!(
                seq, next[from],
                "member {me} of room {room}: message from {from} out of order, lost or duplicated"
            );
            next[from] += 1;
            count += 1;
        }
        for (from, n) in next.iter().enumerate() {
            let expected = if from == me { 0 } else { MESSAGES };
            assert_eq!(*n, expected, "member {me} of room {room}: from {from}");
        }
    };
    tokio::join!(send, receive);
    // Everyone has everything: nothing more may arrive.
    done.wait().await;
    writer.close(None).await.expect("send close");
    while let Some(item) = reader.recv().await {
        match item {
            Ok(Message::Close(_) | Message::Ping(_) | Message::Pong(_)) => {}
            other => panic!("member {me} of room {room}: extra {other:?}"),
        }
    }
    let ws = duplex::WebSocket::reunite(reader, writer).expect("halves of one socket");
    assert_eq!(ws.close_code(), CloseCode::Normal);
}

/// The big relay exchange: [`ROOMS`] rooms of [`PER_ROOM`] members, each
/// sending [`MESSAGES`] numbered messages at once while receiving the
/// others'; the server's queues have `limits`. Fails at the first member
/// that sees something wrong.
async fn relay_exchange(limits: QueueLimits) {
    let rooms = Arc::new(Rooms::new());
    let server = Running::start(relay_server(&rooms).queue_limits(limits)).await;
    let started = Instant::now();

    let mut connecting = Vec::new();
    for room in 0..ROOMS {
        for me in 0..PER_ROOM {
            let url = server.url(&format!("/chat/room-{room}"));
            let task = tokio::spawn(async move { duplex::connect(&url).await });
            connecting.push((room, me, task));
        }
    }
    let mut members = Vec::new();
    for (room, me, task) in connecting {
        let ws = within(STEP, "connect", task)
            .await
            .expect("connect task")
            .expect("connect");
        members.push((room, me, ws));
    }
    for room in 0..ROOMS {
        wait_members(&rooms, &format!("room-{room}"), PER_ROOM).await;
    }
    assert_eq!(rooms.room_count(), ROOMS);

    let done = Arc::new(Barrier::new(ROOMS * PER_ROOM));
    let mut tasks = tokio::task::JoinSet::new();
    for (room, me, ws) in members {
        tasks.spawn(chat_member(ws, room, me, done.clone()));
    }
    let all = async {
        while let Some(result) = tasks.join_next().await {
            if let Err(error) = result {
                std::panic::resume_unwind(error.into_panic());
            }
        }
    };
    within(
        Duration::from_secs(20),
        "every member to get every message",
        all,
    )
    .await;

    // Rooms vanish with their last member.
    wait_room_count(&rooms, 0).await;
    server.wait_idle(STEP).await;
    let stats = server.handle.queue_stats();
    assert_eq!(stats.closed_slow.load(Ordering::Relaxed), 0);
    assert_eq!(stats.dropped.load(Ordering::Relaxed), 0);
    server.stop().await;
    eprintln!(
        "{} members x {MESSAGES} messages relayed in {:?}",
        ROOMS * PER_ROOM,
        started.elapsed()
    );
}

/// Routing: with queues large enough for any burst, every member gets
/// exactly the other members' messages of its room, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_delivers_every_message_to_every_other_member_in_order() {
    let _serial = SERIAL.lock().await;
    relay_exchange(QueueLimits {
        max_messages: 1 << 16,
        max_bytes: 64 << 20,
        policy: SlowConsumerPolicy::Close,
    })
    .await;
}

/// The same exchange with the default queue limits: members that read as
/// fast as they can are not slow consumers and must not be closed with
/// 1013 because their peers' messages arrived in a burst (9 members x 200
/// small messages is 1800 messages, some 30 KB, against a default of 1024
/// messages and 8 MiB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_queue_limits_do_not_close_members_that_keep_reading() {
    let _serial = SERIAL.lock().await;
    relay_exchange(QueueLimits::default()).await;
}

#[tokio::test]
async fn rooms_appear_on_first_join_and_vanish_when_empty() {
    let _serial = SERIAL.lock().await;
    let rooms = Arc::new(Rooms::new());
    let server = Running::start(relay_server(&rooms)).await;
    assert_eq!(rooms.room_count(), 0);

    let mut a1 = duplex::connect(&server.url("/chat/alpha")).await.unwrap();
    wait_members(&rooms, "alpha", 1).await;
    assert_eq!(rooms.room_count(), 1);

    let mut a2 = duplex::connect(&server.url("/chat/alpha")).await.unwrap();
    let b1 = duplex::connect(&server.url("/chat/beta")).await.unwrap();
    wait_members(&rooms, "alpha", 2).await;
    wait_members(&rooms, "beta", 1).await;
    let mut names = rooms.room_names();
    names.sort();
    assert_eq!(names, ["alpha", "beta"]);

    // A message reaches the other member of its room only.
    a1.send("hello alpha").await.unwrap();
    let got = within(STEP, "a2 to receive", a2.recv()).await;
    assert_eq!(got.unwrap().unwrap(), Message::text("hello alpha"));

    // A normal close leaves the room...
    within(STEP, "a1 to close", a1.close(None)).await.unwrap();
    drop(a1);
    wait_members(&rooms, "alpha", 1).await;
    // ...and so does a connection that just vanishes (no close frame).
    drop(b1);
    wait_room_count(&rooms, 1).await;
    assert_eq!(rooms.member_count("beta"), 0);
    assert_eq!(rooms.room_names(), ["alpha"]);

    within(STEP, "a2 to close", a2.close(None)).await.unwrap();
    drop(a2);
    wait_room_count(&rooms, 0).await;
    server.wait_idle(STEP).await;
    server.stop().await;
}

/// Messages of the slow-consumer tests.
const BIG: usize = 4096;
/// Messages each of the two publishers sends.
const PER_PUBLISHER: u32 = 1000;
/// How many messages a publisher sends before waiting for the other
/// publisher to have them: keeps the fast members' queues (64) from
/// overflowing merely because the two cores were busy elsewhere.
const WINDOW: u32 = 16;

/// A fast member of the slow-consumer room: publishes its messages in
/// windows, receives all of the other publisher's, and hands its socket
/// back.
async fn fast_member(
    ws: ClientSocket,
    me: u8,
    progress: watch::Sender<u32>,
    mut peer: watch::Receiver<u32>,
) -> ClientSocket {
    let (mut reader, mut writer) = ws.split();
    let send = async {
        for seq in 0..PER_PUBLISHER {
            writer
                .feed(Message::Binary(payload(me, seq, BIG)))
                .expect("feed");
            if (seq + 1) % WINDOW == 0 || seq + 1 == PER_PUBLISHER {
                writer.flush().await.expect("flush");
                peer.wait_for(|&n| n > seq)
                    .await
                    .expect("the other member stopped receiving");
            }
        }
    };
    let receive = async {
        let other = 1 - me;
        let mut next = 0;
        while next < PER_PUBLISHER {
            match reader.recv().await {
                Some(Ok(Message::Binary(data))) => {
                    assert_eq!(check_payload(&data, BIG), (other, next), "member {me}");
                    next += 1;
                    progress.send_replace(next);
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                other => panic!("fast member {me} after {next} messages: {other:?}"),
            }
        }
    };
    tokio::join!(send, receive);
    duplex::WebSocket::reunite(reader, writer).expect("halves of one socket")
}

/// A room "slow" whose first member never reads, and two fast members
/// who publish [`PER_PUBLISHER`] messages of [`BIG`] bytes each and must
/// receive all of each other's. Returns the server, the sockets and how
/// much the process grew at its peak.
async fn slow_room(
    policy: SlowConsumerPolicy,
) -> (Running, Arc<Rooms>, ClientSocket, Vec<ClientSocket>, u64) {
    let rooms = Arc::new(Rooms::new());
    let limits = QueueLimits {
        max_messages: 64,
        max_bytes: 256 << 10,
        policy,
    };
    let server = Running::start(relay_server(&rooms).queue_limits(limits)).await;
    let url = server.url("/chat/slow");
    // Connected, and never read from until the publishing is over.
    let slow = duplex::connect(&url).await.unwrap();
    wait_members(&rooms, "slow", 1).await;
    let a = duplex::connect(&url).await.unwrap();
    let b = duplex::connect(&url).await.unwrap();
    wait_members(&rooms, "slow", 3).await;

    let baseline = rss_bytes();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_peak_rss(stop.clone());
    let (progress_a, seen_by_a) = watch::channel(0);
    let (progress_b, seen_by_b) = watch::channel(0);
    let started = Instant::now();
    let task_a = tokio::spawn(fast_member(a, 0, progress_a, seen_by_b));
    let task_b = tokio::spawn(fast_member(b, 1, progress_b, seen_by_a));
    let publishing = async { (task_a.await.unwrap(), task_b.await.unwrap()) };
    let (a, b) = within(
        Duration::from_secs(20),
        "the fast members to get every message despite the slow one",
        publishing,
    )
    .await;
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let peak = sampler.await.unwrap();
    let growth = peak.saturating_sub(baseline);
    eprintln!(
        "{policy:?}: 2 x {PER_PUBLISHER} messages of {BIG} bytes through a room with a slow \
         member in {elapsed:?}; RSS grew by {} KiB at most",
        growth >> 10
    );
    (server, rooms, slow, vec![a, b], growth)
}

/// Closes the fast members normally and stops the server.
async fn finish_slow_room(server: Running, rooms: &Rooms, fast: Vec<ClientSocket>) {
    for mut ws in fast {
        within(STEP, "a fast member to close", ws.close(None))
            .await
            .unwrap();
        assert_eq!(ws.close_code(), CloseCode::Normal);
    }
    wait_room_count(rooms, 0).await;
    server.wait_idle(STEP).await;
    server.stop().await;
}

/// Under [`SlowConsumerPolicy::Close`] the member that never reads is
/// closed with 1013 while the others get everything, and the server holds
/// a bounded amount of memory for it.
///
/// What the slow member sees once it reads: the messages that had already
/// reached the socket (a gap-free prefix of each publisher's stream: the
/// queue is discarded whole, never thinned, and counted as dropped), then
/// the close frame 1013, then the end. The close overtakes what had not
/// reached the socket, but the kernel's buffers are full, so it can only
/// arrive once the member reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_is_closed_with_1013_and_the_others_get_everything() {
    let _serial = SERIAL.lock().await;
    let (server, rooms, mut slow, fast, growth) = slow_room(SlowConsumerPolicy::Close).await;
    let stats = server.handle.queue_stats();
    assert_eq!(
        stats.closed_slow.load(Ordering::Relaxed),
        1,
        "exactly the slow member is closed"
    );
    // The queue it overflowed was discarded, and counted.
    let dropped = stats.dropped.load(Ordering::Relaxed);
    assert!(dropped > 0, "nothing counted as dropped");
    assert!(
        growth < 64 << 20,
        "the process grew by {} MiB",
        growth >> 20
    );

    // Now read: the data that made it to the socket, then 1013.
    let mut next = [0u32; 2];
    let mut close = None;
    let read_all = async {
        while let Some(item) = slow.recv().await {
            match item.expect("the slow member's stream") {
                Message::Binary(data) => {
                    assert!(close.is_none(), "data after the close frame");
                    let (sender, seq) = check_payload(&data, BIG);
                    assert_eq!(seq, next[usize::from(sender)], "a gap in the slow stream");
                    next[usize::from(sender)] += 1;
                }
                Message::Close(frame) => close = Some(frame),
                Message::Ping(_) | Message::Pong(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    };
    within(STEP, "the slow member to read to the end", read_all).await;
    let received = next[0] + next[1];
    eprintln!("the slow member got {received} messages before its 1013, {dropped} dropped");
    assert!(
        u64::from(received) + dropped <= 2 * u64::from(PER_PUBLISHER),
        "more received and dropped than published"
    );
    let frame = close
        .expect("a close frame")
        .expect("a close frame with a code");
    assert_eq!(frame.code, CloseCode::TryAgainLater);
    assert_eq!(slow.close_code(), CloseCode::TryAgainLater);
    drop(slow);
    // It has left the room.
    wait_members(&rooms, "slow", 2).await;
    finish_slow_room(server, &rooms, fast).await;
}

/// Under [`SlowConsumerPolicy::DropOldest`] the slow member stays
/// connected, loses the oldest messages (counted), and gets the newest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_oldest_keeps_the_slow_consumer_and_counts_what_it_lost() {
    let _serial = SERIAL.lock().await;
    let (server, rooms, mut slow, fast, growth) = slow_room(SlowConsumerPolicy::DropOldest).await;
    let stats = server.handle.queue_stats();
    assert_eq!(stats.closed_slow.load(Ordering::Relaxed), 0);
    let dropped = stats.dropped.load(Ordering::Relaxed);
    assert!(dropped > 0, "nothing was dropped");
    assert!(
        growth < 64 << 20,
        "the process grew by {} MiB",
        growth >> 20
    );

    // Reading now: increasing sequence numbers with gaps, and everything
    // that was not counted as dropped (the count is final: each message
    // reached the slow member's queue before the fast member that
    // received it).
    let expected = 2 * u64::from(PER_PUBLISHER) - dropped;
    let mut last: [Option<u32>; 2] = [None, None];
    let mut received = 0u64;
    let read = async {
        while received < expected {
            match slow.recv().await {
                Some(Ok(Message::Binary(data))) => {
                    let (sender, seq) = check_payload(&data, BIG);
                    let previous = &mut last[usize::from(sender)];
                    if let Some(p) = *previous {
                        assert!(seq > p, "out of order: {seq} after {p}");
                    }
                    *previous = Some(seq);
                    received += 1;
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                other => panic!("the slow member after {received} messages: {other:?}"),
            }
        }
    };
    within(STEP, "the slow member to get what was not dropped", read).await;
    eprintln!("the slow member got {received} messages, {dropped} were dropped");
    // The newest messages are the ones kept: the last one published
    // (the last of one of the publishers) arrived.
    assert!(
        last.contains(&Some(PER_PUBLISHER - 1)),
        "the newest messages were dropped: last seen {last:?}"
    );
    // Every message was either delivered or counted as dropped.
    assert_eq!(received + dropped, 2 * u64::from(PER_PUBLISHER));
    within(STEP, "the slow member to close", slow.close(None))
        .await
        .unwrap();
    assert_eq!(slow.close_code(), CloseCode::Normal);
    drop(slow);
    finish_slow_room(server, &rooms, fast).await;
}

/// A slow consumer that never reads at all must still be let go: once
/// the server decided to close it (1013), it cannot wait for ever for the
/// peer to take the close frame, or the "closed" connection keeps its
/// task, socket and buffers for as long as the peer likes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_that_never_reads_is_released_within_the_close_timeout() {
    let _serial = SERIAL.lock().await;
    let rooms = Arc::new(Rooms::new());
    let limits = QueueLimits {
        max_messages: 64,
        max_bytes: 256 << 10,
        policy: SlowConsumerPolicy::Close,
    };
    let server = Running::start(relay_server(&rooms).queue_limits(limits)).await;
    let url = server.url("/chat/stuck");
    let slow = duplex::connect(&url).await.unwrap();
    let mut publisher = duplex::connect(&url).await.unwrap();
    wait_members(&rooms, "stuck", 2).await;

    let stats = server.handle.queue_stats();
    let publish = async {
        let mut seq = 0;
        while stats.closed_slow.load(Ordering::Relaxed) == 0 {
            assert!(seq < 20_000, "no overflow after {seq} messages");
            publisher
                .send(Message::Binary(payload(0, seq, BIG)))
                .await
                .unwrap();
            seq += 1;
        }
    };
    within(STEP, "the slow member's queue to overflow", publish).await;
    let decided = Instant::now();

    let limit = DEFAULT_CLOSE_TIMEOUT + Duration::from_secs(3);
    let released = async {
        while rooms.member_count("stuck") != 1 || server.handle.connections() != 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let outcome = tokio::time::timeout(limit, released).await;
    let held = (server.handle.connections(), rooms.member_count("stuck"));
    // Let go of the slow client only now: its going away would end the
    // connection by itself.
    drop(slow);
    assert!(
        outcome.is_ok(),
        "{limit:?} after the 1013 decision the server still holds the slow \
         consumer ({} connections, {} members, 1 expected)",
        held.0,
        held.1
    );
    eprintln!(
        "the slow consumer was released {:?} after the decision",
        decided.elapsed()
    );
    within(STEP, "the publisher to close", publisher.close(None))
        .await
        .unwrap();
    server.wait_idle(STEP).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_of_a_1_mib_message_reaches_every_member_intact() {
    let _serial = SERIAL.lock().await;
    const MEMBERS: usize = 20;
    let rooms = Arc::new(Rooms::new());
    let server = Running::start(relay_server(&rooms)).await;
    let url = server.url("/chat/big");
    let mut members = Vec::new();
    for _ in 0..MEMBERS {
        members.push(duplex::connect(&url).await.unwrap());
    }
    wait_members(&rooms, "big", MEMBERS).await;
    let data = payload(7, 1, 1 << 20);

    // From a member: everyone else gets it.
    members[0]
        .send(Message::Binary(data.clone()))
        .await
        .unwrap();
    // From the server side: every member gets it, from one shared payload.
    let message = Message::Binary(data.clone());
    assert_eq!(rooms.publish("big", &message), MEMBERS);

    let receivers: Vec<_> = members
        .into_iter()
        .enumerate()
        .map(|(i, mut ws)| {
            let data = data.clone();
            tokio::spawn(async move {
                let expected = if i == 0 { 1 } else { 2 };
                let mut got = 0;
                while got < expected {
                    match ws.recv().await {
                        Some(Ok(Message::Binary(bytes))) => {
                            assert!(bytes == data, "member {i} got a different payload");
                            got += 1;
                        }
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                        other => panic!("member {i}: {other:?}"),
                    }
                }
                ws.close(None).await.unwrap();
                assert_eq!(ws.close_code(), CloseCode::Normal);
            })
        })
        .collect();
    for task in receivers {
        within(STEP, "a member to get the 1 MiB messages", task)
            .await
            .unwrap();
    }
    wait_room_count(&rooms, 0).await;
    server.wait_idle(STEP).await;
    server.stop().await;
}

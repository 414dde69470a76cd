//! A slow consumer closed with 1013 sees its 1013: the close overtakes the
//! messages queued for it (after at most the frame being written), and the
//! messages it replaces are counted as dropped, so that every message
//! queued for the consumer is either received or counted.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{no_deflate, within, STEP};
use duplex::{ClientBuilder, CloseCode, Message, Relay, Rooms, Server, Target};
use tokio::net::TcpSocket;

/// Size of each relayed message.
const BIG: usize = 4096;
/// Messages published in one go, before the server's task gets to run:
/// one batch of 6 MiB handed to the engine at once, below the default
/// queue limit of 8 MiB. The 1013 must overtake what of it is unwritten.
const BURST: u32 = 1536;
/// The slow reader's pace, one message per 8 ms (512 KiB/s): reading the
/// whole burst would take it 12 s, far more than the 5 s the server gives
/// a closing peer.
const PACE: Duration = Duration::from_millis(8);

fn payload(seq: u32) -> Message {
    let mut data = vec![0u8; BIG];
    data[..4].copy_from_slice(&seq.to_be_bytes());
    Message::Binary(Bytes::from(data))
}

fn seq_of(data: &[u8]) -> u32 {
    assert_eq!(data.len(), BIG, "a message of the wrong size");
    u32::from_be_bytes(data[..4].try_into().unwrap())
}

/// Waits until `room` has `n` members.
async fn wait_members(rooms: &Rooms, room: &str, n: usize) {
    let start = Instant::now();
    while rooms.member_count(room) != n {
        assert!(
            start.elapsed() < STEP,
            "room {room:?} never had {n} members"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// One thread: the test decides when the server's tasks run, so the burst
/// reaches the engine as one batch.
#[tokio::test(flavor = "current_thread")]
async fn slow_consumer_sees_its_1013_ahead_of_the_queued_messages() {
    let rooms = Arc::new(Rooms::new());
    // Small socket buffers on both sides (accepted sockets inherit the
    // listener's): little of the stream can wait in the kernels, so what
    // the consumer reads before its close is what the server queued ahead
    // of it. (Loopback buffers grow to megabytes otherwise.)
    let listener = TcpSocket::new_v4().unwrap();
    listener.set_send_buffer_size(64 << 10).unwrap();
    listener.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = listener.listen(16).unwrap();
    let addr = listener.local_addr().unwrap();
    let bound = Server::new()
        .config(no_deflate())
        .rooms(rooms.clone())
        .handler("/chat/{room}", Relay::for_request)
        .listen(listener);
    let handle = bound.handle();
    let serving = tokio::spawn(bound.serve());
    let url = format!("ws://{addr}/chat/slow");
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(16 << 10).unwrap();
    let tcp = socket.connect(addr).await.unwrap();
    let builder = ClientBuilder::new(&url).config(no_deflate());
    let mut slow = builder
        .handshake(tcp, &Target::parse(&url).unwrap())
        .await
        .unwrap();
    wait_members(&rooms, "slow", 1).await;

    // Publish (as a backend would) until the consumer's queue overflows;
    // `publish` says whether the message was queued for it.
    let stats = handle.queue_stats();
    let mut accepted = 0u64;
    let mut seq = 0u32;
    for _ in 0..BURST {
        accepted += rooms.publish("slow", &payload(seq)) as u64;
        seq += 1;
    }
    while stats.closed_slow.load(Ordering::Relaxed) == 0 {
        assert!(seq < 100_000, "no overflow after {seq} messages");
        // The server writes until the consumer's socket is full.
        tokio::task::yield_now().await;
        for _ in 0..64 {
            accepted += rooms.publish("slow", &payload(seq)) as u64;
            seq += 1;
        }
    }
    let decided = Instant::now();

    // Now read, slowly: what reached the socket, in order, then 1013.
    let mut received = 0u64;
    let mut close = None;
    let mut error = None;
    let read = async {
        while let Some(item) = slow.recv().await {
            match item {
                Ok(Message::Binary(data)) => {
                    assert!(close.is_none(), "data after the close frame");
                    assert_eq!(u64::from(seq_of(&data)), received, "a gap in the stream");
                    received += 1;
                    tokio::time::sleep(PACE).await;
                }
                Ok(Message::Close(frame)) => close = Some(frame),
                Ok(Message::Ping(_) | Message::Pong(_)) => {}
                Ok(other) => panic!("unexpected {other:?}"),
                Err(e) => error = Some(e.to_string()),
            }
        }
    };
    within(
        Duration::from_secs(60),
        "the slow consumer to read to the end",
        read,
    )
    .await;
    let took = decided.elapsed();
    let dropped = stats.dropped.load(Ordering::Relaxed);
    eprintln!(
        "the slow consumer read {received} of {accepted} queued messages in {took:?}, then \
         close {:?} (error {error:?}); {dropped} counted as dropped",
        slow.close_code()
    );
    let frame = close
        .unwrap_or_else(|| panic!("no close frame after {received} messages: {error:?}"))
        .expect("a close frame with a code");
    assert_eq!(frame.code, CloseCode::TryAgainLater);
    assert_eq!(slow.close_code(), CloseCode::TryAgainLater);
    // The close overtook most of the burst.
    assert!(
        received < u64::from(BURST) / 2,
        "{received} messages before the 1013"
    );
    let idle = async {
        while handle.connections() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    within(STEP, "the server to let the consumer go", idle).await;
    let unsent = stats.unsent.load(Ordering::Relaxed);
    // Nothing lost quietly: every message queued for the consumer was
    // either received or counted.
    assert_eq!(
        received + dropped + unsent,
        accepted,
        "received {received} + dropped {dropped} + unsent {unsent} != queued {accepted}"
    );
    assert_eq!(stats.closed_slow.load(Ordering::Relaxed), 1);
    handle.shutdown();
    within(STEP, "serve() to return", serving)
        .await
        .unwrap()
        .unwrap();
}

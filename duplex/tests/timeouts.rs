//! The message, idle and write timeouts over real sockets on 127.0.0.1,
//! with timeouts of 1 s: a client that starts a frame and trickles it is
//! failed with 1008 while messages that each arrive in time are never cut
//! off; a quiet connection is closed with 1001 (pings do not count); a
//! peer that never reads is dropped on every write path (echo, the stream
//! API's `send` whole and split, a handler's queue, a room) while one that
//! reads slowly is not.
//!
//! The misbehaving peers are raw TCP clients, so they can do what a real
//! client never would (see `common::RawClient`).

mod common;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{echo, masked, parse_frame, within, RawClient, RawFrame, Running, STEP};
use duplex::{
    ClientBuilder, CloseCode, Error, Handler, Message, QueueLimits, Relay, Server, ServerSocket,
    Session, Timeouts, UpgradeRequest,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// The timeout under test.
const LIMIT: Duration = Duration::from_secs(1);
/// Scheduling slack on top of it (a loaded 2-core machine).
const MARGIN: Duration = Duration::from_secs(4);
/// What a timer may fire early by, measured from outside the server.
const EARLY: Duration = Duration::from_millis(20);

fn timeouts(
    message: Option<Duration>,
    idle: Option<Duration>,
    write: Option<Duration>,
) -> Timeouts {
    Timeouts {
        message,
        idle,
        write,
    }
}

/// `/echo` and `/chat/{room}` with these timeouts, and queues large enough
/// that the slow-consumer policy never acts before the write timeout.
fn server_with(timeouts: Timeouts) -> Server {
    Server::new()
        .timeouts(timeouts)
        .queue_limits(QueueLimits {
            max_bytes: 64 << 20,
            ..QueueLimits::default()
        })
        .route("/echo", echo)
        .handler("/chat/{room}", Relay::for_request)
}

/// A raw client's socket once upgraded on `path`.
async fn raw(addr: std::net::SocketAddr, path: &str) -> TcpStream {
    RawClient::open(addr, path).await.tcp
}

/// The next server frame; `None` at the end of the stream or a reset.
async fn next_frame(rd: &mut OwnedReadHalf, buf: &mut Vec<u8>) -> Option<RawFrame> {
    let mut chunk = [0u8; 8192];
    loop {
        if let Some((frame, used)) = parse_frame(buf) {
            buf.drain(..used);
            return Some(frame);
        }
        match rd.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Waits until `f` holds, polling, for at most `limit`.
async fn until(limit: Duration, what: &str, f: impl Fn() -> bool) {
    within(limit, what, async {
        while !f() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_message_is_failed_with_1008_after_the_message_timeout() {
    let server = Running::start(server_with(timeouts(Some(LIMIT), None, None))).await;
    for (i, path) in ["/echo", "/chat/slow"].into_iter().enumerate() {
        let (mut rd, mut wr) = raw(server.addr, path).await.into_split();
        // A 1 MiB binary frame, then its payload one byte per 50 ms.
        let mut header = vec![0x82, 0x80 | 127];
        header.extend_from_slice(&(1u64 << 20).to_be_bytes());
        header.extend_from_slice(&[1, 2, 3, 4]);
        wr.write_all(&header).await.unwrap();
        let started = Instant::now();
        let trickle = tokio::spawn(async move {
            while wr.write_all(&[0]).await.is_ok() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        let mut buf = Vec::new();
        let close = within(
            LIMIT + MARGIN,
            "the server's close",
            next_frame(&mut rd, &mut buf),
        )
        .await
        .expect("a close frame before the end of the stream");
        let took = started.elapsed();
        assert_eq!(close.close_code(), 1008, "{path}: {close:?}");
        assert_eq!(close.close_reason(), "message timeout", "{path}");
        assert!(took + EARLY >= LIMIT, "{path}: cut off after only {took:?}");
        // The server closes its side at once, then drains for at most the
        // close timeout (5 s) while we keep trickling.
        let end = within(STEP, "the end of the stream", next_frame(&mut rd, &mut buf)).await;
        assert!(end.is_none(), "{path}: a frame after the close: {end:?}");
        server.wait_idle(STEP).await;
        trickle.abort();
        assert_eq!(
            server
                .handle
                .timeout_stats()
                .message
                .load(Ordering::Relaxed),
            i as u64 + 1
        );
        eprintln!(
            "{path}: 1008 after {took:?}, released after {:?}",
            started.elapsed()
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn messages_that_each_arrive_in_time_are_not_cut_off() {
    let server = Running::start(server_with(timeouts(Some(LIMIT), None, None))).await;
    let mut client = RawClient::open(server.addr, "/echo").await;
    let started = Instant::now();
    // Every message arrives in two halves 150 ms apart, the next one
    // starting with the end of this one: always a message in progress, for
    // more than twice the timeout in all.
    let messages: Vec<Vec<u8>> = (0..16u8).map(|i| masked(0x82, &[i; 100])).collect();
    client.send(&messages[0][..50]).await;
    for i in 0..messages.len() {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let mut bytes = messages[i][50..].to_vec();
        if let Some(next) = messages.get(i + 1) {
            bytes.extend_from_slice(&next[..50]);
        }
        client.send(&bytes).await;
        let echo = within(STEP, "the echo", client.read_frame())
            .await
            .expect("an echo");
        assert_eq!(echo.payload, [i as u8; 100]);
    }
    assert!(started.elapsed() > LIMIT * 2);
    assert_eq!(
        server
            .handle
            .timeout_stats()
            .message
            .load(Ordering::Relaxed),
        0
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_connection_is_closed_with_1001_after_the_idle_timeout() {
    let server = Running::start(server_with(timeouts(None, Some(LIMIT), None))).await;
    for (i, path) in ["/echo", "/chat/quiet"].into_iter().enumerate() {
        // Keepalive pings and pongs go on all the while: they are no data.
        let mut ws = ClientBuilder::new(server.url(path))
            .keepalive(Duration::from_millis(100), Duration::from_secs(5))
            .connect()
            .await
            .unwrap();
        // Data every 300 ms keeps it open past the timeout.
        let mut last = Instant::now();
        for n in 0..5 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            ws.send(format!("message {n}")).await.unwrap();
            last = Instant::now();
        }
        let close = within(LIMIT + MARGIN, "the idle close", async {
            loop {
                match ws.recv().await {
                    Some(Ok(Message::Close(frame))) => return frame,
                    Some(Ok(Message::Text(_) | Message::Pong(_))) => {}
                    other => panic!("{path}: expected the server's close, got {other:?}"),
                }
            }
        })
        .await;
        let quiet = last.elapsed();
        let close = close.expect("a close frame with a code");
        assert_eq!(close.code, CloseCode::Away, "{path}");
        assert_eq!(close.reason, "idle timeout", "{path}");
        assert!(
            quiet + EARLY >= LIMIT,
            "{path}: closed after {quiet:?} of quiet"
        );
        assert!(within(STEP, "the end", ws.recv()).await.is_none());
        assert_eq!(ws.close_code(), CloseCode::Away);
        server.wait_idle(STEP).await;
        assert_eq!(
            server.handle.timeout_stats().idle.load(Ordering::Relaxed),
            i as u64 + 1
        );
        eprintln!("{path}: closed after {quiet:?} without data");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_client_closes_a_quiet_connection_after_its_idle_timeout() {
    let server = Running::start(server_with(Timeouts::OFF)).await;
    let mut ws = ClientBuilder::new(server.url("/echo"))
        .timeouts(timeouts(None, Some(LIMIT), None))
        .connect()
        .await
        .unwrap();
    let started = Instant::now();
    match within(LIMIT + MARGIN, "the server's answer", ws.recv()).await {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Away),
        other => panic!("expected the echo of our close, got {other:?}"),
    }
    assert!(started.elapsed() + EARLY >= LIMIT);
    assert!(within(STEP, "the end", ws.recv()).await.is_none());
    server.wait_idle(STEP).await;
    server.stop().await;
}

/// Writes up to 16 MiB of 64 KiB messages and never reads; returns when
/// the last write made progress.
fn flood(tcp: TcpStream) -> (tokio::task::JoinHandle<()>, Arc<Mutex<Instant>>) {
    let progress = Arc::new(Mutex::new(Instant::now()));
    let last = progress.clone();
    let task = tokio::spawn(async move {
        let (_rd, mut wr) = tcp.into_split();
        let frame = masked(0x82, &vec![7u8; 64 << 10]);
        for _ in 0..256 {
            if wr.write_all(&frame).await.is_err() {
                break;
            }
            *last.lock().unwrap() = Instant::now();
        }
        // Keep the socket (and its unread data) until aborted.
        std::future::pending::<()>().await;
    });
    (task, progress)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_reads_is_dropped_from_echo() {
    let server = Running::start(server_with(timeouts(None, None, Some(LIMIT)))).await;
    let (task, progress) = flood(raw(server.addr, "/echo").await);
    server.wait_idle(STEP * 3).await;
    let after = progress.lock().unwrap().elapsed();
    task.abort();
    assert_eq!(
        server.handle.timeout_stats().write.load(Ordering::Relaxed),
        1
    );
    eprintln!("/echo: dropped {after:?} after our last write went through");
    server.stop().await;
}

/// Sends 64 KiB messages until sending fails; reports the error. With
/// `split`, from the writer half, while the reader half waits for a
/// message and must end too.
async fn sender(ws: ServerSocket, split: bool, errors: mpsc::UnboundedSender<String>) {
    let big = Message::binary(vec![1u8; 64 << 10]);
    if !split {
        let mut ws = ws;
        loop {
            if let Err(e) = ws.send(big.clone()).await {
                let _ = errors.send(format!("send: {e}"));
                return;
            }
        }
    }
    let (mut reader, mut writer) = ws.split();
    let reading = tokio::spawn(async move { while reader.recv().await.is_some() {} });
    loop {
        if let Err(e) = writer.send(big.clone()).await {
            let _ = errors.send(format!("split send: {e}"));
            break;
        }
    }
    within(STEP, "the reader half to end", reading)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_reads_fails_the_stream_apis_send() {
    let (tx, mut errors) = mpsc::unbounded_channel();
    let (whole, halves) = (tx.clone(), tx);
    let server = Server::new()
        .timeouts(timeouts(None, None, Some(LIMIT)))
        .route("/send", move |ws, _req: UpgradeRequest| {
            sender(ws, false, whole.clone())
        })
        .route("/split", move |ws, _req: UpgradeRequest| {
            sender(ws, true, halves.clone())
        });
    let server = Running::start(server).await;
    for (i, path) in ["/send", "/split"].into_iter().enumerate() {
        let _deaf = raw(server.addr, path).await;
        let error = within(STEP * 3, "send to fail", errors.recv())
            .await
            .unwrap();
        assert!(
            error.ends_with("timed out: the peer stopped reading"),
            "{path}: {error}"
        );
        server.wait_idle(STEP).await;
        assert_eq!(
            server.handle.timeout_stats().write.load(Ordering::Relaxed),
            i as u64 + 1
        );
    }
    server.stop().await;
}

/// Queues 16 MiB for its peer at once and reports its errors.
struct Flooder {
    errors: mpsc::UnboundedSender<String>,
}

impl Handler for Flooder {
    async fn on_open(&mut self, session: &Session) {
        for _ in 0..256 {
            session.send(Message::binary(vec![2u8; 64 << 10])).unwrap();
        }
    }
    async fn on_message(&mut self, _: &Session, _: Message) {}
    async fn on_error(&mut self, _: &Session, error: &Error) {
        let _ = self.errors.send(error.to_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_reads_is_dropped_from_a_handler() {
    let (tx, mut errors) = mpsc::unbounded_channel();
    let server = server_with(timeouts(None, None, Some(LIMIT)))
        .handler("/flood", move |_req: &UpgradeRequest| Flooder {
            errors: tx.clone(),
        });
    let server = Running::start(server).await;
    let _deaf = raw(server.addr, "/flood").await;
    let error = within(STEP * 3, "on_error", errors.recv()).await.unwrap();
    assert_eq!(error, "timed out: the peer stopped reading");
    server.wait_idle(STEP).await;
    assert_eq!(
        server.handle.timeout_stats().write.load(Ordering::Relaxed),
        1
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_member_that_never_reads_is_dropped_and_the_room_goes_on() {
    let server = Running::start(server_with(timeouts(None, None, Some(LIMIT)))).await;
    let rooms = server.handle.hub().rooms().clone();
    let _deaf = raw(server.addr, "/chat/r").await;
    let mut talker = duplex::connect(&server.url("/chat/r")).await.unwrap();
    until(STEP, "both members", || rooms.member_count("r") == 2).await;
    let started = Instant::now();
    for _ in 0..256 {
        talker
            .send(Message::binary(vec![3u8; 64 << 10]))
            .await
            .unwrap();
    }
    until(STEP * 3, "the deaf member to go", || {
        rooms.member_count("r") == 1
    })
    .await;
    eprintln!(
        "room: the deaf member went {:?} after the burst began",
        started.elapsed()
    );
    assert_eq!(
        server.handle.timeout_stats().write.load(Ordering::Relaxed),
        1
    );
    // The talker was never held up and is still served.
    talker.send("still here").await.unwrap();
    within(STEP, "close", talker.close(None)).await.unwrap();
    server.wait_idle(STEP).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_reads_slowly_is_not_dropped() {
    let server = Running::start(server_with(timeouts(None, None, Some(LIMIT)))).await;
    let (mut rd, mut wr) = raw(server.addr, "/echo").await.into_split();
    const MESSAGES: usize = 128;
    let frame = masked(0x82, &vec![9u8; 64 << 10]);
    let writing = tokio::spawn(async move {
        for _ in 0..MESSAGES {
            wr.write_all(&frame).await.unwrap();
        }
        wr
    });
    // 128 KiB every 25 ms: the server waits for room most of the time,
    // but never a whole second.
    let mut got = 0usize;
    let mut chunk = vec![0u8; 128 << 10];
    // Each echo: a 10-byte header (64-bit length) and the payload.
    let expected = MESSAGES * ((64 << 10) + 10);
    within(STEP * 3, "every echo", async {
        while got < expected {
            let n = rd.read(&mut chunk).await.expect("read");
            assert!(n > 0, "the server closed after {got} of {expected} bytes");
            got += n;
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    })
    .await;
    let _wr = writing.await.unwrap();
    assert_eq!(server.handle.connections(), 1);
    assert_eq!(
        server.handle.timeout_stats().write.load(Ordering::Relaxed),
        0
    );
    server.stop().await;
}

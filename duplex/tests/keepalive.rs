//! Keepalive over real sockets on 127.0.0.1: a client gives up on a server
//! that stops answering, a server drops a client that never answers its
//! pings (on a plain route and on a handler route), also when it keeps
//! sending data or answers with pongs of another payload, the client and
//! the reconnecting client do the same with such a server, and peers that
//! answer pings with their payload stay connected for as long as they like.
//!
//! The misbehaving peers are hand-written: a raw TCP socket completes the
//! handshake (accept key from `duplex::proto::handshake::accept_key`) and
//! then only reads, logging the frames it gets, or chatters.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{echo, within, Running};
use duplex::proto::handshake::accept_key;
use duplex::Relay;
use duplex::{ClientBuilder, CloseCode, Error, Message, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const STEP: Duration = Duration::from_secs(10);
const INTERVAL: Duration = Duration::from_millis(200);
const TIMEOUT: Duration = Duration::from_millis(200);
/// Scheduling slack on top of `INTERVAL + TIMEOUT`.
const MARGIN: Duration = Duration::from_millis(800);

/// A frame seen by a raw peer, with when it arrived.
#[derive(Debug)]
struct Seen {
    at: Instant,
    opcode: u8,
    payload: Vec<u8>,
}

/// What a raw peer observes.
#[derive(Debug)]
enum Event {
    Frame(Seen),
    /// End of stream (`clean`), or a reset.
    End {
        at: Instant,
        clean: bool,
    },
}

/// Reads until `\r\n\r\n`; returns the head and whatever followed it.
async fn read_head(tcp: &mut TcpStream) -> (String, Vec<u8>) {
    let mut data = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = data.split_off(end + 4);
            return (String::from_utf8_lossy(&data).into_owned(), rest);
        }
        let n = tcp.read(&mut chunk).await.expect("read the HTTP head");
        assert!(n > 0, "the peer closed during the handshake");
        data.extend_from_slice(&chunk[..n]);
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Parses one frame off the front of `buf` (masked or not).
fn parse_frame(buf: &mut Vec<u8>) -> Option<(u8, Vec<u8>)> {
    if buf.len() < 2 {
        return None;
    }
    let opcode = buf[0] & 0x0f;
    let masked = buf[1] & 0x80 != 0;
    let (len, mut at) = match buf[1] & 0x7f {
        126 if buf.len() >= 4 => (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4),
        127 if buf.len() >= 10 => (u64::from_be_bytes(buf[2..10].try_into().unwrap()), 10),
        126 | 127 => return None,
        n => (u64::from(n), 2),
    };
    let key = if masked {
        if buf.len() < at + 4 {
            return None;
        }
        at += 4;
        Some([buf[at - 4], buf[at - 3], buf[at - 2], buf[at - 1]])
    } else {
        None
    };
    let len = usize::try_from(len).unwrap();
    if buf.len() < at + len {
        return None;
    }
    let mut payload = buf[at..at + len].to_vec();
    if let Some(key) = key {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= key[i % 4];
        }
    }
    buf.drain(..at + len);
    Some((opcode, payload))
}

/// Reads frames until the stream ends, reporting each; never writes.
async fn log_frames(mut tcp: TcpStream, mut buf: Vec<u8>, events: mpsc::UnboundedSender<Event>) {
    let mut chunk = [0u8; 4096];
    loop {
        while let Some((opcode, payload)) = parse_frame(&mut buf) {
            let seen = Seen {
                at: Instant::now(),
                opcode,
                payload,
            };
            let _ = events.send(Event::Frame(seen));
        }
        match tcp.read(&mut chunk).await {
            Ok(0) => {
                let _ = events.send(Event::End {
                    at: Instant::now(),
                    clean: true,
                });
                return;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => {
                let _ = events.send(Event::End {
                    at: Instant::now(),
                    clean: false,
                });
                return;
            }
        }
    }
}

/// A "server" that accepts one WebSocket connection, then only reads.
async fn silent_server() -> (SocketAddr, mpsc::UnboundedReceiver<Event>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let (head, rest) = read_head(&mut tcp).await;
        let key = header(&head, "sec-websocket-key").expect("a Sec-WebSocket-Key");
        let response = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            accept_key(key)
        );
        tcp.write_all(response.as_bytes()).await.unwrap();
        log_frames(tcp, rest, tx).await;
    });
    (addr, rx)
}

async fn next_event(events: &mut mpsc::UnboundedReceiver<Event>, what: &str) -> Event {
    within(STEP, what, events.recv())
        .await
        .unwrap_or_else(|| panic!("no more events while waiting for {what}"))
}

fn close_code_of(payload: &[u8]) -> u16 {
    assert!(payload.len() >= 2, "a close frame without a code");
    u16::from_be_bytes([payload[0], payload[1]])
}

#[tokio::test]
async fn client_gives_up_on_a_server_that_stops_answering() {
    let (addr, mut events) = silent_server().await;
    let mut ws = ClientBuilder::new(format!("ws://{addr}/"))
        .keepalive(INTERVAL, TIMEOUT)
        .connect()
        .await
        .unwrap();
    let connected = Instant::now();
    let got = within(STEP, "recv to give up", ws.recv()).await;
    let took = connected.elapsed();
    match got {
        Some(Err(Error::Timeout(_))) => {}
        other => panic!("expected a keepalive timeout, got {other:?}"),
    }
    assert!(
        took + Duration::from_millis(50) >= INTERVAL + TIMEOUT,
        "gave up after {took:?}, before interval + timeout"
    );
    assert!(
        took <= INTERVAL + TIMEOUT + MARGIN,
        "gave up only after {took:?}"
    );
    assert_eq!(ws.close_code(), CloseCode::Abnormal);
    assert!(ws.recv().await.is_none(), "recv after the timeout");

    // The silent server saw one ping after the interval, then a close 1001.
    let ping = match next_event(&mut events, "the keepalive ping").await {
        Event::Frame(seen) if seen.opcode == 0x9 => seen,
        other => panic!("expected a ping, got {other:?}"),
    };
    let after = ping.at - connected;
    assert!(
        after + Duration::from_millis(50) >= INTERVAL && after <= INTERVAL + MARGIN,
        "ping after {after:?}"
    );
    match next_event(&mut events, "the close frame").await {
        Event::Frame(seen) if seen.opcode == 0x8 => {
            assert_eq!(close_code_of(&seen.payload), 1001);
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
    drop(ws);
    match next_event(&mut events, "the end of the connection").await {
        Event::End { .. } => {}
        other => panic!("expected the end, got {other:?}"),
    }
    eprintln!(
        "client: ping after {after:?}, gave up after {took:?} (interval {INTERVAL:?}, timeout {TIMEOUT:?})"
    );
}

#[tokio::test]
async fn client_keepalive_stays_up_while_the_server_answers() {
    let server = Running::start(Server::new().route("/echo", echo)).await;
    let mut ws = ClientBuilder::new(server.url("/echo"))
        .keepalive(Duration::from_millis(100), Duration::from_millis(100))
        .connect()
        .await
        .unwrap();
    let mut pongs = 0;
    let listen = async {
        while let Some(item) = ws.recv().await {
            match item.expect("the connection stays healthy") {
                Message::Pong(_) => pongs += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        panic!("the connection ended");
    };
    // Ten intervals of silence from the application.
    let _ = tokio::time::timeout(Duration::from_secs(1), listen).await;
    assert!(pongs >= 3, "only {pongs} keepalive pongs in 1 s");
    ws.send("still here").await.unwrap();
    loop {
        match within(STEP, "the echo", ws.recv()).await {
            Some(Ok(Message::Pong(_))) => {}
            Some(Ok(m)) => {
                assert_eq!(m, Message::text("still here"));
                break;
            }
            other => panic!("expected the echo, got {other:?}"),
        }
    }
    within(STEP, "close", ws.close(None)).await.unwrap();
    assert_eq!(ws.close_code(), CloseCode::Normal);
    // Let go of the socket: the server need not wait for our FIN.
    drop(ws);
    server.wait_idle(STEP).await;
    server.stop().await;
}

fn keepalive_server() -> Server {
    Server::new()
        .keepalive(INTERVAL, TIMEOUT)
        .route("/echo", echo)
        .handler("/chat/{room}", Relay::for_request)
}

/// A raw client that completes the handshake on `path` and then only
/// reads.
async fn silent_client(addr: SocketAddr, path: &str) -> (Instant, mpsc::UnboundedReceiver<Event>) {
    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let (head, rest) = within(STEP, "the 101", read_head(&mut tcp)).await;
    let connected = Instant::now();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(
        header(&head, "sec-websocket-accept"),
        Some(accept_key(KEY).as_str())
    );
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(log_frames(tcp, rest, tx));
    (connected, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_drops_a_client_that_never_answers_pings() {
    let server = Running::start(keepalive_server()).await;
    for path in ["/echo", "/chat/quiet"] {
        let (connected, mut events) = silent_client(server.addr, path).await;
        let ping = match next_event(&mut events, "the server's ping").await {
            Event::Frame(seen) if seen.opcode == 0x9 => seen,
            other => panic!("{path}: expected a ping, got {other:?}"),
        };
        let after = ping.at - connected;
        assert!(
            after + Duration::from_millis(50) >= INTERVAL && after <= INTERVAL + MARGIN,
            "{path}: ping after {after:?}"
        );
        // Then a close 1001 and the end, or just the end.
        let mut close = None;
        let end = loop {
            match next_event(&mut events, "the server to give up").await {
                Event::Frame(seen) if seen.opcode == 0x8 => {
                    close = Some(close_code_of(&seen.payload));
                }
                Event::Frame(seen) => panic!("{path}: unexpected frame {seen:?}"),
                Event::End { at, clean } => {
                    // It sent nothing unread, so no reset.
                    assert!(clean, "{path}: the connection was reset");
                    break at;
                }
            }
        };
        let took = end - connected;
        eprintln!("{path}: ping after {after:?}, close {close:?}, dropped after {took:?}");
        assert!(
            matches!(close, None | Some(1001)),
            "{path}: close code {close:?}"
        );
        assert!(
            took <= INTERVAL + TIMEOUT + MARGIN,
            "{path}: dropped only after {took:?}"
        );
        server.wait_idle(STEP).await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_keepalive_keeps_a_client_that_keeps_reading() {
    let server = Running::start(keepalive_server()).await;
    for path in ["/echo", "/chat/lively"] {
        let mut ws = duplex::connect(&server.url(path)).await.unwrap();
        let mut pings = 0;
        let listen = async {
            while let Some(item) = ws.recv().await {
                match item.expect("the connection stays healthy") {
                    // The engine has already answered it.
                    Message::Ping(_) => pings += 1,
                    other => panic!("{path}: unexpected {other:?}"),
                }
            }
            panic!("{path}: the server dropped a responsive client");
        };
        // Six intervals, each longer than interval + timeout would allow
        // without answers.
        let _ = tokio::time::timeout(INTERVAL * 6, listen).await;
        assert!(pings >= 3, "{path}: only {pings} pings");
        assert_eq!(server.handle.connections(), 1);
        if path == "/echo" {
            ws.send("still here").await.unwrap();
            loop {
                match within(STEP, "the echo", ws.recv()).await {
                    Some(Ok(Message::Ping(_))) => {}
                    Some(Ok(m)) => {
                        assert_eq!(m, Message::text("still here"));
                        break;
                    }
                    other => panic!("expected the echo, got {other:?}"),
                }
            }
        }
        within(STEP, "close", ws.close(None)).await.unwrap();
        assert_eq!(ws.close_code(), CloseCode::Normal);
        drop(ws);
        server.wait_idle(STEP).await;
    }
    server.stop().await;
}

/// How a raw peer answers pings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// Never.
    Nothing,
    /// With a pong of another payload.
    WrongPong,
    /// With the pong RFC 6455 asks for (the ping's payload).
    Pong,
}

/// A frame from a raw peer: masked when it plays a client.
fn raw_frame(opcode: u8, payload: &[u8], client: bool) -> Vec<u8> {
    let mask = client.then_some([0x37, 0xfa, 0x21, 0x3d]);
    common::frame(0x80 | opcode, payload, mask)
}

/// Plays a peer over an upgraded `tcp`: sends a text frame every 50 ms
/// (unless it only answers), answers pings as told, and reports what it
/// receives until the stream ends.
async fn chatter(
    tcp: TcpStream,
    mut buf: Vec<u8>,
    client: bool,
    answer: Answer,
    events: mpsc::UnboundedSender<Event>,
) {
    let (mut rd, mut wr) = tcp.into_split();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut chunk = [0u8; 4096];
    loop {
        while let Some((opcode, payload)) = parse_frame(&mut buf) {
            let reply = match (opcode, answer) {
                (0x9, Answer::Pong) => Some(raw_frame(0xA, &payload, client)),
                (0x9, Answer::WrongPong) => Some(raw_frame(0xA, b"something else", client)),
                _ => None,
            };
            if let Some(reply) = reply {
                let _ = wr.write_all(&reply).await;
            }
            let seen = Seen {
                at: Instant::now(),
                opcode,
                payload,
            };
            let _ = events.send(Event::Frame(seen));
        }
        tokio::select! {
            _ = tick.tick(), if answer != Answer::Pong => {
                let _ = wr.write_all(&raw_frame(0x1, b"still talking", client)).await;
            }
            read = rd.read(&mut chunk) => match read {
                Ok(0) | Err(_) => {
                    let clean = matches!(read, Ok(0));
                    let _ = events.send(Event::End { at: Instant::now(), clean });
                    return;
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            },
        }
    }
}

/// A raw client on `path` that plays [`chatter`].
async fn chatty_client(
    addr: SocketAddr,
    path: &str,
    answer: Answer,
) -> mpsc::UnboundedReceiver<Event> {
    let client = common::RawClient::open(addr, path).await;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(chatter(client.tcp, Vec::new(), true, answer, tx));
    rx
}

/// Waits for the end of a raw peer's connection; returns the close code
/// it got, if any, and when the connection ended.
async fn wait_end(
    events: &mut mpsc::UnboundedReceiver<Event>,
    what: &str,
) -> (Option<u16>, Instant) {
    let mut close = None;
    loop {
        match next_event(events, what).await {
            Event::Frame(seen) if seen.opcode == 0x8 => close = Some(close_code_of(&seen.payload)),
            Event::Frame(_) => {}
            Event::End { at, .. } => return (close, at),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_drops_a_client_that_sends_data_but_no_pongs() {
    let server = Running::start(keepalive_server()).await;
    let mut dropped = 0;
    for answer in [Answer::Nothing, Answer::WrongPong] {
        for path in ["/echo", "/chat/talkative"] {
            let connected = Instant::now();
            let mut events = chatty_client(server.addr, path, answer).await;
            let (close, end) = wait_end(&mut events, "the server to give up").await;
            let took = end - connected;
            eprintln!("{path}, {answer:?}: close {close:?}, dropped after {took:?}");
            assert!(
                matches!(close, None | Some(1001)),
                "{path}: close code {close:?}"
            );
            assert!(
                took + Duration::from_millis(50) >= INTERVAL + TIMEOUT,
                "{path}, {answer:?}: dropped after only {took:?}"
            );
            assert!(
                took <= INTERVAL + TIMEOUT + MARGIN,
                "{path}, {answer:?}: dropped only after {took:?}"
            );
            server.wait_idle(STEP).await;
            dropped += 1;
            let stats = server.handle.timeout_stats();
            assert_eq!(stats.keepalive.load(Ordering::Relaxed), dropped);
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_keeps_a_client_that_only_answers_pings_with_their_payload() {
    let server = Running::start(keepalive_server()).await;
    let mut events = chatty_client(server.addr, "/echo", Answer::Pong).await;
    // Six intervals, each longer than interval + timeout would allow
    // without answers.
    let deadline = Instant::now() + INTERVAL * 6;
    let mut pings = std::collections::HashSet::new();
    while let Ok(event) = tokio::time::timeout_at(deadline.into(), events.recv()).await {
        match event.expect("the peer task ended early") {
            Event::Frame(seen) if seen.opcode == 0x9 => {
                assert!(pings.insert(seen.payload.clone()), "a ping payload reused");
            }
            other => panic!("the server dropped a client that answers: {other:?}"),
        }
    }
    assert!(pings.len() >= 3, "only {} pings", pings.len());
    assert_eq!(server.handle.connections(), 1);
    assert_eq!(
        server
            .handle
            .timeout_stats()
            .keepalive
            .load(Ordering::Relaxed),
        0
    );
    server.stop().await;
}

/// A "server" that accepts `n` WebSocket connections one after another
/// and plays [`chatter`] on each, never answering pings.
async fn chatty_server(n: usize) -> (SocketAddr, mpsc::UnboundedReceiver<Event>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        for _ in 0..n {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let (head, rest) = read_head(&mut tcp).await;
            let key = header(&head, "sec-websocket-key").expect("a Sec-WebSocket-Key");
            let response = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {}\r\n\r\n",
                accept_key(key)
            );
            tcp.write_all(response.as_bytes()).await.unwrap();
            tokio::spawn(chatter(tcp, rest, false, Answer::Nothing, tx.clone()));
        }
    });
    (addr, rx)
}

#[tokio::test]
async fn client_gives_up_on_a_server_that_sends_data_but_no_pongs() {
    let (addr, _events) = chatty_server(1).await;
    let mut ws = ClientBuilder::new(format!("ws://{addr}/"))
        .keepalive(INTERVAL, TIMEOUT)
        .connect()
        .await
        .unwrap();
    let connected = Instant::now();
    let mut messages = 0;
    let error = within(STEP, "recv to give up", async {
        loop {
            match ws.recv().await {
                Some(Ok(Message::Text(_))) => messages += 1,
                Some(Ok(other)) => panic!("unexpected {other:?}"),
                Some(Err(e)) => return e,
                None => panic!("the connection ended without an error"),
            }
        }
    })
    .await;
    let took = connected.elapsed();
    assert!(matches!(error, Error::Timeout(_)), "{error:?}");
    assert!(messages >= 3, "only {messages} messages before giving up");
    assert!(
        took + Duration::from_millis(50) >= INTERVAL + TIMEOUT
            && took <= INTERVAL + TIMEOUT + MARGIN,
        "gave up after {took:?}"
    );
    assert_eq!(ws.close_code(), CloseCode::Abnormal);
}

#[tokio::test]
async fn reconnecting_client_reconnects_after_a_keepalive_timeout() {
    use duplex::reconnect::{ClientEvent, ReconnectPolicy, ReconnectingClient};
    let (addr, _events) = chatty_server(2).await;
    let builder = ClientBuilder::new(format!("ws://{addr}/")).keepalive(INTERVAL, TIMEOUT);
    let policy = ReconnectPolicy {
        initial: Duration::from_millis(50),
        ..ReconnectPolicy::default()
    };
    let mut client = ReconnectingClient::spawn(builder, policy);
    let mut seen = Vec::new();
    within(STEP, "a second connection", async {
        loop {
            let event = client.next_event().await.expect("an event");
            let done = matches!(event, ClientEvent::Connected { .. }) && !seen.is_empty();
            if !matches!(event, ClientEvent::Message(_)) {
                seen.push(format!("{event:?}"));
            }
            if done {
                break;
            }
        }
    })
    .await;
    assert_eq!(seen.len(), 4, "{seen:#?}");
    assert!(seen[0].starts_with("Connected"), "{seen:#?}");
    assert!(
        seen[1].starts_with("Disconnected") && seen[1].contains("keepalive"),
        "{seen:#?}"
    );
    assert!(seen[2].starts_with("Reconnecting"), "{seen:#?}");
    assert!(seen[3].starts_with("Connected"), "{seen:#?}");
}

//! The library API end to end over 127.0.0.1: connect and echo, split
//! halves, cancellation safety of `recv`, `Stream`/`Sink`, the upgrade
//! hook (subprotocols, rejection, headers), route parameters, closing in
//! both directions, graceful shutdown, and the `Handler`/`Session` API.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use duplex::{
    ClientBuilder, CloseCode, CloseFrame, Config, Error, Handler, HttpResponse, Message, Server,
    ServerSocket, Session, UpgradeDecision, UpgradeRequest,
};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;

/// Every test's overall bound.
const TEST: Duration = Duration::from_secs(60);

fn echo_server() -> Server {
    Server::new().route("/echo", echo)
}

fn no_deflate() -> Config {
    Config {
        deflate: None,
        ..Config::default()
    }
}

const SIZES: [usize; 7] = [0, 1, 125, 126, 65535, 65536, 16 << 20];

async fn round_trips(url: &str, config: Config, compressed: bool) {
    let mut ws = ClientBuilder::new(url)
        .config(config)
        .connect()
        .await
        .unwrap();
    assert_eq!(ws.is_compressed(), compressed, "compression negotiated");
    for (i, size) in SIZES.into_iter().enumerate() {
        let text = Message::text(text_of(size, i as u64));
        ws.send(text.clone()).await.unwrap();
        let back = ws.recv().await.unwrap().unwrap();
        assert!(back == text, "text of {size} bytes came back different");
        let binary = Message::binary(binary_of(size, i as u64));
        ws.send(binary.clone()).await.unwrap();
        let back = ws.recv().await.unwrap().unwrap();
        assert!(back == binary, "binary of {size} bytes came back different");
    }
    ws.close(None).await.unwrap();
    assert_eq!(ws.close_code(), CloseCode::Normal);
    assert!(ws.recv().await.is_none(), "recv after the close is None");
}

#[tokio::test]
async fn echo_round_trips_every_size_with_and_without_compression() {
    let running = Running::start(echo_server()).await;
    let url = running.url("/echo");
    within(TEST, "round trips", async {
        round_trips(&url, Config::default(), true).await;
        round_trips(&url, no_deflate(), false).await;
    })
    .await;
    running.stop().await;
}

#[tokio::test]
async fn server_without_compression_is_not_compressed() {
    let running = Running::start(echo_server().config(no_deflate())).await;
    let url = running.url("/echo");
    within(
        TEST,
        "round trips",
        round_trips(&url, Config::default(), false),
    )
    .await;
    running.stop().await;
}

#[tokio::test]
async fn split_halves_work_from_different_tasks() {
    let running = Running::start(echo_server()).await;
    let ws = duplex::connect(&running.url("/echo")).await.unwrap();
    let (mut reader, mut writer) = ws.split();
    const N: usize = 500;
    let writer_task = tokio::spawn(async move {
        for i in 0..N {
            if i % 2 == 0 {
                writer.send(format!("message {i}")).await.unwrap();
            } else {
                writer.send(binary_of(i * 10, i as u64)).await.unwrap();
            }
        }
        writer.close(None).await.unwrap();
        writer
    });
    let reader_task = tokio::spawn(async move {
        let mut got = Vec::new();
        while let Some(item) = reader.recv().await {
            got.push(item.unwrap());
        }
        (reader, got)
    });
    let writer = within(TEST, "writer", writer_task).await.unwrap();
    let (reader, got) = within(TEST, "reader", reader_task).await.unwrap();
    assert_eq!(got.len(), N + 1, "N echoes and the close");
    for (i, message) in got[..N].iter().enumerate() {
        let expected = if i % 2 == 0 {
            Message::text(format!("message {i}"))
        } else {
            Message::binary(binary_of(i * 10, i as u64))
        };
        assert!(*message == expected, "message {i} differs");
    }
    assert!(matches!(&got[N], Message::Close(Some(f)) if f.code == CloseCode::Normal));
    let ws = duplex::WebSocket::reunite(reader, writer).expect("halves of one socket");
    assert_eq!(ws.close_code(), CloseCode::Normal);
    running.stop().await;
}

/// Message `i` of the burst: text or binary, sizes from 0 to ~100 KB so
/// that many messages span several reads.
fn burst_message(i: usize) -> Message {
    let size = if i % 10 == 0 {
        100_000 + i
    } else {
        (i * 37) % 3000
    };
    if i % 3 == 0 {
        Message::binary(binary_of(size, i as u64))
    } else {
        let mut text = format!("#{i}:");
        text.push_str(&text_of(size, i as u64));
        Message::text(text)
    }
}

const BURST: usize = 2000;

async fn burst(mut ws: ServerSocket, _req: UpgradeRequest) {
    for i in 0..BURST {
        if ws.feed(burst_message(i)).is_err() {
            return;
        }
        if i % 16 == 15 && ws.flush().await.is_err() {
            return;
        }
    }
    let _ = ws.close(None).await;
}

async fn receive_burst_with_select(config: Config) {
    let running = Running::start(Server::new().config(config.clone()).route("/burst", burst)).await;
    let mut ws = ClientBuilder::new(running.url("/burst"))
        .config(config)
        .connect()
        .await
        .unwrap();
    let mut received = 0usize;
    let mut timer_won = 0usize;
    let mut ready_won = 0usize;
    let mut iteration = 0usize;
    within(TEST, "receiving the burst", async {
        loop {
            iteration += 1;
            tokio::select! {
                item = ws.recv() => match item {
                    Some(Ok(Message::Close(frame))) => {
                        assert_eq!(frame.map(|f| f.code), Some(CloseCode::Normal));
                    }
                    Some(Ok(message)) => {
                        let expected = burst_message(received);
                        assert!(
                            message == expected,
                            "message {received} lost or corrupted (got {} bytes, expected {})",
                            message.len(),
                            expected.len()
                        );
                        received += 1;
                    }
                    Some(Err(e)) => panic!("recv failed after {received} messages: {e}"),
                    None => break,
                },
                _ = tokio::time::sleep(Duration::from_micros(100)) => timer_won += 1,
                _ = std::future::ready(()), if iteration % 3 == 0 => ready_won += 1,
            }
        }
    })
    .await;
    assert_eq!(received, BURST, "every message arrived exactly once");
    assert!(
        timer_won + ready_won > 0,
        "the other branches never won: recv was never cancelled"
    );
    running.stop().await;
}

#[tokio::test]
async fn recv_is_cancellation_safe() {
    receive_burst_with_select(Config::default()).await;
}

#[tokio::test]
async fn recv_is_cancellation_safe_without_compression() {
    receive_burst_with_select(no_deflate()).await;
}

#[tokio::test]
async fn stream_and_sink() {
    let running = Running::start(echo_server()).await;
    within(TEST, "stream and sink", async {
        let mut ws = duplex::connect(&running.url("/echo")).await.unwrap();
        SinkExt::send(&mut ws, Message::text("one")).await.unwrap();
        assert_eq!(
            StreamExt::next(&mut ws).await.unwrap().unwrap(),
            Message::text("one")
        );
        let messages: Vec<Message> = (0..100)
            .map(|i| Message::text(format!("item {i}")))
            .collect();
        let mut source = futures_util::stream::iter(messages.clone()).map(Ok);
        ws.send_all(&mut source).await.unwrap();
        let back: Vec<Message> = (&mut ws)
            .take(100)
            .map(|m| m.unwrap())
            .collect::<Vec<_>>()
            .await;
        assert_eq!(back, messages);

        // The halves are a Stream and a Sink too.
        let (reader, mut writer) = ws.split();
        let mut source = futures_util::stream::iter(messages.clone()).map(Ok);
        writer.send_all(&mut source).await.unwrap();
        SinkExt::close(&mut writer).await.unwrap();
        let all: Vec<Message> = reader.map(|m| m.unwrap()).collect().await;
        assert_eq!(all.len(), 101, "100 echoes and the server's close");
        assert_eq!(&all[..100], &messages[..]);
        assert!(matches!(&all[100], Message::Close(Some(f)) if f.code == CloseCode::Normal));
    })
    .await;
    running.stop().await;
}

/// Sends the agreed subprotocol back as text.
async fn tell_protocol(mut ws: ServerSocket, _req: UpgradeRequest) {
    let protocol = ws.protocol().unwrap_or("none").to_string();
    let _ = ws.send(protocol).await;
    while let Some(Ok(_)) = ws.recv().await {}
}

#[tokio::test]
async fn subprotocol_negotiation_through_the_hook() {
    let server = Server::new()
        .route("/p", tell_protocol)
        .on_upgrade(|req: &UpgradeRequest| {
            if req.protocols().contains(&"chat.v1") {
                UpgradeDecision::accept_protocol("chat.v1")
            } else if req.protocols().contains(&"wrong") {
                // Not what the client offered: the server must refuse.
                UpgradeDecision::accept_protocol("something-else")
            } else {
                UpgradeDecision::accept()
            }
        });
    let running = Running::start(server).await;
    within(TEST, "subprotocols", async {
        let mut ws = ClientBuilder::new(running.url("/p"))
            .protocol("chat.v2")
            .protocol("chat.v1")
            .connect()
            .await
            .unwrap();
        assert_eq!(ws.protocol(), Some("chat.v1"));
        assert_eq!(ws.recv().await.unwrap().unwrap(), Message::text("chat.v1"));
        ws.close(None).await.unwrap();

        let mut ws = duplex::connect(&running.url("/p")).await.unwrap();
        assert_eq!(ws.protocol(), None);
        assert_eq!(ws.recv().await.unwrap().unwrap(), Message::text("none"));
        ws.close(None).await.unwrap();

        match ClientBuilder::new(running.url("/p"))
            .protocol("wrong")
            .connect()
            .await
        {
            Err(Error::Handshake(e)) => assert_eq!(e.status(), 500, "{e}"),
            other => panic!("expected a refused handshake, got {other:?}"),
        }
    })
    .await;
    running.stop().await;
}

/// Sends back the value of the `X-Custom` header the hook saw.
async fn tell_header(mut ws: ServerSocket, req: UpgradeRequest) {
    let value = req.header("x-custom").unwrap_or("missing").to_string();
    let _ = ws.send(value).await;
    while let Some(Ok(_)) = ws.recv().await {}
}

/// The `Authorization` and `X-Custom` headers of a request.
type SeenHeaders = (Option<String>, Option<String>);

#[tokio::test]
async fn hook_rejects_with_403_and_sees_custom_headers() {
    let seen: Arc<Mutex<Vec<SeenHeaders>>> = Arc::default();
    let seen_by_hook = seen.clone();
    let server =
        Server::new()
            .route("/private", tell_header)
            .on_upgrade(move |req: &UpgradeRequest| {
                seen_by_hook.lock().unwrap().push((
                    req.header("authorization").map(str::to_string),
                    req.header("X-Custom").map(str::to_string),
                ));
                if req.header("Authorization") == Some("Bearer secret") {
                    UpgradeDecision::accept()
                } else {
                    UpgradeDecision::reject(403, "forbidden")
                }
            });
    let running = Running::start(server).await;
    within(TEST, "hook", async {
        match duplex::connect(&running.url("/private")).await {
            Err(Error::Handshake(e)) => assert_eq!(e.status(), 403, "{e}"),
            other => panic!("expected a 403, got {other:?}"),
        }
        let mut ws = ClientBuilder::new(running.url("/private"))
            .header("Authorization", "Bearer secret")
            .header("X-Custom", "hello there")
            .connect()
            .await
            .unwrap();
        assert_eq!(
            ws.recv().await.unwrap().unwrap(),
            Message::text("hello there")
        );
        ws.close(None).await.unwrap();
    })
    .await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![
            (None, None),
            (
                Some("Bearer secret".to_string()),
                Some("hello there".to_string())
            )
        ]
    );
    running.stop().await;
}

/// Sends back the room parameter and the `name` query parameter.
async fn tell_room(mut ws: ServerSocket, req: UpgradeRequest) {
    let room = req.param("room").unwrap_or("?").to_string();
    let name = req.query_param("name").unwrap_or_default();
    let _ = ws.send(format!("{room}|{name}|{}", req.path())).await;
    while let Some(Ok(_)) = ws.recv().await {}
}

#[tokio::test]
async fn route_parameters() {
    let server = Server::new()
        .route("/chat/{room}", tell_room)
        .http("/healthz", |_| HttpResponse::text(200, "ok"));
    let running = Running::start(server).await;
    within(TEST, "routes", async {
        for (path, expected) in [
            ("/chat/lobby", "lobby||/chat/lobby"),
            ("/chat/lobby?name=ann", "lobby|ann|/chat/lobby"),
            ("/chat/a%20b", "a b||/chat/a%20b"),
        ] {
            let mut ws = duplex::connect(&running.url(path)).await.unwrap();
            assert_eq!(ws.recv().await.unwrap().unwrap(), Message::text(expected));
            ws.close(None).await.unwrap();
        }
        for path in ["/chat", "/chat/a/b", "/other"] {
            match duplex::connect(&running.url(path)).await {
                Err(Error::Handshake(e)) => assert_eq!(e.status(), 404, "{path}: {e}"),
                other => panic!("{path}: expected a 404, got {other:?}"),
            }
        }
    })
    .await;
    running.stop().await;
}

type CloseReport = (Vec<Message>, CloseCode, Option<CloseFrame>);

#[tokio::test]
async fn client_closes_with_4000_and_the_server_sees_it() {
    let (tx, mut rx) = mpsc::unbounded_channel::<CloseReport>();
    let server = Server::new().route("/c", move |mut ws: ServerSocket, _req| {
        let tx = tx.clone();
        async move {
            let mut seen = Vec::new();
            while let Some(Ok(message)) = ws.recv().await {
                seen.push(message);
            }
            let _ = tx.send((seen, ws.close_code(), ws.close_frame()));
        }
    });
    let running = Running::start(server).await;
    within(TEST, "close 4000", async {
        let mut ws = duplex::connect(&running.url("/c")).await.unwrap();
        ws.send("before closing").await.unwrap();
        ws.close(Some(CloseFrame::new(CloseCode::Other(4000), "bye")))
            .await
            .unwrap();
        // The server echoes the code (RFC 6455 §5.5.1).
        assert_eq!(ws.close_code(), CloseCode::Other(4000));
        let (seen, code, frame) = rx.recv().await.unwrap();
        assert_eq!(code, CloseCode::Other(4000));
        let frame = frame.expect("the server kept the close frame");
        assert_eq!((frame.code, frame.reason.as_str()), (CloseCode::Other(4000), "bye"));
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(seen[0], Message::text("before closing"));
        assert!(
            matches!(&seen[1], Message::Close(Some(f)) if f.code == CloseCode::Other(4000) && f.reason == "bye"),
            "{seen:?}"
        );
        // Nothing can be sent after the close.
        assert!(matches!(ws.send("late").await, Err(Error::Closed)));
    })
    .await;
    running.stop().await;
}

#[tokio::test]
async fn server_closes_with_1001_and_the_client_sees_it() {
    let (tx, mut rx) = mpsc::unbounded_channel::<duplex::Result<()>>();
    let server = Server::new().route("/away", move |mut ws: ServerSocket, _req| {
        let tx = tx.clone();
        async move {
            let result = ws
                .close(Some(CloseFrame::new(CloseCode::Away, "maintenance")))
                .await;
            let _ = tx.send(result);
        }
    });
    let running = Running::start(server).await;
    within(TEST, "close 1001", async {
        let mut ws = duplex::connect(&running.url("/away")).await.unwrap();
        match ws.recv().await {
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(frame.code, CloseCode::Away);
                assert_eq!(frame.reason, "maintenance");
            }
            other => panic!("expected the server's close, got {other:?}"),
        }
        assert!(ws.recv().await.is_none());
        assert_eq!(ws.close_code(), CloseCode::Away);
        assert_eq!(
            ws.close_frame().map(|f| f.reason),
            Some("maintenance".to_string())
        );
        rx.recv()
            .await
            .unwrap()
            .expect("the server's close() completes once the client answers");
    })
    .await;
    running.stop().await;
}

#[tokio::test]
async fn shutdown_sends_1001_and_serve_returns() {
    let running = Running::start(echo_server().shutdown_grace(Duration::from_secs(3))).await;
    let addr = running.addr;
    let mut ws = duplex::connect(&running.url("/echo")).await.unwrap();
    within(TEST, "shutdown", async {
        ws.send("hi").await.unwrap();
        assert_eq!(ws.recv().await.unwrap().unwrap(), Message::text("hi"));
        let started = Instant::now();
        running.handle.shutdown();
        match ws.recv().await {
            Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Away),
            other => panic!("expected close 1001, got {other:?}"),
        }
        assert!(ws.recv().await.is_none());
        assert_eq!(ws.close_code(), CloseCode::Away);
        running.join(Duration::from_secs(5)).await;
        eprintln!("serve() returned {:?} after shutdown()", started.elapsed());
        // The listener is gone.
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    })
    .await;
    drop(ws);
}

/// After the close handshake the server closes TCP (RFC 6455 §7.1.1) and
/// the client, having seen that, closes its side too, even while the
/// application still holds the `WebSocket` (to read `close_code()`, say):
/// the server's connection must not linger until its close timeout, and
/// a shutdown must not wait for its grace period.
#[tokio::test]
async fn connections_end_promptly_while_the_client_keeps_its_socket() {
    let running = Running::start(echo_server().shutdown_grace(Duration::from_secs(3))).await;
    let mut ws = duplex::connect(&running.url("/echo")).await.unwrap();
    within(TEST, "client close", ws.close(None)).await.unwrap();
    let started = Instant::now();
    running.wait_idle(STEP).await;
    let client_close_linger = started.elapsed();

    let mut ws2 = duplex::connect(&running.url("/echo")).await.unwrap();
    let started = Instant::now();
    running.handle.shutdown();
    within(TEST, "close 1001", async {
        while let Some(item) = ws2.recv().await {
            item.unwrap();
        }
    })
    .await;
    assert_eq!(ws2.close_code(), CloseCode::Away);
    running.join(Duration::from_secs(10)).await;
    let shutdown_took = started.elapsed();
    assert!(
        client_close_linger < Duration::from_secs(1) && shutdown_took < Duration::from_secs(1),
        "after a completed close handshake the server's connection lingered {client_close_linger:?} \
         and serve() took {shutdown_took:?} to return after shutdown(); both should be immediate"
    );
    drop((ws, ws2));
}

/// Greets, answers `Echo: <msg>`, and reports its close.
struct Greeter {
    closes: Arc<AtomicUsize>,
    events: mpsc::UnboundedSender<String>,
}

impl Handler for Greeter {
    async fn on_open(&mut self, session: &Session) {
        let _ = self
            .events
            .send(format!("open {}", session.request().path()));
        session.send("Welcome to duplex!").unwrap();
    }

    async fn on_message(&mut self, session: &Session, message: Message) {
        match message {
            Message::Text(text) => session.send(format!("Echo: {text}")).unwrap(),
            Message::Binary(data) => session.send(Message::binary(data)).unwrap(),
            other => panic!("on_message got a control message: {other:?}"),
        }
    }

    async fn on_close(&mut self, _session: &Session, code: CloseCode, reason: &str) {
        self.closes.fetch_add(1, Ordering::SeqCst);
        let _ = self.events.send(format!("close {code} {reason}"));
    }
}

/// A server with a [`Greeter`] on `/greet`, its close counter and its
/// event channel.
async fn start_greeter() -> (Running, Arc<AtomicUsize>, mpsc::UnboundedReceiver<String>) {
    let closes = Arc::new(AtomicUsize::new(0));
    let (tx, events) = mpsc::unbounded_channel();
    let server = {
        let closes = closes.clone();
        Server::new().handler("/greet", move |_req: &UpgradeRequest| Greeter {
            closes: closes.clone(),
            events: tx.clone(),
        })
    };
    (Running::start(server).await, closes, events)
}

/// Connects to `/greet` and checks the open event and the greeting.
async fn connect_greeted(
    running: &Running,
    events: &mut mpsc::UnboundedReceiver<String>,
) -> duplex::ClientSocket {
    let mut ws = duplex::connect(&running.url("/greet")).await.unwrap();
    assert_eq!(events.recv().await.unwrap(), "open /greet");
    assert_eq!(
        ws.recv().await.unwrap().unwrap(),
        Message::text("Welcome to duplex!")
    );
    ws
}

#[tokio::test]
async fn handler_greets_echoes_and_closes_once() {
    let (running, closes, mut events) = start_greeter().await;
    within(TEST, "handler", async {
        let mut ws = connect_greeted(&running, &mut events).await;
        ws.send("Hello, server!").await.unwrap();
        assert_eq!(
            ws.recv().await.unwrap().unwrap(),
            Message::text("Echo: Hello, server!")
        );
        ws.send(vec![1u8, 2, 3]).await.unwrap();
        assert_eq!(
            ws.recv().await.unwrap().unwrap(),
            Message::binary(vec![1u8, 2, 3])
        );
        // A ping is answered by the engine, not by on_message.
        ws.send(Message::Ping("p".into())).await.unwrap();
        assert_eq!(ws.recv().await.unwrap().unwrap(), Message::Pong("p".into()));
        ws.close(Some(CloseFrame::new(CloseCode::Other(4001), "done")))
            .await
            .unwrap();
        assert_eq!(events.recv().await.unwrap(), "close 4001 done");

        // A client that vanishes without a close frame: 1006, once.
        let ws = duplex::connect(&running.url("/greet")).await.unwrap();
        assert_eq!(events.recv().await.unwrap(), "open /greet");
        drop(ws);
        assert_eq!(events.recv().await.unwrap(), "close 1006 ");
    })
    .await;
    running.wait_idle(STEP).await;
    running.stop().await;
    assert_eq!(
        closes.load(Ordering::SeqCst),
        2,
        "on_close once per connection"
    );
    assert!(events.try_recv().is_err(), "no further events");
}

/// Sends from a task of its own, through a clone of the session.
struct Ticker {
    results: mpsc::UnboundedSender<Vec<bool>>,
}

impl Handler for Ticker {
    async fn on_open(&mut self, session: &Session) {
        let session = session.clone();
        let results = self.results.clone();
        tokio::spawn(async move {
            let mut ok = Vec::new();
            for i in 0..3 {
                ok.push(session.send(format!("tick {i}")).is_ok());
                tokio::task::yield_now().await;
            }
            session.close(CloseCode::Other(4002), "ticks done");
            // Refused once the close is queued.
            ok.push(session.send("too late").is_ok());
            let _ = results.send(ok);
        });
    }

    async fn on_message(&mut self, _session: &Session, _message: Message) {}
}

#[tokio::test]
async fn session_sends_from_another_task() {
    let (tx, mut results) = mpsc::unbounded_channel();
    let server = Server::new().handler("/tick", move |_req: &UpgradeRequest| Ticker {
        results: tx.clone(),
    });
    let running = Running::start(server).await;
    within(TEST, "ticks", async {
        let mut ws = duplex::connect(&running.url("/tick")).await.unwrap();
        for i in 0..3 {
            assert_eq!(
                ws.recv().await.unwrap().unwrap(),
                Message::text(format!("tick {i}"))
            );
        }
        match ws.recv().await {
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(frame.code, CloseCode::Other(4002));
                assert_eq!(frame.reason, "ticks done");
            }
            other => panic!("expected close 4002, got {other:?}"),
        }
        assert!(ws.recv().await.is_none());
        assert_eq!(results.recv().await.unwrap(), vec![true, true, true, false]);
    })
    .await;
    running.stop().await;
}

#[tokio::test]
async fn shutdown_closes_handler_connections_with_1001() {
    let (running, closes, mut events) = start_greeter().await;
    within(TEST, "handler shutdown", async {
        let mut ws = connect_greeted(&running, &mut events).await;
        running.handle.shutdown();
        match ws.recv().await {
            Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Away),
            other => panic!("expected close 1001, got {other:?}"),
        }
        while let Some(item) = ws.recv().await {
            item.unwrap();
        }
        drop(ws);
        // The handler hears the client's answer: the echoed 1001.
        let event = events.recv().await.unwrap();
        assert!(event.starts_with("close 1001"), "{event}");
    })
    .await;
    running.join(Duration::from_secs(5)).await;
    assert_eq!(closes.load(Ordering::SeqCst), 1);
}

/// Large frames that arrive slowly, in pieces smaller and larger than the
/// socket's wake-up mark, and a large frame followed at once by small ones
/// in the same write: all come back whole and in order (the read path
/// sizes its wake-ups by the frame in progress).
#[tokio::test]
async fn large_frames_arriving_in_pieces_come_back_whole() {
    within(TEST, "large frames in pieces", async {
        let running = Running::start(echo_server()).await;
        let mut client = RawClient::open(running.addr, "/echo").await;
        let big: Vec<u8> = (0..(1usize << 20) + 7).map(|i| (i % 251) as u8).collect();
        let wire = masked(0x82, &big);
        for piece in wire.chunks(100 * 1024) {
            client.send(piece).await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let echo = client
            .read_frame()
            .await
            .expect("the echo of the slow frame");
        assert_eq!(echo.opcode, 0x2);
        assert!(echo.payload == big, "the slow frame came back changed");

        let mut burst = masked(0x82, &big[..300 * 1024]);
        burst.extend(masked(0x81, b"small one"));
        burst.extend(masked(0x81, b"small two"));
        client.send(&burst).await;
        let first = client.read_frame().await.expect("the large echo");
        assert!(
            first.payload == big[..300 * 1024],
            "the large frame came back changed"
        );
        for expected in [&b"small one"[..], b"small two"] {
            let small = client.read_frame().await.expect("a small echo");
            assert_eq!(small.payload, expected);
        }
        drop(client);
        running.stop().await;
    })
    .await;
}

/// Answers text in capitals and binary reversed; after the first message
/// of each batch, the rest are lent from the read buffer (counted).
async fn shout(mut ws: ServerSocket, lent: Arc<AtomicUsize>) {
    fn answer(message: duplex::MessageRef<'_>, outbox: &mut duplex::Outbox<'_>) {
        let _ = match message {
            duplex::MessageRef::Text(text) => {
                outbox.send(duplex::MessageRef::Text(&text.to_uppercase()))
            }
            duplex::MessageRef::Binary(data) => {
                let reversed: Vec<u8> = data.iter().rev().copied().collect();
                outbox.send(duplex::MessageRef::Binary(&reversed))
            }
        };
    }
    while let Some(Ok(message)) = ws.recv().await {
        let reply = match message {
            Message::Text(text) => Message::text(text.to_uppercase()),
            Message::Binary(data) => {
                Message::binary(data.iter().rev().copied().collect::<Vec<_>>())
            }
            _ => continue,
        };
        if ws.feed(reply).is_err() {
            break;
        }
        match ws.lend_buffered(answer) {
            Ok(n) => lent.fetch_add(n, Ordering::SeqCst),
            Err(_) => break,
        };
        if ws.flush().await.is_err() {
            break;
        }
    }
    let _ = ws.flush().await;
}

#[tokio::test]
async fn lent_messages_are_answered_in_order_with_the_rest() {
    within(TEST, "lending a burst", async {
        let lent = Arc::new(AtomicUsize::new(0));
        let counter = lent.clone();
        let server = Server::new().route("/shout", move |ws, _req| shout(ws, counter.clone()));
        let running = Running::start(server).await;
        let mut client = RawClient::open(running.addr, "/shout").await;
        // One write: lendable messages around a ping and a fragmented one.
        let mut burst = masked(0x81, b"first");
        burst.extend(masked(0x81, "κόσμε".as_bytes()));
        burst.extend(masked(0x82, &[1, 2, 3]));
        burst.extend(masked(0x89, b"ping"));
        burst.extend(masked(0x01, b"frag"));
        burst.extend(masked(0x80, b"mented"));
        burst.extend(masked(0x81, b"last"));
        client.send(&burst).await;
        let expected: [(u8, &[u8]); 6] = [
            (0x1, b"FIRST"),
            (0x1, "ΚΌΣΜΕ".as_bytes()),
            (0x2, &[3, 2, 1]),
            (0xa, b"ping"),
            (0x1, b"FRAGMENTED"),
            (0x1, b"LAST"),
        ];
        for (opcode, payload) in expected {
            let frame = client.read_frame().await.expect("an answer");
            assert_eq!((frame.opcode, &frame.payload[..]), (opcode, payload));
        }
        assert!(
            lent.load(Ordering::SeqCst) >= 2,
            "the buffered messages were lent"
        );
        // Invalid UTF-8 in a lent text message closes with 1007.
        let mut bad = masked(0x81, b"ok");
        bad.extend(masked(0x81, &[0xce, 0xba, 0xff]));
        client.send(&bad).await;
        let (close, before) = client.expect_close(TEST).await;
        assert_eq!(close.close_code(), 1007);
        assert_eq!(before.len(), 1, "the valid message was answered first");
        drop(client);
        running.stop().await;
    })
    .await;
}

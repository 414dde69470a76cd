//! A bad-input battery against `Server` with an `/echo` route, over raw
//! TCP: malformed handshakes get the right HTTP status and a closed
//! connection; protocol violations after the upgrade get a close frame
//! with the right code, then the end of the TCP connection; and none of it
//! disturbs the server.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use duplex::{Message, Server, ServerSocket, UpgradeRequest};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// The handshake timeout of the servers under test.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_millis(400);
/// How long the server may take to close the TCP connection after its
/// close frame or error response.
const CLOSE_BOUND: Duration = Duration::from_secs(2);

fn server() -> Server {
    Server::new()
        .handshake_timeout(HANDSHAKE_TIMEOUT)
        .route("/echo", echo)
}

/// An echo route that keeps calling `recv` after an error until it returns
/// `None`, instead of dropping the socket at the first error like the
/// `duplex serve` route (and the crate's examples) do.
async fn echo_reading_to_the_end(mut ws: ServerSocket, _req: UpgradeRequest) {
    while let Some(item) = ws.recv().await {
        if let Ok(message) = item {
            if message.is_data() && ws.send(message).await.is_err() {
                break;
            }
        }
    }
}

fn server_reading_to_the_end() -> Server {
    Server::new()
        .handshake_timeout(HANDSHAKE_TIMEOUT)
        .route("/echo", echo_reading_to_the_end)
}

/// Runs each named case on its own task and returns the failures (name and
/// panic message), so one test reports every broken case at once.
async fn run_cases<F, Fut>(cases: Vec<(String, F)>) -> Vec<String>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut failures = Vec::new();
    for (name, case) in cases {
        if let Err(e) = tokio::spawn(case()).await {
            let why = match e.try_into_panic() {
                Ok(payload) => payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into()),
                Err(e) => e.to_string(),
            };
            failures.push(format!("{name}: {why}"));
        }
    }
    failures
}

fn assert_no_failures(failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

/// A normal client still gets its echoes.
async fn assert_echo_works(running: &Running) {
    let mut ws = within(STEP, "connect", duplex::connect(&running.url("/echo")))
        .await
        .expect("a normal client can connect");
    within(STEP, "echoes", async {
        ws.send("still alive").await.unwrap();
        assert_eq!(
            ws.recv().await.unwrap().unwrap(),
            Message::text("still alive")
        );
        ws.send(vec![0u8, 1, 2, 255]).await.unwrap();
        assert_eq!(
            ws.recv().await.unwrap().unwrap(),
            Message::binary(vec![0u8, 1, 2, 255])
        );
        ws.close(None).await.unwrap();
    })
    .await;
}

// ---------------------------------------------------------------------------
// Handshakes

struct HsCase {
    name: &'static str,
    request: Vec<u8>,
    status: u16,
    /// 426 must say which version we speak.
    wants_version_header: bool,
}

fn request_with(path: &str, skip: &[&str], extra: &[(&str, &str)], first_line: &str) -> Vec<u8> {
    let mut headers = vec![
        ("Host", "127.0.0.1"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", KEY),
        ("Sec-WebSocket-Version", "13"),
    ];
    headers.retain(|(n, _)| !skip.iter().any(|s| s.eq_ignore_ascii_case(n)));
    headers.extend_from_slice(extra);
    let mut out = first_line.replace("{path}", path);
    out.push_str("\r\n");
    for (n, v) in headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

fn handshake_cases() -> Vec<HsCase> {
    let get = "GET {path} HTTP/1.1";
    let req = |skip: &[&str], extra: &[(&str, &str)]| request_with("/echo", skip, extra, get);
    let many_headers: Vec<(String, String)> = (0..100)
        .map(|i| (format!("X-Filler-{i}"), "x".to_string()))
        .collect();
    let many: Vec<(&str, &str)> = many_headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let big_value = "y".repeat(20 * 1024);
    let case = |name, request, status| HsCase {
        name,
        request,
        status,
        wants_version_header: false,
    };
    vec![
        case(
            "garbage line",
            b"this is not http at all\r\n\r\n".to_vec(),
            400,
        ),
        case(
            "binary garbage",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec(),
            400,
        ),
        case(
            "POST",
            request_with("/echo", &[], &[], "POST {path} HTTP/1.1"),
            405,
        ),
        case(
            "HTTP/1.0",
            request_with("/echo", &[], &[], "GET {path} HTTP/1.0"),
            400,
        ),
        case("no Host", req(&["Host"], &[]), 400),
        case(
            "two Host headers",
            req(&[], &[("Host", "other.example")]),
            400,
        ),
        HsCase {
            name: "no Upgrade",
            request: req(&["Upgrade"], &[]),
            status: 426,
            wants_version_header: true,
        },
        case(
            "Upgrade: h2c",
            req(&["Upgrade"], &[("Upgrade", "h2c")]),
            400,
        ),
        case(
            "Connection without upgrade",
            req(&["Connection"], &[("Connection", "keep-alive")]),
            400,
        ),
        case("no Connection", req(&["Connection"], &[]), 400),
        HsCase {
            name: "version 8",
            request: req(
                &["Sec-WebSocket-Version"],
                &[("Sec-WebSocket-Version", "8")],
            ),
            status: 426,
            wants_version_header: true,
        },
        HsCase {
            name: "no version",
            request: req(&["Sec-WebSocket-Version"], &[]),
            status: 426,
            wants_version_header: true,
        },
        case("missing key", req(&["Sec-WebSocket-Key"], &[]), 400),
        case(
            "short key (8 bytes)",
            req(
                &["Sec-WebSocket-Key"],
                &[("Sec-WebSocket-Key", "AAAAAAAAAAA=")],
            ),
            400,
        ),
        case(
            "invalid key (not base64)",
            req(
                &["Sec-WebSocket-Key"],
                &[("Sec-WebSocket-Key", "!!not*base64!!!!!!!!!!==")],
            ),
            400,
        ),
        case(
            "two keys",
            req(&[], &[("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAA==")]),
            400,
        ),
        case("100 headers", req(&[], &many), 431),
        case(
            "a 20 KB header",
            req(&[], &[("X-Big", big_value.as_str())]),
            431,
        ),
        case(
            "unknown path",
            request_with("/no/such/path", &[], &[], get),
            404,
        ),
    ]
}

async fn check_handshake_case(addr: SocketAddr, case: HsCase) {
    let response = http_exchange(addr, &case.request, CLOSE_BOUND + STEP).await;
    if !response.clean_eof {
        eprintln!(
            "note: handshake {}: the server reset the connection after its {} response",
            case.name, response.status
        );
    }
    assert_eq!(
        response.status, case.status,
        "wrong status; response head: {:?}",
        response.head
    );
    if case.wants_version_header {
        assert_eq!(
            response.header("Sec-WebSocket-Version"),
            Some("13"),
            "a 426 must carry Sec-WebSocket-Version: 13; head: {:?}",
            response.head
        );
    }
    if let Some(len) = response.header("Content-Length") {
        assert_eq!(
            len.parse::<usize>().ok(),
            Some(response.body.len()),
            "the body does not match Content-Length (the connection was cut short?)"
        );
    }
}

fn handshake_battery(addr: SocketAddr) -> Vec<(String, impl FnOnce() -> HsFuture)> {
    handshake_cases()
        .into_iter()
        .map(move |case| {
            let name = format!("handshake {}", case.name);
            let f = move || -> HsFuture { Box::pin(check_handshake_case(addr, case)) };
            (name, f)
        })
        .collect()
}

type HsFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

#[tokio::test]
async fn malformed_handshakes_get_the_right_status() {
    let running = Running::start(server()).await;
    assert_no_failures(run_cases(handshake_battery(running.addr)).await);
    running.wait_idle(STEP).await;
    assert_echo_works(&running).await;
    running.stop().await;
}

/// A client that connects and sends nothing is dropped after the
/// handshake timeout, not before and not much later.
async fn silent_client(addr: SocketAddr) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 64];
    let n = within(
        HANDSHAKE_TIMEOUT + CLOSE_BOUND,
        "the server to drop a silent client",
        tokio::io::AsyncReadExt::read(&mut tcp, &mut buf),
    )
    .await;
    assert!(
        matches!(n, Ok(0)) || n.as_ref().is_err(),
        "expected the connection to be closed, got {n:?} {:?}",
        String::from_utf8_lossy(&buf)
    );
    let waited = start.elapsed();
    assert!(
        waited >= HANDSHAKE_TIMEOUT - Duration::from_millis(50),
        "closed after {waited:?}, before the handshake timeout"
    );
}

/// Half a request, then the client vanishes.
async fn half_request_then_disconnect(addr: SocketAddr) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgr")
        .await
        .unwrap();
    drop(tcp);
}

/// Half a request, then nothing: dropped after the handshake timeout.
async fn half_request_then_stall(addr: SocketAddr) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgr")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let n = within(
        HANDSHAKE_TIMEOUT + CLOSE_BOUND,
        "the server to drop a stalled client",
        tokio::io::AsyncReadExt::read(&mut tcp, &mut buf),
    )
    .await;
    assert!(
        matches!(n, Ok(0)) || n.as_ref().is_err(),
        "expected the connection to be closed, got {n:?}"
    );
}

#[tokio::test]
async fn silent_and_half_clients_are_dropped() {
    let running = Running::start(server()).await;
    let addr = running.addr;
    // Concurrently, so the silent clients cannot block anyone else.
    let mut tasks = Vec::new();
    for _ in 0..3 {
        tasks.push(tokio::spawn(silent_client(addr)));
        tasks.push(tokio::spawn(half_request_then_stall(addr)));
        tasks.push(tokio::spawn(half_request_then_disconnect(addr)));
    }
    // Meanwhile a normal client is served at once.
    assert_echo_works(&running).await;
    for t in tasks {
        t.await.expect("case failed");
    }
    running.wait_idle(STEP).await;
    assert_echo_works(&running).await;
    running.stop().await;
}

// ---------------------------------------------------------------------------
// Frames after a good handshake

struct FrameCase {
    name: String,
    frames: Vec<Vec<u8>>,
    code: u16,
}

fn fc(name: impl Into<String>, frames: Vec<Vec<u8>>, code: u16) -> FrameCase {
    FrameCase {
        name: name.into(),
        frames,
        code,
    }
}

fn frame_cases() -> Vec<FrameCase> {
    let mut cases = vec![
        fc("unmasked frame", vec![frame(0x81, b"hello", None)], 1002),
        fc("reserved opcode 3", vec![masked(0x83, b"x")], 1002),
        fc("reserved opcode 0xB", vec![masked(0x8B, b"")], 1002),
        fc("RSV2 set", vec![masked(0xA1, b"x")], 1002),
        fc("RSV3 set", vec![masked(0x91, b"x")], 1002),
        fc("RSV1 without compression", vec![masked(0xC1, b"x")], 1002),
        fc(
            "ping with a 126-byte payload",
            vec![masked(0x89, &[b'p'; 126])],
            1002,
        ),
        fc("fragmented ping", vec![masked(0x09, b"p")], 1002),
        fc(
            "continuation without a start",
            vec![masked(0x80, b"x")],
            1002,
        ),
        fc(
            "new text frame inside a fragmented message",
            vec![masked(0x01, b"part"), masked(0x81, b"new")],
            1002,
        ),
        fc(
            "new binary frame inside a fragmented message",
            vec![masked(0x02, b"part"), masked(0x82, b"new")],
            1002,
        ),
        fc("invalid UTF-8 text", vec![masked(0x81, b"abc\xff")], 1007),
        fc(
            "surrogate in UTF-8 text",
            vec![masked(0x81, b"\xed\xa0\x80")],
            1007,
        ),
        fc("1-byte close payload", vec![masked(0x88, &[0x03])], 1002),
        fc(
            "close reason invalid UTF-8",
            vec![masked(0x88, &close_payload(1000, b"bye \xff"))],
            1007,
        ),
        fc(
            "64-bit length with the top bit set",
            vec![frame_header(0x82, 1 << 63, Some([1, 2, 3, 4]))],
            1002,
        ),
    ];
    for code in [0u16, 999, 1004, 1005, 1006, 1016, 2999, 5000] {
        cases.push(fc(
            format!("close code {code}"),
            vec![masked(0x88, &close_payload(code, b""))],
            1002,
        ));
    }
    cases
}

async fn check_frame_case(addr: SocketAddr, case: FrameCase) {
    let mut client = RawClient::open(addr, "/echo").await;
    for f in &case.frames {
        client.send_lenient(f).await;
    }
    let (close, before) = client.expect_close(STEP).await;
    assert_eq!(
        close.close_code(),
        case.code,
        "wrong close code (reason {:?})",
        close.close_reason()
    );
    assert!(
        before.is_empty(),
        "unexpected frames before the close: {before:?}"
    );
    client.expect_eof(CLOSE_BOUND).await;
}

fn frame_battery(addr: SocketAddr) -> Vec<(String, impl FnOnce() -> HsFuture)> {
    frame_cases()
        .into_iter()
        .map(move |case| {
            let name = format!("frame {}", case.name);
            let f = move || -> HsFuture { Box::pin(check_frame_case(addr, case)) };
            (name, f)
        })
        .collect()
}

/// With the echo route of `duplex serve`, which stops at the first error.
#[tokio::test]
async fn protocol_violations_get_the_right_close_code() {
    let running = Running::start(server()).await;
    assert_no_failures(run_cases(frame_battery(running.addr)).await);
    running.wait_idle(STEP).await;
    assert_echo_works(&running).await;
    running.stop().await;
}

/// The same with a route that reads on after the error: the engine's
/// codes, independent of how the application reacts to the error.
#[tokio::test]
async fn protocol_violations_get_the_right_close_code_when_the_route_reads_on() {
    let running = Running::start(server_reading_to_the_end()).await;
    let addr = running.addr;
    let mut failures = run_cases(frame_battery(addr)).await;
    failures.extend(run_cases(special_cases(addr)).await);
    assert_no_failures(failures);
    running.wait_idle(STEP).await;
    assert_echo_works(&running).await;
    running.stop().await;
}

/// Invalid UTF-8 split over two fragments fails as soon as the bad byte
/// arrives: the close comes before the final fragment is sent.
async fn utf8_across_fragments(addr: SocketAddr) {
    let mut client = RawClient::open(addr, "/echo").await;
    // "ab" + the lead byte of a 2-byte sequence ...
    client.send(&masked(0x01, b"ab\xce")).await;
    // ... then a byte that cannot continue it, in a non-final fragment.
    client.send(&masked(0x00, b"\x28cd")).await;
    let (close, before) = client.expect_close(STEP).await;
    assert_eq!(
        close.close_code(),
        1007,
        "reason {:?}",
        close.close_reason()
    );
    assert!(before.is_empty(), "unexpected frames: {before:?}");
    client.expect_eof(CLOSE_BOUND).await;
    // The final fragment was never needed; sending it now must not matter.
    client.send_lenient(&masked(0x80, b"end")).await;
}

/// Invalid UTF-8 inside one frame fails before the frame is complete.
async fn utf8_inside_an_unfinished_frame(addr: SocketAddr) {
    let mut client = RawClient::open(addr, "/echo").await;
    let key = [9, 8, 7, 6];
    let mut bytes = frame_header(0x81, 1000, Some(key));
    let start = bytes.len();
    bytes.extend_from_slice(b"ok\xff");
    for (i, b) in bytes[start..].iter_mut().enumerate() {
        *b ^= key[i % 4];
    }
    client.send(&bytes).await;
    let (close, _) = client.expect_close(STEP).await;
    assert_eq!(
        close.close_code(),
        1007,
        "reason {:?}",
        close.close_reason()
    );
    client.expect_eof(CLOSE_BOUND).await;
}

#[tokio::test]
async fn invalid_utf8_fails_fast() {
    let running = Running::start(server()).await;
    let addr = running.addr;
    let cases: Vec<(String, Box<dyn FnOnce() -> HsFuture>)> = vec![
        (
            "UTF-8 across fragments".into(),
            Box::new(move || -> HsFuture { Box::pin(utf8_across_fragments(addr)) }),
        ),
        (
            "UTF-8 inside an unfinished frame".into(),
            Box::new(move || -> HsFuture { Box::pin(utf8_inside_an_unfinished_frame(addr)) }),
        ),
    ];
    assert_no_failures(run_cases(cases).await);
    running.wait_idle(STEP).await;
    assert_echo_works(&running).await;
    running.stop().await;
}

/// A frame claiming 2^62 bytes is refused with 1009 at once, without
/// allocating what the header claims.
async fn huge_length(addr: SocketAddr) {
    let before = rss_bytes();
    let mut client = RawClient::open(addr, "/echo").await;
    let mut bytes = frame_header(0x82, 1 << 62, Some([1, 2, 3, 4]));
    bytes.extend_from_slice(&[0u8; 1024]);
    let start = Instant::now();
    client.send_lenient(&bytes).await;
    let (close, _) = client.expect_close(Duration::from_secs(1)).await;
    let waited = start.elapsed();
    assert_eq!(
        close.close_code(),
        1009,
        "reason {:?}",
        close.close_reason()
    );
    assert!(waited < Duration::from_secs(1), "the close took {waited:?}");
    client.expect_eof(CLOSE_BOUND).await;
    let grown = rss_bytes().saturating_sub(before);
    assert!(
        grown < 4 << 20,
        "RSS grew by {} KiB on a frame that only claimed to be huge",
        grown >> 10
    );
}

/// A frame just under the limit that never arrives: the server must not
/// reserve its claimed size up front either.
async fn claimed_but_never_sent(addr: SocketAddr) {
    let before = rss_bytes();
    let mut clients = Vec::new();
    for _ in 0..8 {
        let mut client = RawClient::open(addr, "/echo").await;
        let mut bytes = frame_header(0x82, 60 << 20, Some([1, 2, 3, 4]));
        bytes.extend_from_slice(&[0u8; 100]);
        client.send(&bytes).await;
        clients.push(client);
    }
    // Make sure the server has read the headers: a ping on a fresh
    // connection is answered after the earlier connections were accepted.
    let mut probe = RawClient::open(addr, "/echo").await;
    probe.send(&masked(0x89, b"probe")).await;
    let pong = within(STEP, "pong", probe.read_frame()).await.unwrap();
    assert_eq!((pong.opcode, pong.payload.as_slice()), (0xA, &b"probe"[..]));
    let grown = rss_bytes().saturating_sub(before);
    assert!(
        grown < 8 << 20,
        "RSS grew by {} KiB for 8 frames claiming 60 MiB each",
        grown >> 10
    );
    drop(clients);
}

#[tokio::test]
async fn huge_claimed_lengths_are_not_allocated() {
    let running = Running::start(server()).await;
    huge_length(running.addr).await;
    claimed_but_never_sent(running.addr).await;
    running.wait_idle(STEP).await;
    assert_echo_works(&running).await;
    running.stop().await;
}

/// Everything above on one server, then a normal client is still served.
#[tokio::test]
async fn server_survives_the_whole_battery() {
    let running = Running::start(server()).await;
    let addr = running.addr;
    let mut failures = run_cases(handshake_battery(addr)).await;
    failures.extend(run_cases(frame_battery(addr)).await);
    let more: Vec<(String, Box<dyn FnOnce() -> HsFuture>)> = vec![
        (
            "silent client".into(),
            Box::new(move || -> HsFuture { Box::pin(silent_client(addr)) }),
        ),
        (
            "half request then disconnect".into(),
            Box::new(move || -> HsFuture { Box::pin(half_request_then_disconnect(addr)) }),
        ),
    ];
    failures.extend(run_cases(more).await);
    failures.extend(run_cases(special_cases(addr)).await);
    assert_no_failures(failures);
    running.wait_idle(STEP).await;
    assert_echo_works(&running).await;
    running.stop().await;
}

/// The cases that are not a fixed list of frames.
fn special_cases(addr: SocketAddr) -> Vec<(String, Box<dyn FnOnce() -> HsFuture>)> {
    vec![
        (
            "UTF-8 across fragments".into(),
            Box::new(move || -> HsFuture { Box::pin(utf8_across_fragments(addr)) }),
        ),
        (
            "UTF-8 inside an unfinished frame".into(),
            Box::new(move || -> HsFuture { Box::pin(utf8_inside_an_unfinished_frame(addr)) }),
        ),
        (
            "huge length".into(),
            Box::new(move || -> HsFuture { Box::pin(huge_length(addr)) }),
        ),
    ]
}

// ---------------------------------------------------------------------------
// Our client against a misbehaving server

/// A one-connection server made of raw bytes: reads the upgrade request
/// and answers with `response(key)`, then hands the stream to `then`.
async fn raw_server<R, T, Fut>(response: R, then: T) -> SocketAddr
where
    R: FnOnce(&str) -> String + Send + 'static,
    T: FnOnce(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if tokio::io::AsyncReadExt::read(&mut tcp, &mut byte)
                .await
                .unwrap_or(0)
                == 0
            {
                return;
            }
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        let key = head
            .lines()
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.trim()
                    .eq_ignore_ascii_case("sec-websocket-key")
                    .then(|| v.trim().to_string())
            })
            .unwrap_or_default();
        tcp.write_all(response(&key).as_bytes()).await.unwrap();
        then(tcp).await;
    });
    addr
}

fn accept_101(key: &str) -> String {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        duplex::proto::handshake::accept_key(key)
    )
}

/// Reads what the client sends until it closes, returning the frames.
async fn client_frames(mut tcp: TcpStream) -> Vec<RawFrame> {
    let mut data = Vec::new();
    let _ = within(
        STEP,
        "the client to close",
        tokio::io::AsyncReadExt::read_to_end(&mut tcp, &mut data),
    )
    .await;
    let mut frames = Vec::new();
    let mut at = 0;
    while let Some((f, used)) = parse_frame(&data[at..]) {
        frames.push(f);
        at += used;
    }
    frames
}

/// A server that sends `bytes` after the upgrade; our client must fail
/// the connection with `code` and report a protocol error.
async fn client_fails_with(bytes: Vec<u8>, code: u16) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let addr = raw_server(accept_101, move |mut tcp| async move {
        tcp.write_all(&bytes).await.unwrap();
        let _ = tx.send(client_frames(tcp).await);
    })
    .await;
    let mut ws = duplex::connect(&format!("ws://{addr}/"))
        .await
        .expect("handshake");
    within(STEP, "the client to fail the connection", async {
        match ws.recv().await {
            Some(Err(duplex::Error::Protocol(e))) => {
                assert_eq!(u16::from(e.close_code()), code, "{e}")
            }
            other => panic!("expected a protocol error, got {other:?}"),
        }
        // After the error the stream ends.
        while let Some(item) = ws.recv().await {
            if let Ok(m) = item {
                panic!("a message after the error: {m:?}");
            }
        }
    })
    .await;
    drop(ws);
    let frames = within(STEP, "the raw server", rx).await.unwrap();
    let close = frames
        .iter()
        .find(|f| f.opcode == 0x8)
        .unwrap_or_else(|| panic!("the client sent no close frame: {frames:?}"));
    assert!(close.masked, "client frames must be masked");
    assert_eq!(close.close_code(), code);
}

#[tokio::test]
async fn client_fails_bad_server_frames() {
    let cases: Vec<(String, Box<dyn FnOnce() -> HsFuture>)> = vec![
        (
            "masked server frame".into(),
            Box::new(|| -> HsFuture { Box::pin(client_fails_with(masked(0x81, b"hi"), 1002)) }),
        ),
        (
            "invalid UTF-8 from the server".into(),
            Box::new(|| -> HsFuture {
                Box::pin(client_fails_with(frame(0x81, b"\xc3\x28", None), 1007))
            }),
        ),
        (
            "reserved opcode from the server".into(),
            Box::new(|| -> HsFuture { Box::pin(client_fails_with(frame(0x85, b"", None), 1002)) }),
        ),
        (
            "compressed frame without deflate".into(),
            Box::new(|| -> HsFuture { Box::pin(client_fails_with(frame(0xC1, b"x", None), 1002)) }),
        ),
    ];
    assert_no_failures(run_cases(cases).await);
}

/// Makes a handshake response from the client's key.
type ResponseFn = Box<dyn FnOnce(&str) -> String + Send>;

#[tokio::test]
async fn client_rejects_bad_handshake_responses() {
    let cases: Vec<(&str, ResponseFn)> = vec![
        (
            "wrong accept",
            Box::new(|_key: &str| {
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Accept: bm90IHRoZSByaWdodCBvbmU=\r\n\r\n"
                    .to_string()
            }),
        ),
        (
            "no Upgrade",
            Box::new(|key: &str| accept_101(key).replace("Upgrade: websocket\r\n", "")),
        ),
        (
            "an extension that was not offered",
            Box::new(|key: &str| {
                accept_101(key).replace(
                    "\r\n\r\n",
                    "\r\nSec-WebSocket-Extensions: x-unknown-extension\r\n\r\n",
                )
            }),
        ),
        (
            "a subprotocol that was not offered",
            Box::new(|key: &str| {
                accept_101(key).replace("\r\n\r\n", "\r\nSec-WebSocket-Protocol: chat\r\n\r\n")
            }),
        ),
        (
            "garbage",
            Box::new(|_key: &str| "SSH-2.0-OpenSSH\r\n\r\n".to_string()),
        ),
        (
            "200 OK",
            Box::new(|_key: &str| "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_string()),
        ),
    ];
    for (name, response) in cases {
        let addr = raw_server(response, |tcp| async move {
            let _ = client_frames(tcp).await;
        })
        .await;
        let result = within(
            STEP,
            name,
            duplex::ClientBuilder::new(format!("ws://{addr}/"))
                .config(duplex::Config {
                    deflate: None,
                    ..duplex::Config::default()
                })
                .connect(),
        )
        .await;
        match result {
            Err(duplex::Error::Handshake(e)) => {
                if name == "200 OK" {
                    assert_eq!(e.status(), 200, "{name}: {e}");
                }
            }
            other => panic!("{name}: expected a handshake error, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn client_close_times_out_when_the_server_never_answers() {
    let addr = raw_server(accept_101, |tcp| async move {
        // Read and ignore everything, answer nothing, never close.
        let _ = client_frames(tcp).await;
    })
    .await;
    let mut ws = duplex::connect(&format!("ws://{addr}/")).await.unwrap();
    ws.set_close_timeout(Duration::from_millis(300));
    let start = Instant::now();
    let result = within(STEP, "close() to give up", ws.close(None)).await;
    assert!(
        matches!(result, Err(duplex::Error::Timeout(_))),
        "expected a timeout, got {result:?}"
    );
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "close() gave up after {waited:?}"
    );
}

#[tokio::test]
async fn max_connections_answers_503() {
    let running = Running::start(server().max_connections(1)).await;
    let mut first = duplex::connect(&running.url("/echo")).await.unwrap();
    match duplex::connect(&running.url("/echo")).await {
        Err(duplex::Error::Handshake(e)) => assert_eq!(e.status(), 503, "{e}"),
        other => panic!("expected a 503, got {other:?}"),
    }
    first.send("still served").await.unwrap();
    assert_eq!(
        first.recv().await.unwrap().unwrap(),
        Message::text("still served")
    );
    first.close(None).await.unwrap();
    drop(first);
    running.wait_idle(STEP).await;
    assert_echo_works(&running).await;
    running.stop().await;
}

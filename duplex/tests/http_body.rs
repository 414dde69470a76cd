//! Plain HTTP routes with a body (`Server::http_with_body`), over raw TCP:
//! `Content-Length` and chunked bodies reach the route whole however they
//! are split, `100 Continue` is answered, oversize bodies get 413 before
//! they are read, malformed framing its 4xx/5xx, a body that never ends
//! 408 at the handshake timeout, the memory budget 503, and the route's
//! hub is the server's (a POST reaches a room's member).

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use duplex::{HttpResponse, Message, Relay, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The body limit of these servers.
const LIMIT: usize = 4096;

/// A server whose `/in/{name}` answers 200 with the method in
/// `X-Method` and the body it was given as its own, counting calls.
fn body_server(calls: &Arc<AtomicUsize>) -> Server {
    let calls = calls.clone();
    Server::new()
        .max_request_body(LIMIT)
        .http_with_body("/in/{name}", move |req, _hub| {
            calls.fetch_add(1, Ordering::SeqCst);
            HttpResponse {
                status: 200,
                content_type: "application/octet-stream".into(),
                headers: Default::default(),
                body: req.body().clone(),
            }
            .with_header("X-Method", req.method())
        })
}

fn post(path: &str, extra_headers: &str) -> String {
    format!("POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra_headers}\r\n")
}

/// Writes `pieces` with `gap` between them (as separate TCP writes), then
/// reads to the end of the connection; returns everything read.
async fn exchange_in_pieces(addr: SocketAddr, pieces: &[&[u8]], gap: Duration) -> Vec<u8> {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    for (i, piece) in pieces.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(gap).await;
        }
        tcp.write_all(piece).await.expect("write a piece");
    }
    let mut data = Vec::new();
    within(STEP, "the answer and the close", tcp.read_to_end(&mut data))
        .await
        .expect("read the answer");
    data
}

#[tokio::test]
async fn content_length_and_chunked_bodies_reach_the_route() {
    let calls = Arc::new(AtomicUsize::new(0));
    let server = Running::start(body_server(&calls)).await;

    let small = format!("{}hello", post("/in/a", "Content-Length: 5\r\n"));
    let r = http_exchange(server.addr, small.as_bytes(), STEP).await;
    assert_eq!((r.status, &r.body[..]), (200, &b"hello"[..]), "{}", r.head);
    assert_eq!(r.header("x-method"), Some("POST"));
    assert_eq!(r.header("connection"), Some("close"));

    // Exactly the limit, more than one read's worth past the head.
    let full = binary_of(LIMIT, 7);
    let mut request = post("/in/a", &format!("Content-Length: {LIMIT}\r\n")).into_bytes();
    request.extend_from_slice(&full);
    let r = http_exchange(server.addr, &request, STEP).await;
    assert_eq!((r.status, r.body.len()), (200, LIMIT));
    assert_eq!(r.body, full);

    let chunked = format!(
        "{}5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: yes\r\n\r\n",
        post("/in/a", "Transfer-Encoding: chunked\r\n")
    );
    let r = http_exchange(server.addr, chunked.as_bytes(), STEP).await;
    assert_eq!((r.status, &r.body[..]), (200, &b"hello world"[..]));

    // No framing: an empty body for GET and DELETE; 0 is an empty POST.
    for request in [
        "GET /in/a HTTP/1.1\r\nHost: x\r\n\r\n",
        "DELETE /in/a HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST /in/a HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    ] {
        let r = http_exchange(server.addr, request.as_bytes(), STEP).await;
        assert_eq!((r.status, r.body.len()), (200, 0), "{request:?}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 6);
    server.stop().await;
}

#[tokio::test]
async fn a_body_split_across_writes_with_delays_arrives_whole() {
    let calls = Arc::new(AtomicUsize::new(0));
    let server = Running::start(body_server(&calls)).await;
    let gap = Duration::from_millis(100);

    let head = post("/in/a", "Content-Length: 11\r\n");
    let data = exchange_in_pieces(
        server.addr,
        &[
            &head.as_bytes()[..10],
            &head.as_bytes()[10..],
            b"hel",
            b"lo w",
            b"orld",
        ],
        gap,
    )
    .await;
    assert_ok_with_body(&data, b"hello world");

    // Chunked, cut inside a size line, inside data and inside a CR LF.
    let head = post("/in/a", "Transfer-Encoding: chunked\r\n");
    let data = exchange_in_pieces(
        server.addr,
        &[
            head.as_bytes(),
            b"5\r",
            b"\nhel",
            b"lo\r",
            b"\n6\r\n world\r\n0\r",
            b"\n\r\n",
        ],
        gap,
    )
    .await;
    assert_ok_with_body(&data, b"hello world");
    server.stop().await;
}

/// Asserts that a raw response is a 200 whose body is `body`.
fn assert_ok_with_body(data: &[u8], body: &[u8]) {
    let text = String::from_utf8_lossy(data);
    assert!(data.starts_with(b"HTTP/1.1 200 "), "{text}");
    assert!(data.ends_with(&[b"\r\n\r\n", body].concat()), "{text}");
}

#[tokio::test]
async fn expect_100_continue_is_answered_before_the_body() {
    let calls = Arc::new(AtomicUsize::new(0));
    let server = Running::start(body_server(&calls)).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let head = post("/in/a", "Content-Length: 2\r\nExpect: 100-continue\r\n");
    tcp.write_all(head.as_bytes()).await.unwrap();
    let continued = b"HTTP/1.1 100 Continue\r\n\r\n";
    let mut interim = vec![0u8; continued.len()];
    within(STEP, "100 Continue", tcp.read_exact(&mut interim))
        .await
        .unwrap();
    assert_eq!(&interim, continued);
    tcp.write_all(b"ok").await.unwrap();
    let mut rest = Vec::new();
    within(STEP, "the answer", tcp.read_to_end(&mut rest))
        .await
        .unwrap();
    assert!(rest.starts_with(b"HTTP/1.1 200 ") && rest.ends_with(b"\r\n\r\nok"));

    let other = post("/in/a", "Content-Length: 2\r\nExpect: coffee\r\n");
    let r = http_exchange(server.addr, other.as_bytes(), STEP).await;
    assert_eq!(r.status, 417);
    server.stop().await;
}

#[tokio::test]
async fn oversize_bodies_get_413_without_being_read() {
    let calls = Arc::new(AtomicUsize::new(0));
    let server = Running::start(body_server(&calls)).await;

    // A declared length over the limit is refused before any body is sent.
    let declared = post("/in/a", &format!("Content-Length: {}\r\n", LIMIT + 1));
    let r = http_exchange(server.addr, declared.as_bytes(), STEP).await;
    assert_eq!(r.status, 413, "{}", r.head);
    let claimed = post("/in/a", "Content-Length: 99999999999999999999999\r\n");
    assert_eq!(
        http_exchange(server.addr, claimed.as_bytes(), STEP)
            .await
            .status,
        413
    );

    // A client that sends a large body anyway, and reads only once it has
    // sent it all, still gets the 413: the server reads and drops what
    // arrives before it closes (16 MiB is more than the socket buffers
    // hold, so without that the write would fail on a reset).
    let big = 16 << 20;
    let mut request = post("/in/a", &format!("Content-Length: {big}\r\n")).into_bytes();
    request.extend(std::iter::repeat_n(b'x', big));
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    within(STEP, "sending the whole body", tcp.write_all(&request))
        .await
        .expect("the server reset the connection while the body was sent");
    let mut answer = Vec::new();
    within(STEP, "the 413", tcp.read_to_end(&mut answer))
        .await
        .expect("read the 413");
    assert!(
        answer.starts_with(b"HTTP/1.1 413 "),
        "{}",
        String::from_utf8_lossy(&answer)
    );

    // Chunked: refused at the chunk size that passes the limit.
    let chunked = format!(
        "{}{:x}\r\n{}\r\n1\r\n",
        post("/in/a", "Transfer-Encoding: chunked\r\n"),
        LIMIT,
        "y".repeat(LIMIT)
    );
    let r = http_exchange(server.addr, chunked.as_bytes(), STEP).await;
    assert_eq!(r.status, 413, "{}", r.head);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "the route saw an oversize body"
    );
    server.stop().await;
}

#[tokio::test]
async fn malformed_framing_gets_its_status_and_never_reaches_the_route() {
    let calls = Arc::new(AtomicUsize::new(0));
    let server = Running::start(body_server(&calls)).await;
    for (headers, body, status) in [
        ("", "", 411),
        ("Content-Length: abc\r\n", "", 400),
        ("Content-Length: -1\r\n", "", 400),
        ("Content-Length: 3\r\nContent-Length: 4\r\n", "abcd", 400),
        (
            "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n",
            "abc",
            400,
        ),
        ("Transfer-Encoding: gzip\r\n", "abc", 400),
        ("Transfer-Encoding: gzip, chunked\r\n", "0\r\n\r\n", 501),
        ("Transfer-Encoding: chunked\r\n", "zz\r\n", 400),
        ("Transfer-Encoding: chunked\r\n", "3\r\nabcXY", 400),
    ] {
        let request = format!("{}{body}", post("/in/a", headers));
        let r = http_exchange(server.addr, request.as_bytes(), STEP).await;
        assert_eq!(r.status, status, "{headers:?}: {}", r.head);
        assert_eq!(r.header("connection"), Some("close"));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    // A client that goes away mid-body: no call, no answer.
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let head = post("/in/a", "Content-Length: 10\r\n");
    tcp.write_all(format!("{head}abc").as_bytes())
        .await
        .unwrap();
    tcp.shutdown().await.unwrap();
    let mut rest = Vec::new();
    within(STEP, "the close", tcp.read_to_end(&mut rest))
        .await
        .unwrap();
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    server.wait_idle(STEP).await;
    server.stop().await;
}

#[tokio::test]
async fn a_body_that_never_completes_is_cut_by_the_handshake_timeout() {
    let calls = Arc::new(AtomicUsize::new(0));
    let timeout = Duration::from_millis(700);
    let server = Running::start(body_server(&calls).handshake_timeout(timeout)).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let started = Instant::now();
    let head = post("/in/a", "Content-Length: 1000\r\n");
    tcp.write_all(head.as_bytes()).await.unwrap();
    let (mut rd, mut wr) = tcp.into_split();
    // One byte every 100 ms: always progressing, never done.
    let trickle = tokio::spawn(async move {
        while wr.write_all(b"x").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut answer = Vec::new();
    let _ = within(STEP, "the timeout's answer", rd.read_to_end(&mut answer)).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 408 "),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert!(started.elapsed() >= timeout);
    trickle.abort();
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    server.wait_idle(STEP).await;
    server.stop().await;
}

#[tokio::test]
async fn the_memory_budget_bounds_what_bodies_hold() {
    let calls = Arc::new(AtomicUsize::new(0));
    // 64 KiB per connection are free; the budget covers 64 KiB more.
    let server = body_server(&calls)
        .max_request_body(1 << 20)
        .memory_budget(64 << 10);
    let server = Running::start(server).await;
    let size = 512 << 10;
    let mut request = post("/in/a", &format!("Content-Length: {size}\r\n")).into_bytes();
    request.extend(std::iter::repeat_n(b'z', size));
    let r = http_exchange(server.addr, &request, STEP).await;
    assert_eq!(r.status, 503, "{}", r.head);

    let fits = 100 << 10;
    let mut request = post("/in/a", &format!("Content-Length: {fits}\r\n")).into_bytes();
    request.extend(std::iter::repeat_n(b'z', fits));
    let r = http_exchange(server.addr, &request, STEP).await;
    assert_eq!((r.status, r.body.len()), (200, fits));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    server.stop().await;
}

#[tokio::test]
async fn the_route_publishes_through_the_servers_hub() {
    let server = Server::new()
        .config(no_deflate())
        .handler("/chat/{room}", Relay::for_request)
        .http_with_body("/say/{room}", |req, hub| {
            let room = req.param("room").unwrap_or_default();
            let reached = hub
                .rooms()
                .publish(room, &Message::binary(req.body().clone()));
            HttpResponse::text(202, reached.to_string())
        });
    let server = Running::start(server).await;
    let url = server.url("/chat/lobby");
    let mut member = duplex::connect(&url).await.unwrap();
    let mut second = duplex::connect(&url).await.unwrap();
    // Both are in the room once each has heard the other: `second` joins
    // when it opens, so it calls until `member` (then joined) hears it.
    within(STEP, "member to hear second", async {
        loop {
            second.send("here").await.unwrap();
            let heard = tokio::time::timeout(Duration::from_millis(100), member.recv()).await;
            if let Ok(heard) = heard {
                assert_eq!(heard.unwrap().unwrap(), Message::text("here"));
                break;
            }
        }
    })
    .await;
    second.send("done").await.unwrap();
    while within(STEP, "second's calls", member.recv())
        .await
        .unwrap()
        .unwrap()
        != Message::text("done")
    {}
    member.send("me too").await.unwrap();
    let heard = within(STEP, "the relay", second.recv()).await;
    assert_eq!(heard.unwrap().unwrap(), Message::text("me too"));

    let request = format!("{}\x00\x01", post("/say/lobby", "Content-Length: 2\r\n"));
    let r = http_exchange(server.addr, request.as_bytes(), STEP).await;
    assert_eq!((r.status, &r.body[..]), (202, &b"2"[..]));
    for ws in [&mut member, &mut second] {
        let got = within(STEP, "the published message", ws.recv()).await;
        assert_eq!(got.unwrap().unwrap(), Message::binary(vec![0u8, 1]));
    }
    server.stop().await;
}

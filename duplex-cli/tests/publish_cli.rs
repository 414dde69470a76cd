//! `duplex serve --publish-token TOKEN` on the built binary: `POST
//! /publish/<room>` reaches every member of the room (text and binary,
//! 202 with the count), a wrong or missing token gets 401 and publishes
//! nothing, other methods 405, an oversize body 413, a body split over
//! several writes still arrives, one that never ends is cut at the
//! handshake timeout; without the flag the path does not exist.
//!
//! Publishers are raw TCP sockets (requests written here, sometimes in
//! pieces); members are the library's client on `/chat/<room>`.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::Process;
use duplex::{ClientSocket, Message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The bound of one waiting step.
const STEP: Duration = Duration::from_secs(15);
const TOKEN: &str = "s3cret-t0ken";

/// `duplex serve --listen 127.0.0.1:0 FLAGS...`, with its address.
fn serve(flags: &[&str]) -> (Process, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_duplex"));
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(flags)
        .env_remove("DUPLEX_PUBLISH_TOKEN");
    common::start_serve(command, STEP)
}

fn serve_publishing(flags: &[&str]) -> (Process, String) {
    let mut all = vec!["--publish-token", TOKEN];
    all.extend_from_slice(flags);
    serve(&all)
}

async fn within<F: std::future::Future>(limit: Duration, what: &str, f: F) -> F::Output {
    tokio::time::timeout(limit, f)
        .await
        .unwrap_or_else(|_| panic!("timed out after {limit:?}: {what}"))
}

/// An HTTP answer: status, head, body.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Writes `pieces` as separate writes `gap` apart (a write the server
/// refuses is not an error: it may answer before reading everything),
/// then reads the answer to the end of the connection.
async fn exchange(addr: &str, pieces: &[&[u8]], gap: Duration) -> Answer {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (mut rd, mut wr) = tcp.into_split();
    let pieces: Vec<Vec<u8>> = pieces.iter().map(|p| p.to_vec()).collect();
    let writer = tokio::spawn(async move {
        for (i, piece) in pieces.iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(gap).await;
            }
            if wr.write_all(piece).await.is_err() {
                return;
            }
        }
        // Kept open: the server must not need our end of stream.
        std::future::pending::<()>().await;
    });
    let mut data = Vec::new();
    let mut chunk = [0u8; 4096];
    within(STEP, "the answer and the close", async {
        while let Ok(n @ 1..) = rd.read(&mut chunk).await {
            data.extend_from_slice(&chunk[..n]);
        }
    })
    .await;
    writer.abort();
    let end = data
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no answer in {:?}", String::from_utf8_lossy(&data)));
    let head = String::from_utf8_lossy(&data[..end]).into_owned();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap();
    Answer {
        status,
        head,
        body: data[end + 4..].to_vec(),
    }
}

/// A request head; `headers` are complete lines.
fn head(method: &str, path: &str, headers: &str) -> String {
    format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n")
}

fn bearer() -> String {
    format!("Authorization: Bearer {TOKEN}\r\n")
}

/// POSTs `body` to `/publish/<room>` with the right token.
async fn publish(addr: &str, room: &str, content_type: Option<&str>, body: &[u8]) -> Answer {
    let mut headers = format!("{}Content-Length: {}\r\n", bearer(), body.len());
    if let Some(t) = content_type {
        headers.push_str(&format!("Content-Type: {t}\r\n"));
    }
    let mut request = head("POST", &format!("/publish/{room}"), &headers).into_bytes();
    request.extend_from_slice(body);
    exchange(addr, &[&request], Duration::ZERO).await
}

async fn next_message(ws: &mut ClientSocket, what: &str) -> Message {
    within(STEP, what, ws.recv())
        .await
        .unwrap_or_else(|| panic!("{what}: the connection ended"))
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// Two members of `room`, each known to be joined. A member joins when
/// its connection opens, so `a` (which relays only once joined) calls
/// until `b` hears it, then says it is done; `b` answers once.
async fn two_members(addr: &str, room: &str) -> (ClientSocket, ClientSocket) {
    let url = format!("ws://{addr}/chat/{room}");
    let mut a = duplex::connect(&url).await.expect("connect a");
    let mut b = duplex::connect(&url).await.expect("connect b");
    within(STEP, "b to hear a", async {
        loop {
            a.send("a is here").await.unwrap();
            let heard = tokio::time::timeout(Duration::from_millis(100), b.recv()).await;
            if let Ok(heard) = heard {
                assert_eq!(heard.unwrap().unwrap(), Message::text("a is here"));
                break;
            }
        }
    })
    .await;
    a.send("a done").await.unwrap();
    loop {
        match next_message(&mut b, "a's calls").await {
            m if m == Message::text("a is here") => {}
            m => {
                assert_eq!(m, Message::text("a done"));
                break;
            }
        }
    }
    b.send("b is here").await.unwrap();
    assert_eq!(
        next_message(&mut a, "b's answer").await,
        Message::text("b is here")
    );
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_posted_message_reaches_every_member_of_the_room() {
    let (_serve, addr) = serve_publishing(&[]);
    let (mut a, mut b) = two_members(&addr, "lobby").await;
    let (mut elsewhere, _other) = two_members(&addr, "other").await;

    let r = publish(
        &addr,
        "lobby",
        Some("text/plain; charset=utf-8"),
        "héllo".as_bytes(),
    )
    .await;
    assert_eq!(r.status, 202, "{} {}", r.head, r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.text().trim(), r#"{"recipients":2}"#);
    for ws in [&mut a, &mut b] {
        assert_eq!(next_message(ws, "the text").await, Message::text("héllo"));
    }

    let bytes = [0u8, 1, 2, 0xff, 0xfe];
    let r = publish(&addr, "lobby", Some("application/octet-stream"), &bytes).await;
    assert_eq!((r.status, r.text().trim()), (202, r#"{"recipients":2}"#));
    for ws in [&mut a, &mut b] {
        assert_eq!(
            next_message(ws, "the binary").await,
            Message::binary(bytes.to_vec())
        );
    }

    // No Content-Type and JSON are text too.
    let r = publish(&addr, "lobby", None, b"plain").await;
    assert_eq!(r.status, 202);
    let r = publish(&addr, "lobby", Some("application/json"), br#"{"n":1}"#).await;
    assert_eq!(r.status, 202);
    for ws in [&mut a, &mut b] {
        assert_eq!(next_message(ws, "no type").await, Message::text("plain"));
        assert_eq!(next_message(ws, "json").await, Message::text(r#"{"n":1}"#));
    }

    // A room nobody is in: accepted, nobody reached.
    let r = publish(&addr, "empty", None, b"anyone?").await;
    assert_eq!((r.status, r.text().trim()), (202, r#"{"recipients":0}"#));
    // The other room got none of the above: its next message is this one.
    let r = publish(&addr, "other", None, b"for other").await;
    assert_eq!(r.text().trim(), r#"{"recipients":2}"#);
    assert_eq!(
        next_message(&mut elsewhere, "other's message").await,
        Message::text("for other")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_or_missing_token_gets_401_and_publishes_nothing() {
    let (_serve, addr) = serve_publishing(&[]);
    let (mut a, mut b) = two_members(&addr, "lobby").await;
    let body = b"forged";
    let length = format!("Content-Length: {}\r\n", body.len());
    for auth in [
        String::new(),
        "Authorization: Bearer wrong\r\n".to_string(),
        format!("Authorization: Bearer {}\r\n", &TOKEN[..TOKEN.len() - 1]),
        format!("Authorization: Bearer {TOKEN}x\r\n"),
        format!("Authorization: Basic {TOKEN}\r\n"),
        format!("Authorization: {TOKEN}\r\n"),
        format!("{}Authorization: Bearer wrong\r\n", bearer()),
    ] {
        let mut request = head("POST", "/publish/lobby", &format!("{auth}{length}")).into_bytes();
        request.extend_from_slice(body);
        let r = exchange(&addr, &[&request], Duration::ZERO).await;
        assert_eq!(r.status, 401, "{auth:?}: {}", r.head);
        let challenge = r.header("www-authenticate").unwrap_or_default();
        assert!(challenge.starts_with("Bearer"), "{auth:?}: {challenge:?}");
    }
    // The scheme is case-insensitive.
    let auth = format!("authorization: bearer {TOKEN}\r\n");
    let mut request = head("POST", "/publish/lobby", &format!("{auth}{length}")).into_bytes();
    request.extend_from_slice(b"marker");
    let r = exchange(&addr, &[&request], Duration::ZERO).await;
    assert_eq!((r.status, r.text().trim()), (202, r#"{"recipients":2}"#));
    // Nothing forged came before the marker.
    for ws in [&mut a, &mut b] {
        assert_eq!(
            next_message(ws, "the marker").await,
            Message::text("marker")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_methods_bad_bodies_and_bad_paths_get_their_status() {
    let (_serve, addr) = serve_publishing(&["--max-message-size", "1K"]);
    let (mut a, _b) = two_members(&addr, "lobby").await;
    let at = |request: String| {
        let addr = addr.clone();
        async move { exchange(&addr, &[request.as_bytes()], Duration::ZERO).await }
    };

    for method in ["GET", "PUT", "DELETE", "HEAD"] {
        let headers = format!("{}Content-Length: 0\r\n", bearer());
        let r = at(head(method, "/publish/lobby", &headers)).await;
        assert_eq!(r.status, 405, "{method}");
        assert_eq!(r.header("allow"), Some("POST"), "{method}: {}", r.head);
    }
    // A WebSocket upgrade there is no exception.
    let upgrade = "Upgrade: websocket\r\nConnection: Upgrade\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
    assert_eq!(at(head("GET", "/publish/lobby", upgrade)).await.status, 405);

    // 1K is the largest message: 1024 bytes pass, 1025 are refused, also
    // when the whole body is sent anyway.
    let r = publish(&addr, "lobby", None, &[b'k'; 1024]).await;
    assert_eq!(r.status, 202);
    let r = publish(&addr, "lobby", None, &[b'k'; 1025]).await;
    assert_eq!(r.status, 413, "{}", r.head);
    let r = publish(&addr, "lobby", None, &vec![b'k'; 4 << 20]).await;
    assert_eq!(r.status, 413, "{}", r.head);
    let r = at(head(
        "POST",
        "/publish/lobby",
        &format!("{}Content-Length: 1000000000000\r\n", bearer()),
    ))
    .await;
    assert_eq!(r.status, 413);

    assert_eq!(
        publish(&addr, "lobby", Some("text/plain"), &[0xff, 0xfe])
            .await
            .status,
        400
    );
    assert_eq!(
        publish(&addr, "lobby", Some("image/png"), b"png")
            .await
            .status,
        415
    );
    assert_eq!(
        publish(&addr, "lobby", Some("text/plain; charset=latin1"), b"x")
            .await
            .status,
        415
    );
    let r = at(head("POST", "/publish/lobby", &bearer())).await;
    assert_eq!(r.status, 411, "a POST without a length");
    for path in ["/publish/", "/publish", "/publish/a/b"] {
        let r = at(format!(
            "{}hi",
            head("POST", path, &format!("{}Content-Length: 2\r\n", bearer()))
        ))
        .await;
        assert_eq!(r.status, 404, "{path}");
    }
    // Of all these, only the 1024-byte message was published.
    assert_eq!(
        next_message(&mut a, "the 1K message").await,
        Message::text("k".repeat(1024))
    );
    let r = publish(&addr, "lobby", None, b"last").await;
    assert_eq!(r.status, 202);
    assert_eq!(
        next_message(&mut a, "the last message").await,
        Message::text("last")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_there_is_no_publish_endpoint() {
    let (_serve, addr) = serve(&[]);
    let mut request = head(
        "POST",
        "/publish/lobby",
        &format!("{}Content-Length: 2\r\n", bearer()),
    )
    .into_bytes();
    request.extend_from_slice(b"hi");
    let r = exchange(&addr, &[&request], Duration::ZERO).await;
    assert_eq!(r.status, 404, "{}", r.head);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_can_come_from_the_environment_and_is_checked() {
    let mut command = Command::new(env!("CARGO_BIN_EXE_duplex"));
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("DUPLEX_PUBLISH_TOKEN", TOKEN);
    let (_serve, addr) = common::start_serve(command, STEP);
    assert_eq!(publish(&addr, "lobby", None, b"hi").await.status, 202);

    let refused = Command::new(env!("CARGO_BIN_EXE_duplex"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--publish-token",
            "has space",
        ])
        .env_remove("DUPLEX_PUBLISH_TOKEN")
        .output()
        .expect("run duplex serve");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("--publish-token"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_split_across_writes_with_delays_still_arrives() {
    let (_serve, addr) = serve_publishing(&[]);
    let (mut a, mut b) = two_members(&addr, "lobby").await;
    let gap = Duration::from_millis(150);

    let request = head(
        "POST",
        "/publish/lobby",
        &format!("{}Content-Length: 16\r\n", bearer()),
    );
    let (start, end) = request.as_bytes().split_at(20);
    let r = exchange(&addr, &[start, end, b"split ", b"across ", b"TCP"], gap).await;
    assert_eq!((r.status, r.text().trim()), (202, r#"{"recipients":2}"#));

    let request = head(
        "POST",
        "/publish/lobby",
        &format!("{}Transfer-Encoding: chunked\r\n", bearer()),
    );
    let pieces: [&[u8]; 5] = [
        request.as_bytes(),
        b"9\r\nchun",
        b"ked, \r\n",
        b"4\r\nslow\r\n0",
        b"\r\n\r\n",
    ];
    let r = exchange(&addr, &pieces, gap).await;
    assert_eq!((r.status, r.text().trim()), (202, r#"{"recipients":2}"#));

    for ws in [&mut a, &mut b] {
        assert_eq!(
            next_message(ws, "the split body").await,
            Message::text("split across TCP")
        );
        assert_eq!(
            next_message(ws, "the chunked body").await,
            Message::text("chunked, slow")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_completes_is_cut_by_the_handshake_timeout() {
    let (_serve, addr) = serve_publishing(&[]);
    let (mut a, _b) = two_members(&addr, "lobby").await;
    let request = head(
        "POST",
        "/publish/lobby",
        &format!("{}Content-Length: 100\r\n", bearer()),
    );
    // One byte a second: always progressing, never whole (100 s).
    let mut pieces: Vec<&[u8]> = vec![request.as_bytes()];
    pieces.extend(std::iter::repeat_n(&b"x"[..], 100));
    let started = Instant::now();
    let r = exchange(&addr, &pieces, Duration::from_secs(1)).await;
    let took = started.elapsed();
    assert_eq!(r.status, 408, "{}", r.head);
    // The server's handshake timeout is 10 s.
    assert!(took >= Duration::from_secs(9), "cut after {took:?}");
    // Nothing of it was published.
    assert_eq!(publish(&addr, "lobby", None, b"after").await.status, 202);
    assert_eq!(
        next_message(&mut a, "the next message").await,
        Message::text("after")
    );
}

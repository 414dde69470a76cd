//! `duplex serve` at its file-descriptor limit (a real `RLIMIT_NOFILE` of
//! 64, set with `ulimit -n` before the server starts): clients over the
//! connection cap get HTTP 503 instead of hanging, also when the cap is set
//! above the limit and `accept` itself runs out of descriptors; `/healthz`
//! answers again once connections close; the accept failures are not
//! logged in a flood.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

/// The descriptor limit the server runs under.
const FD_LIMIT: usize = 64;

/// How long one client may wait for its answer: a hanging client fails.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// A server process (killed when dropped) and its address.
struct Serve {
    process: common::Process,
    addr: String,
}

fn serve(extra: &str) -> Serve {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!(
            "ulimit -n {FD_LIMIT} && exec \"$0\" serve --listen 127.0.0.1:0 {extra}"
        ))
        .arg(env!("CARGO_BIN_EXE_duplex"))
        .env("RUST_LOG", "warn");
    let (process, addr) = common::start_serve(command, Duration::from_secs(10));
    Serve { process, addr }
}

/// Sends `request` and reads the status of the answer; `None` when no
/// answer came within [`ANSWER_WITHIN`] or the connection failed.
fn exchange(addr: &str, request: &str) -> (Option<TcpStream>, Option<u16>) {
    let Ok(mut tcp) = TcpStream::connect(addr) else {
        return (None, None);
    };
    tcp.set_read_timeout(Some(ANSWER_WITHIN)).unwrap();
    if tcp.write_all(request.as_bytes()).is_err() {
        return (None, None);
    }
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tcp.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    let status = String::from_utf8_lossy(&head)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok());
    (Some(tcp), status)
}

fn upgrade(addr: &str) -> (Option<TcpStream>, Option<u16>) {
    exchange(
        addr,
        &format!(
            "GET /echo HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ),
    )
}

fn healthz(addr: &str) -> Option<u16> {
    exchange(
        addr,
        &format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n"),
    )
    .1
}

/// Opens `n` WebSocket connections one after the other and keeps the
/// accepted ones; every client must get an answer, 101 or 503.
fn fill(addr: &str, n: usize) -> (Vec<TcpStream>, usize) {
    let mut open = Vec::new();
    let mut refused = 0;
    for i in 0..n {
        match upgrade(addr) {
            (Some(tcp), Some(101)) => open.push(tcp),
            (_, Some(503)) => refused += 1,
            other => panic!("client {i} got no answer: {:?}", other.1),
        }
    }
    (open, refused)
}

/// `/healthz` answers 200 again soon after the connections are gone.
fn recovers(addr: &str) {
    let start = Instant::now();
    loop {
        if healthz(addr) == Some(200) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "/healthz did not recover"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_default_cap_follows_the_descriptor_limit() {
    let server = serve("");
    // 64 descriptors less the reserve of 16: 48 connections.
    let (open, refused) = fill(&server.addr, 60);
    assert_eq!(open.len(), FD_LIMIT - 16, "accepted");
    assert_eq!(refused, 60 - (FD_LIMIT - 16), "refused with 503");
    assert_eq!(healthz(&server.addr), Some(503), "/healthz while full");
    drop(open);
    recovers(&server.addr);
}

#[test]
fn out_of_descriptors_still_answers_503_without_a_flood_of_warnings() {
    // A cap above the limit: accept itself fails with EMFILE.
    let server = serve("--max-connections 1000");
    let (open, refused) = fill(&server.addr, 80);
    assert!(
        open.len() < FD_LIMIT && open.len() > FD_LIMIT / 2,
        "{} accepted",
        open.len()
    );
    assert!(refused > 0, "nobody was refused with 503");
    assert_eq!(open.len() + refused, 80);
    drop(open);
    recovers(&server.addr);
    let warnings: Vec<String> = server
        .process
        .stderr
        .try_iter()
        .filter(|l| l.contains("accept failed"))
        .collect();
    assert!(
        !warnings.is_empty() && warnings.len() <= 2,
        "accept warnings: {warnings:#?}"
    );
}

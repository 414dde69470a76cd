//! `duplex serve --allow-origin` and `--subprotocol` end to end: the
//! binary, a raw handshake over 127.0.0.1, the status and headers it
//! answers with.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::cli_run::serve;

/// Sends an upgrade request for `/echo` with `extra` header lines and
/// returns the response: a 101's head, or a refusal whole.
fn handshake(addr: &str, extra: &str) -> String {
    let mut tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let request = format!(
        "GET /echo HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    );
    tcp.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    // A 101 stays open: read up to the end of its head. A refusal
    // closes after its body, so read to the end.
    loop {
        let head_done = answer.windows(4).any(|w| w == b"\r\n\r\n");
        if head_done && answer.starts_with(b"HTTP/1.1 101") {
            break;
        }
        match tcp.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn allow_origin_refuses_a_foreign_origin_with_403_and_lets_listed_and_absent_ones_in() {
    let (_server, addr) = serve(&[
        "--allow-origin",
        "https://chat.example",
        "--allow-origin",
        "http://localhost:3000",
    ]);
    let ok = handshake(&addr, "Origin: https://CHAT.example:443\r\n");
    assert!(ok.starts_with("HTTP/1.1 101"), "{ok}");
    let other = handshake(&addr, "Origin: http://localhost:3000\r\n");
    assert!(other.starts_with("HTTP/1.1 101"), "{other}");
    let none = handshake(&addr, "");
    assert!(none.starts_with("HTTP/1.1 101"), "{none}");
    let foreign = handshake(&addr, "Origin: https://evil.example\r\n");
    assert!(foreign.starts_with("HTTP/1.1 403"), "{foreign}");
    assert!(
        foreign.contains("origin https://evil.example is not allowed"),
        "{foreign}"
    );
    let other_port = handshake(&addr, "Origin: http://localhost:3001\r\n");
    assert!(other_port.starts_with("HTTP/1.1 403"), "{other_port}");
}

#[test]
fn subprotocol_is_chosen_in_the_servers_order_and_only_when_offered() {
    let (_server, addr) = serve(&["--subprotocol", "chat.v2", "--subprotocol", "chat.v1"]);
    let both = handshake(&addr, "Sec-WebSocket-Protocol: chat.v1, chat.v2\r\n");
    assert!(both.starts_with("HTTP/1.1 101"), "{both}");
    assert!(
        both.contains("Sec-WebSocket-Protocol: chat.v2\r\n"),
        "{both}"
    );
    let one = handshake(&addr, "Sec-WebSocket-Protocol: other, chat.v1\r\n");
    assert!(one.contains("Sec-WebSocket-Protocol: chat.v1\r\n"), "{one}");
    let unknown = handshake(&addr, "Sec-WebSocket-Protocol: other\r\n");
    assert!(unknown.starts_with("HTTP/1.1 101"), "{unknown}");
    assert!(
        !unknown
            .to_ascii_lowercase()
            .contains("sec-websocket-protocol"),
        "{unknown}"
    );
    let without = handshake(&addr, "");
    assert!(
        !without
            .to_ascii_lowercase()
            .contains("sec-websocket-protocol"),
        "{without}"
    );
}

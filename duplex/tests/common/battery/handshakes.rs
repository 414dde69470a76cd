//! Handshake cases: malformed upgrade requests and the HTTP status each
//! must get, and clients that send nothing or half a request.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::{expect_dropped, named, Case, CLOSE_BOUND, HANDSHAKE_TIMEOUT};
use crate::common::{http_exchange, KEY, STEP};

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

pub fn handshake_battery(addr: SocketAddr) -> Vec<Case> {
    handshake_cases()
        .into_iter()
        .map(|case| {
            named(
                format!("handshake {}", case.name),
                check_handshake_case(addr, case),
            )
        })
        .collect()
}

/// A client that connects and sends nothing is dropped after the
/// handshake timeout, not before and not much later.
pub async fn silent_client(addr: SocketAddr) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let start = Instant::now();
    expect_dropped(&mut tcp, "the server to drop a silent client").await;
    let waited = start.elapsed();
    assert!(
        waited >= HANDSHAKE_TIMEOUT - Duration::from_millis(50),
        "closed after {waited:?}, before the handshake timeout"
    );
}

/// Half a request, then the client vanishes.
pub async fn half_request_then_disconnect(addr: SocketAddr) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgr")
        .await
        .unwrap();
    drop(tcp);
}

//! What the hyper and axum adapter tests share: the bad upgrade requests
//! compared against duplex's own server, the probe route and the real
//! peers' probe clients (`tests/peers/*_probe_client.*`).

use std::net::SocketAddr;
use std::time::Duration;

use duplex::{ClientBuilder, Message, WebSocket};
use tokio::io::{AsyncRead, AsyncWrite};

use super::peers::{Peer, PeerCmd};
use super::{http_exchange, within, KEY, STEP};

/// The subprotocol the probe clients offer and the adapters speak.
pub const PROTOCOL: &str = "chat.v1";

/// An upgrade request for `path` without the headers in `skip`, with
/// `extra` added and `first_line` (`{path}` replaced) as request line.
fn request(path: &str, first_line: &str, skip: &[&str], extra: &[(&str, &str)]) -> Vec<u8> {
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

/// Bad upgrade requests for `path`, named, with the status duplex's own
/// server answers each with.
pub fn bad_upgrades(path: &str) -> Vec<(&'static str, Vec<u8>, u16)> {
    let get = "GET {path} HTTP/1.1";
    let req = |skip: &[&str], extra: &[(&str, &str)]| request(path, get, skip, extra);
    vec![
        ("missing key", req(&["Sec-WebSocket-Key"], &[]), 400),
        (
            "short key",
            req(
                &["Sec-WebSocket-Key"],
                &[("Sec-WebSocket-Key", "AAAAAAAAAAA=")],
            ),
            400,
        ),
        (
            "two keys",
            req(&[], &[("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAA==")]),
            400,
        ),
        (
            "version 8",
            req(
                &["Sec-WebSocket-Version"],
                &[("Sec-WebSocket-Version", "8")],
            ),
            426,
        ),
        ("no version", req(&["Sec-WebSocket-Version"], &[]), 426),
        ("POST", request(path, "POST {path} HTTP/1.1", &[], &[]), 405),
        ("no Upgrade header", req(&["Upgrade"], &[]), 426),
        (
            "Upgrade: h2c",
            req(&["Upgrade"], &[("Upgrade", "h2c")]),
            400,
        ),
        (
            "Connection without upgrade",
            req(&["Connection"], &[("Connection", "keep-alive")]),
            400,
        ),
        (
            "HTTP/1.0",
            request(path, "GET {path} HTTP/1.0", &[], &[]),
            400,
        ),
        (
            "malformed extension offer",
            req(
                &[],
                &[("Sec-WebSocket-Extensions", "permessage-deflate; =")],
            ),
            400,
        ),
    ]
}

/// The headers whose presence and value must be the same as duplex's own
/// server's.
const COMPARED: [&str; 5] = [
    "Content-Type",
    "Upgrade",
    "Sec-WebSocket-Version",
    "Allow",
    "Connection",
];

/// Sends every [`bad_upgrades`] request to duplex's own server at
/// `duplex_addr` (its WebSocket route at `duplex_path`) and to the adapter
/// at `adapter_addr` (`adapter_path`): same status (the expected one),
/// same [`COMPARED`] headers, same body.
pub async fn assert_bad_upgrades_answered_alike(
    duplex_addr: SocketAddr,
    duplex_path: &str,
    adapter_addr: SocketAddr,
    adapter_path: &str,
) {
    let limit = STEP + Duration::from_secs(2);
    let theirs = bad_upgrades(adapter_path);
    for ((name, ours, status), (_, adapter, _)) in bad_upgrades(duplex_path).into_iter().zip(theirs)
    {
        let expected = http_exchange(duplex_addr, &ours, limit).await;
        let got = http_exchange(adapter_addr, &adapter, limit).await;
        assert_eq!(
            expected.status, status,
            "{name}: duplex's server: {}",
            expected.head
        );
        assert_eq!(got.status, status, "{name}: the adapter: {}", got.head);
        for header in COMPARED {
            assert_eq!(
                got.header(header).map(str::to_ascii_lowercase),
                expected.header(header).map(str::to_ascii_lowercase),
                "{name}: header {header}\nadapter: {}\nduplex: {}",
                got.head,
                expected.head
            );
        }
        assert_eq!(
            String::from_utf8_lossy(&got.body),
            String::from_utf8_lossy(&expected.body),
            "{name}: body"
        );
    }
}

/// The probe route: tells the client what the server negotiated, then
/// echoes every data message.
pub async fn probe<S: AsyncRead + AsyncWrite + Unpin>(mut ws: WebSocket<S>) {
    let saw = server_saw(ws.protocol(), ws.is_compressed());
    if ws.send(saw).await.is_err() {
        return;
    }
    while let Some(Ok(message)) = ws.recv().await {
        if message.is_data() && ws.send(message).await.is_err() {
            break;
        }
    }
}

/// The first message of the probe route.
pub fn server_saw(protocol: Option<&str>, compressed: bool) -> String {
    format!("protocol={} deflate={compressed}", protocol.unwrap_or("-"))
}

/// Our client against the probe route at `url`: subprotocol and
/// compression negotiated, and seen so by the server; echoes of text,
/// binary and a 100 kB message.
pub async fn our_client_probe(url: &str) {
    let mut ws = within(
        STEP,
        "connect",
        ClientBuilder::new(url)
            .protocol("other")
            .protocol(PROTOCOL)
            .connect(),
    )
    .await
    .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    assert_eq!(ws.protocol(), Some(PROTOCOL));
    assert!(ws.is_compressed(), "permessage-deflate negotiated");
    within(STEP, "the probe's echoes", async {
        let first = ws.recv().await.unwrap().unwrap();
        assert_eq!(first, Message::text(server_saw(Some(PROTOCOL), true)));
        let big = "y".repeat(100_000);
        for message in [
            Message::text("hello"),
            Message::binary(vec![0u8, 1, 255]),
            Message::text(big),
        ] {
            ws.send(message.clone()).await.unwrap();
            assert!(ws.recv().await.unwrap().unwrap() == message, "an echo");
        }
        ws.close(None).await.unwrap();
    })
    .await;
}

/// A real peer's probe client against the probe route at `url`; `None`
/// when the peer is not available (reported by [`PeerCmd::find`]).
pub async fn peer_probe(peer: Peer, url: &str) -> Option<()> {
    let cmd = PeerCmd::find(peer).await?;
    let mut command = cmd.command("probe");
    command.arg(url).arg(PROTOCOL);
    let what = format!("{peer:?} probe client against {url}");
    let output = within(Duration::from_secs(60), &what, command.output())
        .await
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{what}: not one JSON line ({e}): {stdout}"));
    assert_eq!(report["protocol"], PROTOCOL, "{what}: {report}");
    let extensions = report["extensions"].as_str().unwrap_or_default();
    assert!(
        extensions.contains("permessage-deflate"),
        "{what}: compression not negotiated: {report}"
    );
    assert_eq!(
        report["server_saw"],
        server_saw(Some(PROTOCOL), true),
        "{what}: {report}"
    );
    assert_eq!(report["text"], "hello", "{what}: {report}");
    assert_eq!(
        report["binary"],
        serde_json::json!([0, 1, 255]),
        "{what}: {report}"
    );
    assert_eq!(report["big_ok"], true, "{what}: {report}");
    eprintln!("{what}: {report}");
    Some(())
}

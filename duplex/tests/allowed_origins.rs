//! `Server::allowed_origins` and `Server::protocols`: an upgrade from a
//! page of a foreign origin is refused with 403 before the upgrade hook
//! runs, one from an allowed origin or without `Origin` is accepted, and
//! the server's subprotocol list is chosen from in the server's order.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use duplex::{
    ClientBuilder, Error, Message, Server, ServerSocket, UpgradeDecision, UpgradeRequest,
};

/// Sends the agreed subprotocol back as text.
async fn tell_protocol(mut ws: ServerSocket, _req: UpgradeRequest) {
    let protocol = ws.protocol().unwrap_or("none").to_string();
    let _ = ws.send(protocol).await;
    while let Some(Ok(_)) = ws.recv().await {}
}

/// A server allowing two origins, counting the hook's calls.
async fn start(hook_calls: Arc<AtomicUsize>) -> Running {
    let server = Server::new()
        .config(no_deflate())
        .allowed_origins(["https://Chat.Example:443", "http://localhost:8080"])
        .protocols(["chat.v2", "chat.v1"])
        .on_upgrade(move |_req| {
            hook_calls.fetch_add(1, Ordering::SeqCst);
            UpgradeDecision::accept()
        })
        .route("/p", tell_protocol);
    Running::start(server).await
}

fn with_origin(path: &str, origin: &str) -> String {
    upgrade_request(path).replace("\r\n\r\n", &format!("\r\nOrigin: {origin}\r\n\r\n"))
}

/// Connects to `url` offering `protocols` in this order.
async fn offering(url: &str, protocols: &[&str]) -> duplex::ClientSocket {
    let client = protocols
        .iter()
        .fold(ClientBuilder::new(url), |client, p| client.protocol(*p));
    client.connect().await.unwrap()
}

#[tokio::test]
async fn foreign_origin_gets_403_with_a_body_and_no_hook_call() {
    let calls = Arc::new(AtomicUsize::new(0));
    let running = start(calls.clone()).await;
    let request = with_origin("/p", "https://evil.example");
    let response = http_exchange(running.addr, request.as_bytes(), TEST).await;
    assert_eq!(response.status, 403, "{response:?}");
    assert!(
        response.head.starts_with("HTTP/1.1 403 Forbidden"),
        "{}",
        response.head
    );
    let body = String::from_utf8_lossy(&response.body);
    assert!(body.contains("origin"), "{body:?}");
    assert!(body.contains("https://evil.example"), "{body:?}");
    // The same host on another port or scheme is another origin.
    for origin in ["https://chat.example:8443", "http://chat.example", "null"] {
        let request = with_origin("/p", origin);
        let response = http_exchange(running.addr, request.as_bytes(), TEST).await;
        assert_eq!(response.status, 403, "{origin}: {response:?}");
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "the hook ran for a refused origin"
    );

    // Our client sees the refusal as a handshake error with its status.
    match ClientBuilder::new(running.url("/p"))
        .header("Origin", "https://evil.example")
        .connect()
        .await
    {
        Err(Error::Handshake(e)) => assert_eq!(e.status(), Some(403), "{e}"),
        other => panic!("expected a refused handshake, got {other:?}"),
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    running.stop().await;
}

#[tokio::test]
async fn allowed_origin_and_no_origin_upgrade() {
    let calls = Arc::new(AtomicUsize::new(0));
    let running = start(calls.clone()).await;
    within(TEST, "allowed upgrades", async {
        // Case and the default port do not matter.
        for origin in [
            "https://chat.example",
            "HTTPS://CHAT.EXAMPLE:443",
            "http://localhost:8080",
        ] {
            let mut ws = ClientBuilder::new(running.url("/p"))
                .header("Origin", origin)
                .connect()
                .await
                .unwrap_or_else(|e| panic!("{origin}: {e}"));
            assert_eq!(ws.recv().await.unwrap().unwrap(), Message::text("none"));
            ws.close(None).await.unwrap();
        }
        // No Origin: not a browser, allowed.
        let mut ws = duplex::connect(&running.url("/p")).await.unwrap();
        assert_eq!(ws.recv().await.unwrap().unwrap(), Message::text("none"));
        ws.close(None).await.unwrap();
    })
    .await;
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    running.stop().await;
}

#[tokio::test]
async fn protocols_are_chosen_in_the_servers_order() {
    let running = start(Arc::new(AtomicUsize::new(0))).await;
    within(TEST, "subprotocols", async {
        // The client prefers chat.v1; the server prefers chat.v2.
        let mut ws = offering(&running.url("/p"), &["chat.v1", "chat.v2"]).await;
        assert_eq!(ws.protocol(), Some("chat.v2"));
        assert_eq!(ws.recv().await.unwrap().unwrap(), Message::text("chat.v2"));
        ws.close(None).await.unwrap();

        let mut ws = offering(&running.url("/p"), &["other", "chat.v1"]).await;
        assert_eq!(ws.protocol(), Some("chat.v1"));
        ws.close(None).await.unwrap();

        // None in common: accepted without one.
        let mut ws = offering(&running.url("/p"), &["other"]).await;
        assert_eq!(ws.protocol(), None);
        assert_eq!(ws.recv().await.unwrap().unwrap(), Message::text("none"));
        ws.close(None).await.unwrap();
    })
    .await;
    running.stop().await;
}

#[tokio::test]
async fn no_protocol_offered_means_no_protocol_header() {
    let running = start(Arc::new(AtomicUsize::new(0))).await;
    let mut tcp = tokio::net::TcpStream::connect(running.addr).await.unwrap();
    let head = within(TEST, "the 101", async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        tcp.write_all(upgrade_request("/p").as_bytes())
            .await
            .unwrap();
        let mut data = Vec::new();
        let mut chunk = [0u8; 1024];
        while !data.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = tcp.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed before the response head");
            data.extend_from_slice(&chunk[..n]);
        }
        String::from_utf8_lossy(&data).into_owned()
    })
    .await;
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("sec-websocket-protocol"),
        "{head}"
    );
    drop(tcp);
    running.stop().await;
}

#[tokio::test]
async fn a_hooks_protocol_choice_wins() {
    let server = Server::new()
        .protocols(["chat.v2", "chat.v1"])
        .on_upgrade(|_req| UpgradeDecision::accept_protocol("chat.v1"))
        .route("/p", tell_protocol);
    let running = Running::start(server).await;
    within(TEST, "the hook's choice", async {
        let mut ws = offering(&running.url("/p"), &["chat.v2", "chat.v1"]).await;
        assert_eq!(ws.protocol(), Some("chat.v1"));
        ws.close(None).await.unwrap();
    })
    .await;
    running.stop().await;
}

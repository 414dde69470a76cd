//! What the server decides at the upgrade: subprotocol negotiation and
//! rejection through the `on_upgrade` hook, the request headers the hook
//! and the route see, and route parameters (path and query).

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use duplex::{
    ClientBuilder, Error, HttpResponse, Message, Server, ServerSocket, UpgradeDecision,
    UpgradeRequest,
};

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
            Err(Error::Handshake(e)) => assert_eq!(e.status(), Some(500), "{e}"),
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
            Err(Error::Handshake(e)) => assert_eq!(e.status(), Some(403), "{e}"),
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
                Err(Error::Handshake(e)) => assert_eq!(e.status(), Some(404), "{path}: {e}"),
                other => panic!("{path}: expected a 404, got {other:?}"),
            }
        }
    })
    .await;
    running.stop().await;
}

/// A hook that "refuses" with 101 or 200 would send what looks like an
/// upgrade or a success: the server answers 500 instead.
#[tokio::test]
async fn a_refusal_below_300_is_answered_with_500() {
    for status in [101, 200] {
        let server = Server::new()
            .route("/x", tell_header)
            .on_upgrade(move |_: &UpgradeRequest| UpgradeDecision::reject(status, "no"));
        let running = Running::start(server).await;
        let request = upgrade_request("/x");
        let response = http_exchange(running.addr, request.as_bytes(), STEP).await;
        assert_eq!(
            response.status, 500,
            "hook status {status}: {}",
            response.head
        );
        assert!(
            String::from_utf8_lossy(&response.body).contains("no refusal"),
            "{:?}",
            String::from_utf8_lossy(&response.body)
        );
        running.stop().await;
    }
}

//! The axum adapter (`duplex::axum::WebSocketUpgrade`) in an axum app
//! served by `axum::serve` on 127.0.0.1: our client and Python
//! `websockets` / Node `ws` with a subprotocol and `permessage-deflate`
//! negotiated (both sides see them), the Handler API with rooms (members
//! of one room exchange messages, another room hears nothing), plain
//! routes on the same port, and bad upgrade requests answered exactly as
//! duplex's own server answers them.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::{any, get};
use axum::Router;
use common::adapters::{self, PROTOCOL};
use common::peers::Peer;
use common::*;
use duplex::axum::WebSocketUpgrade;
use duplex::{Hub, Message, Relay};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The app: `/probe` (stream API), `/chat/{room}` (a [`Relay`] in `hub`),
/// `/healthz`. WebSocket routes use `any`, so that every method reaches
/// the extractor (a `POST` gets its 405 as from duplex's server).
fn app(hub: Arc<Hub>) -> Router {
    Router::new()
        .route(
            "/probe",
            any(|ws: WebSocketUpgrade| async move {
                ws.protocols([PROTOCOL]).on_upgrade(adapters::probe)
            }),
        )
        .route(
            "/chat/{room}",
            any(move |ws: WebSocketUpgrade| {
                let hub = hub.clone();
                async move {
                    let relay = Relay::for_request(ws.request());
                    ws.run(relay, hub)
                }
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
}

/// `axum::serve` on its own task, stopped on drop.
struct AxumApp {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl AxumApp {
    async fn start(hub: Arc<Hub>) -> AxumApp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app(hub)).await;
        });
        AxumApp { addr, task }
    }

    fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }
}

impl Drop for AxumApp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_negotiates_protocol_and_deflate() {
    let app = AxumApp::start(Arc::new(Hub::new())).await;
    adapters::our_client_probe(&app.url("/probe")).await;
    let health = http_exchange(
        app.addr,
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        STEP,
    )
    .await;
    assert_eq!(health.status, 200);
    assert_eq!(health.body, b"ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_negotiates_protocol_and_deflate() {
    let app = AxumApp::start(Arc::new(Hub::new())).await;
    adapters::peer_probe(Peer::Python, &app.url("/probe")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_client_negotiates_protocol_and_deflate() {
    let app = AxumApp::start(Arc::new(Hub::new())).await;
    adapters::peer_probe(Peer::Node, &app.url("/probe")).await;
}

async fn wait_members(hub: &Hub, room: &str, n: usize) {
    within(STEP, &format!("{n} member(s) in {room}"), async {
        while hub.rooms().member_count(room) < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_and_rooms_work_inside_axum() {
    let hub = Arc::new(Hub::new());
    let app = AxumApp::start(hub.clone()).await;
    let mut ada = duplex::connect(&app.url("/chat/lobby?name=ada"))
        .await
        .unwrap();
    let mut bob = duplex::connect(&app.url("/chat/lobby")).await.unwrap();
    let mut elsewhere = duplex::connect(&app.url("/chat/other")).await.unwrap();
    wait_members(&hub, "lobby", 2).await;
    wait_members(&hub, "other", 1).await;
    // The route parameter and query reached the handler's session.
    let presence = hub.rooms().presence("lobby");
    assert_eq!(
        (presence.count, presence.members),
        (2, vec!["ada".to_string()])
    );
    within(STEP, "messages both ways, in order", async {
        for i in 0..20 {
            ada.send(format!("ada {i}")).await.unwrap();
        }
        for i in 0..20 {
            assert_eq!(
                bob.recv().await.unwrap().unwrap(),
                Message::text(format!("ada {i}"))
            );
        }
        bob.send(vec![7u8; 3]).await.unwrap();
        assert_eq!(
            ada.recv().await.unwrap().unwrap(),
            Message::binary(vec![7u8; 3])
        );
        // The other room heard nothing: its member's first message is its
        // own room's.
        let mut other_member = duplex::connect(&app.url("/chat/other")).await.unwrap();
        wait_members(&hub, "other", 2).await;
        other_member.send("in other").await.unwrap();
        assert_eq!(
            elsewhere.recv().await.unwrap().unwrap(),
            Message::text("in other")
        );
        other_member.close(None).await.unwrap();
    })
    .await;
    for ws in [&mut ada, &mut bob, &mut elsewhere] {
        ws.close(None).await.unwrap();
    }
    within(STEP, "the rooms to empty", async {
        while hub.rooms().room_count() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_upgrades_are_answered_like_duplex_server() {
    let server = Running::start(echo_server()).await;
    let app = AxumApp::start(Arc::new(Hub::new())).await;
    adapters::assert_bad_upgrades_answered_alike(server.addr, "/echo", app.addr, "/probe").await;
    // A route with parameters too.
    adapters::assert_bad_upgrades_answered_alike(server.addr, "/echo", app.addr, "/chat/x").await;
    server.stop().await;
}

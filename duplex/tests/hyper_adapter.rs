//! The hyper adapter (`duplex::hyper`) in a real hyper 1 HTTP/1.1 server
//! on 127.0.0.1: our client and Python `websockets` / Node `ws` with a
//! subprotocol and `permessage-deflate` negotiated (both sides see them),
//! plain HTTP on the same port, a room shared with duplex's own `Server`
//! through one `Hub`, and bad upgrade requests answered exactly as
//! duplex's own server answers them.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use common::adapters::{self, PROTOCOL};
use common::peers::Peer;
use common::*;
use duplex::hyper::{is_upgrade_request, upgrade, UpgradeConfig};
use duplex::{Hub, Message, Relay, Server};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A hyper server on its own task: `/probe` upgrades to the probe route,
/// `/chat/<room>` runs a [`Relay`] in `hub`, anything else that is no
/// upgrade gets a page. Stopped (its accept loop) on drop.
struct HyperApp {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for HyperApp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn respond(
    mut req: hyper::Request<Incoming>,
    config: UpgradeConfig,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    if path != "/probe" && !is_upgrade_request(&req) {
        return Ok(hyper::Response::new(Full::new(Bytes::from("a page\n"))));
    }
    let config = config.protocols([PROTOCOL]);
    Ok(match upgrade(&mut req, &config) {
        Ok((response, socket)) => {
            match path.strip_prefix("/chat/") {
                Some(room) => tokio::spawn(socket.run_handler(Relay::new(room))),
                None => tokio::spawn(socket.run(|ws, _req| adapters::probe(ws))),
            };
            response
        }
        Err(rejection) => rejection.into_response(),
    })
}

impl HyperApp {
    async fn start(hub: Arc<Hub>) -> HyperApp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = UpgradeConfig::with_hub(hub);
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let config = config.clone();
                let service = service_fn(move |req| respond(req, config.clone()));
                tokio::spawn(async move {
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        HyperApp { addr, task }
    }

    fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_negotiates_protocol_and_deflate() {
    let app = HyperApp::start(Arc::new(Hub::new())).await;
    adapters::our_client_probe(&app.url("/probe")).await;
    // Plain HTTP on the same port and connection type.
    let page = http_exchange(
        app.addr,
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        STEP,
    )
    .await;
    assert_eq!(page.status, 200);
    assert_eq!(page.body, b"a page\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_negotiates_protocol_and_deflate() {
    let app = HyperApp::start(Arc::new(Hub::new())).await;
    adapters::peer_probe(Peer::Python, &app.url("/probe")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_client_negotiates_protocol_and_deflate() {
    let app = HyperApp::start(Arc::new(Hub::new())).await;
    adapters::peer_probe(Peer::Node, &app.url("/probe")).await;
}

/// One hub for duplex's `Server` and the hyper app: a member on each is in
/// the same room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_spans_the_hyper_app_and_a_duplex_server() {
    let hub = Arc::new(Hub::new());
    let app = HyperApp::start(hub.clone()).await;
    let server = Running::start(
        Server::new()
            .hub(hub.clone())
            .handler("/chat/{room}", Relay::for_request),
    )
    .await;
    let mut on_hyper = duplex::connect(&app.url("/chat/lobby")).await.unwrap();
    let mut on_server = duplex::connect(&server.url("/chat/lobby")).await.unwrap();
    within(STEP, "both members in the room", async {
        while hub.rooms().member_count("lobby") < 2 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await;
    within(STEP, "messages both ways", async {
        on_hyper.send("from hyper").await.unwrap();
        assert_eq!(
            on_server.recv().await.unwrap().unwrap(),
            Message::text("from hyper")
        );
        on_server.send(vec![1u8, 2, 3]).await.unwrap();
        assert_eq!(
            on_hyper.recv().await.unwrap().unwrap(),
            Message::binary(vec![1u8, 2, 3])
        );
    })
    .await;
    on_hyper.close(None).await.unwrap();
    on_server.close(None).await.unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_upgrades_are_answered_like_duplex_server() {
    let server = Running::start(echo_server()).await;
    let app = HyperApp::start(Arc::new(Hub::new())).await;
    adapters::assert_bad_upgrades_answered_alike(server.addr, "/echo", app.addr, "/probe").await;
    server.stop().await;
}

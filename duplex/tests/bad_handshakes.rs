//! Bad handshakes against `Server` with an `/echo` route, over raw TCP:
//! malformed upgrade requests get the right HTTP status and a closed
//! connection, clients that send nothing or half a request are dropped
//! after the handshake timeout without holding anyone up, and a server at
//! `max_connections` answers 503. None of it disturbs the server.

mod common;

use std::net::SocketAddr;

use common::battery::handshakes::{half_request_then_disconnect, handshake_battery, silent_client};
use common::battery::*;
use common::*;
use duplex::Message;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[tokio::test]
async fn malformed_handshakes_get_the_right_status() {
    let running = Running::start(server()).await;
    assert_no_failures(run_cases(handshake_battery(running.addr)).await);
    assert_still_serving_then_stop(running).await;
}

/// Half a request, then nothing: dropped after the handshake timeout.
async fn half_request_then_stall(addr: SocketAddr) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgr")
        .await
        .unwrap();
    expect_dropped(&mut tcp, "the server to drop a stalled client").await;
}

#[tokio::test]
async fn silent_and_half_clients_are_dropped() {
    let running = Running::start(server()).await;
    let addr = running.addr;
    // Concurrently, so the silent clients cannot block anyone else.
    let mut tasks = Vec::new();
    for _ in 0..3 {
        tasks.push(tokio::spawn(silent_client(addr)));
        tasks.push(tokio::spawn(half_request_then_stall(addr)));
        tasks.push(tokio::spawn(half_request_then_disconnect(addr)));
    }
    // Meanwhile a normal client is served at once.
    assert_echo_works(&running).await;
    for t in tasks {
        t.await.expect("case failed");
    }
    assert_still_serving_then_stop(running).await;
}

#[tokio::test]
async fn max_connections_answers_503() {
    let running = Running::start(server().max_connections(1)).await;
    let mut first = duplex::connect(&running.url("/echo")).await.unwrap();
    match duplex::connect(&running.url("/echo")).await {
        Err(duplex::Error::Handshake(e)) => assert_eq!(e.status(), Some(503), "{e}"),
        other => panic!("expected a 503, got {other:?}"),
    }
    first.send("still served").await.unwrap();
    assert_eq!(
        first.recv().await.unwrap().unwrap(),
        Message::text("still served")
    );
    first.close(None).await.unwrap();
    drop(first);
    assert_still_serving_then_stop(running).await;
}

/// A header the application gives the client that would forge another
/// header (CR LF in its value) is refused before anything is sent.
#[tokio::test]
async fn client_refuses_headers_that_cannot_be_sent_as_given() {
    let server = Running::start(echo_server()).await;
    for (name, value) in [
        ("X-Token", "abc\r\nSet-Cookie: evil=1"),
        ("X-Token", "nul\0byte"),
        ("Bad Name", "value"),
    ] {
        let result = duplex::ClientBuilder::new(server.url("/echo"))
            .header(name, value)
            .connect()
            .await;
        match result {
            Err(duplex::Error::Handshake(error)) => {
                assert_eq!(error.status(), None, "{error}");
            }
            other => panic!("{name}: {value:?} was not refused: {other:?}"),
        }
    }
    server.stop().await;
}

//! What the reconnecting client guarantees across reconnects, over real
//! sockets: a message written into a connection that dies before the
//! server read it is sent again (at least once, in order); `close` while
//! disconnected makes its final attempts within the close grace; and the
//! backoff starts over only after a connection that lived.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use common::{within, STEP};
use duplex::proto::handshake::server::{self as hs, Choice};
use duplex::proto::handshake::HandshakeLimits;
use duplex::reconnect::{ClientEvent, ReconnectPolicy, ReconnectingClient};
use duplex::{ClientBuilder, Config, Message, WebSocket};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn policy() -> ReconnectPolicy {
    ReconnectPolicy {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(200),
        ..ReconnectPolicy::default()
    }
}

/// Reads a request head and answers 101; returns the engine's connection
/// and the bytes read past the head.
async fn upgrade(tcp: &mut TcpStream) -> (duplex::proto::Connection, BytesMut) {
    let mut buf = BytesMut::with_capacity(1024);
    let (request, used) = loop {
        if let Some(parsed) = hs::parse_request(&buf, &HandshakeLimits::default()).unwrap() {
            break parsed;
        }
        assert!(tcp.read_buf(&mut buf).await.unwrap() > 0, "no request");
    };
    let accepted = hs::accept(&request, Arc::new(Config::default()), Choice::default()).unwrap();
    tcp.write_all(&accepted.response).await.unwrap();
    (accepted.connection, buf.split_off(used))
}

/// Records the text messages of one connection until it ends.
async fn record(tcp: TcpStream, received: Arc<Mutex<Vec<String>>>) {
    let mut tcp = tcp;
    let (conn, leftover) = upgrade(&mut tcp).await;
    let mut ws = WebSocket::from_parts(tcp, conn, &leftover);
    while let Some(Ok(message)) = ws.recv().await {
        if let Message::Text(text) = message {
            received.lock().unwrap().push(text.to_string());
        }
    }
}

async fn next(client: &mut ReconnectingClient, what: &str) -> ClientEvent {
    within(STEP, what, client.next_event())
        .await
        .unwrap_or_else(|| panic!("the event stream ended while waiting for {what}"))
}

async fn wait_connected(client: &mut ReconnectingClient) {
    loop {
        if let ClientEvent::Connected { .. } = next(client, "a connection").await {
            return;
        }
    }
}

/// The first connection is a black hole: its server takes the bytes off
/// the socket without reading a frame (so it never answers a ping), then
/// drops the connection. Everything written into it is lost in the
/// crash, yet arrives over the next connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_lost_in_a_crashed_connection_are_sent_again() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut client =
        ReconnectingClient::spawn(ClientBuilder::new(format!("ws://{addr}/r")), policy());
    let sent: Vec<String> = (0..10).map(|i| format!("message {i}")).collect();

    let (mut hole, _) = listener.accept().await.unwrap();
    let (_, mut swallowed) = upgrade(&mut hole).await;
    wait_connected(&mut client).await;
    for text in &sent {
        client.send(Message::text(text.clone())).unwrap();
    }
    // Each masked frame is at least 6 bytes more than its text.
    let written: usize = sent.iter().map(|t| t.len() + 6).sum();
    let swallow = async {
        while swallowed.len() < written {
            assert!(hole.read_buf(&mut swallowed).await.unwrap() > 0);
        }
    };
    within(STEP, "the messages to reach the black hole", swallow).await;
    drop(hole);

    let received = Arc::new(Mutex::new(Vec::new()));
    let (tcp, _) = within(STEP, "the reconnection", listener.accept())
        .await
        .unwrap();
    let server = tokio::spawn(record(tcp, received.clone()));
    client.close();
    loop {
        match next(&mut client, "the end").await {
            ClientEvent::Stopped {
                undelivered,
                gave_up,
            } => {
                assert!(undelivered.is_empty(), "undelivered: {undelivered:?}");
                assert!(!gave_up);
                break;
            }
            ClientEvent::Message(m) => panic!("unexpected {m:?}"),
            _ => {}
        }
    }
    within(STEP, "the server's connection to end", server)
        .await
        .unwrap();
    assert_eq!(*received.lock().unwrap(), sent, "delivered again, in order");
}

/// `close` while the server is down: the client keeps trying within the
/// close grace and delivers when the server comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_while_disconnected_delivers_within_the_grace() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut client = ReconnectingClient::spawn(
        ClientBuilder::new(format!("ws://{addr}/r")),
        ReconnectPolicy {
            close_grace: Duration::from_secs(30),
            ..policy()
        },
    );
    client.send("queued while down").unwrap();
    loop {
        if let ClientEvent::ConnectFailed { .. } = next(&mut client, "a failure").await {
            break;
        }
    }
    client.close();
    assert!(client.send("after close").is_err(), "sending after close");
    // Failures go on within the grace; then the server is back.
    loop {
        if let ClientEvent::ConnectFailed { .. } = next(&mut client, "a failure").await {
            break;
        }
    }
    let listener = TcpListener::bind(addr).await.unwrap();
    let received = Arc::new(Mutex::new(Vec::new()));
    let (tcp, _) = within(STEP, "the final attempt", listener.accept())
        .await
        .unwrap();
    let server = tokio::spawn(record(tcp, received.clone()));
    loop {
        if let ClientEvent::Stopped { undelivered, .. } = next(&mut client, "the end").await {
            assert!(undelivered.is_empty(), "undelivered: {undelivered:?}");
            break;
        }
    }
    within(STEP, "the server's connection to end", server)
        .await
        .unwrap();
    assert_eq!(*received.lock().unwrap(), ["queued while down"]);
}

/// A server that accepts and drops every connection at once: the
/// connections do not live, so the backoff keeps growing instead of
/// starting over at every connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_do_not_live_do_not_reset_the_backoff() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        loop {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let _ = upgrade(&mut tcp).await;
            // Dropped: closed without a word.
        }
    });
    let mut client = ReconnectingClient::spawn(
        ClientBuilder::new(format!("ws://{addr}/r")),
        ReconnectPolicy {
            jitter: 0.0,
            ..policy()
        },
    );
    let mut attempts = Vec::new();
    while attempts.len() < 4 {
        if let ClientEvent::Reconnecting { attempt, delay } = next(&mut client, "a retry").await {
            attempts.push((attempt, delay));
        }
    }
    // 50, 100, 200 ms, then the 200 ms cap: each connection opened and
    // closed, and the attempts kept counting.
    let expected = [(1, 50), (2, 100), (3, 200), (4, 200)]
        .map(|(attempt, ms)| (attempt, Duration::from_millis(ms)));
    assert_eq!(attempts, expected);
    server.abort();
}

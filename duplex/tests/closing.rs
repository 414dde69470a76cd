//! Closing in both directions (the code and reason each side sees), a
//! graceful shutdown that sends 1001 and lets `serve()` return, and
//! connections that end promptly once the close handshake is done.

mod common;

use std::time::{Duration, Instant};

use common::*;
use duplex::{CloseCode, CloseFrame, Error, Message, Server, ServerSocket};
use tokio::sync::mpsc;

type CloseReport = (Vec<Message>, CloseCode, Option<CloseFrame>);

#[tokio::test]
async fn client_closes_with_4000_and_the_server_sees_it() {
    let (tx, mut rx) = mpsc::unbounded_channel::<CloseReport>();
    let server = Server::new().route("/c", move |mut ws: ServerSocket, _req| {
        let tx = tx.clone();
        async move {
            let mut seen = Vec::new();
            while let Some(Ok(message)) = ws.recv().await {
                seen.push(message);
            }
            let _ = tx.send((seen, ws.close_code(), ws.close_frame()));
        }
    });
    let running = Running::start(server).await;
    within(TEST, "close 4000", async {
        let mut ws = duplex::connect(&running.url("/c")).await.unwrap();
        ws.send("before closing").await.unwrap();
        ws.close(Some(CloseFrame::new(CloseCode::Other(4000), "bye")))
            .await
            .unwrap();
        // The server echoes the code (RFC 6455 §5.5.1).
        assert_eq!(ws.close_code(), CloseCode::Other(4000));
        let (seen, code, frame) = rx.recv().await.unwrap();
        assert_eq!(code, CloseCode::Other(4000));
        let frame = frame.expect("the server kept the close frame");
        assert_eq!((frame.code, frame.reason.as_str()), (CloseCode::Other(4000), "bye"));
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(seen[0], Message::text("before closing"));
        assert!(
            matches!(&seen[1], Message::Close(Some(f)) if f.code == CloseCode::Other(4000) && f.reason == "bye"),
            "{seen:?}"
        );
        // Nothing can be sent after the close.
        assert!(matches!(ws.send("late").await, Err(Error::Closed)));
    })
    .await;
    running.stop().await;
}

#[tokio::test]
async fn server_closes_with_1001_and_the_client_sees_it() {
    let (tx, mut rx) = mpsc::unbounded_channel::<duplex::Result<()>>();
    let server = Server::new().route("/away", move |mut ws: ServerSocket, _req| {
        let tx = tx.clone();
        async move {
            let result = ws
                .close(Some(CloseFrame::new(CloseCode::Away, "maintenance")))
                .await;
            let _ = tx.send(result);
        }
    });
    let running = Running::start(server).await;
    within(TEST, "close 1001", async {
        let mut ws = duplex::connect(&running.url("/away")).await.unwrap();
        match ws.recv().await {
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(frame.code, CloseCode::Away);
                assert_eq!(frame.reason, "maintenance");
            }
            other => panic!("expected the server's close, got {other:?}"),
        }
        assert!(ws.recv().await.is_none());
        assert_eq!(ws.close_code(), CloseCode::Away);
        assert_eq!(
            ws.close_frame().map(|f| f.reason),
            Some("maintenance".to_string())
        );
        rx.recv()
            .await
            .unwrap()
            .expect("the server's close() completes once the client answers");
    })
    .await;
    running.stop().await;
}

#[tokio::test]
async fn shutdown_sends_1001_and_serve_returns() {
    let running = Running::start(echo_server().shutdown_grace(Duration::from_secs(3))).await;
    let addr = running.addr;
    let mut ws = duplex::connect(&running.url("/echo")).await.unwrap();
    within(TEST, "shutdown", async {
        ws.send("hi").await.unwrap();
        assert_eq!(ws.recv().await.unwrap().unwrap(), Message::text("hi"));
        let started = Instant::now();
        running.handle.shutdown();
        match ws.recv().await {
            Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Away),
            other => panic!("expected close 1001, got {other:?}"),
        }
        assert!(ws.recv().await.is_none());
        assert_eq!(ws.close_code(), CloseCode::Away);
        running.join(Duration::from_secs(5)).await;
        eprintln!("serve() returned {:?} after shutdown()", started.elapsed());
        // The listener is gone.
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    })
    .await;
    drop(ws);
}

/// After the close handshake the server closes TCP (RFC 6455 §7.1.1) and
/// the client, having seen that, closes its side too, even while the
/// application still holds the `WebSocket` (to read `close_code()`, say):
/// the server's connection must not linger until its close timeout, and
/// a shutdown must not wait for its grace period.
#[tokio::test]
async fn connections_end_promptly_while_the_client_keeps_its_socket() {
    let running = Running::start(echo_server().shutdown_grace(Duration::from_secs(3))).await;
    let mut ws = duplex::connect(&running.url("/echo")).await.unwrap();
    within(TEST, "client close", ws.close(None)).await.unwrap();
    let started = Instant::now();
    running.wait_idle(STEP).await;
    let client_close_linger = started.elapsed();

    let mut ws2 = duplex::connect(&running.url("/echo")).await.unwrap();
    let started = Instant::now();
    running.handle.shutdown();
    within(TEST, "close 1001", async {
        while let Some(item) = ws2.recv().await {
            item.unwrap();
        }
    })
    .await;
    assert_eq!(ws2.close_code(), CloseCode::Away);
    running.join(Duration::from_secs(10)).await;
    let shutdown_took = started.elapsed();
    assert!(
        client_close_linger < Duration::from_secs(1) && shutdown_took < Duration::from_secs(1),
        "after a completed close handshake the server's connection lingered {client_close_linger:?} \
         and serve() took {shutdown_took:?} to return after shutdown(); both should be immediate"
    );
    drop((ws, ws2));
}

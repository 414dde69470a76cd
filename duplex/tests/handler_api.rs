//! The `Handler`/`Session` API: a handler that greets, echoes and hears
//! each close once, a session that sends from a task of its own, and a
//! shutdown that closes handler connections with 1001.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use duplex::{CloseCode, CloseFrame, Handler, Message, Server, Session, UpgradeRequest};
use tokio::sync::mpsc;

/// Greets, answers `Echo: <msg>`, and reports its close.
struct Greeter {
    closes: Arc<AtomicUsize>,
    events: mpsc::UnboundedSender<String>,
}

impl Handler for Greeter {
    async fn on_open(&mut self, session: &Session) {
        let _ = self
            .events
            .send(format!("open {}", session.request().path()));
        session.send("Welcome to duplex!").unwrap();
    }

    async fn on_message(&mut self, session: &Session, message: Message) {
        match message {
            Message::Text(text) => session.send(format!("Echo: {text}")).unwrap(),
            Message::Binary(data) => session.send(Message::binary(data)).unwrap(),
            other => panic!("on_message got a control message: {other:?}"),
        }
    }

    async fn on_close(&mut self, _session: &Session, code: CloseCode, reason: &str) {
        self.closes.fetch_add(1, Ordering::SeqCst);
        let _ = self.events.send(format!("close {code} {reason}"));
    }
}

/// A server with a [`Greeter`] on `/greet`, its close counter and its
/// event channel.
async fn start_greeter() -> (Running, Arc<AtomicUsize>, mpsc::UnboundedReceiver<String>) {
    let closes = Arc::new(AtomicUsize::new(0));
    let (tx, events) = mpsc::unbounded_channel();
    let server = {
        let closes = closes.clone();
        Server::new().handler("/greet", move |_req: &UpgradeRequest| Greeter {
            closes: closes.clone(),
            events: tx.clone(),
        })
    };
    (Running::start(server).await, closes, events)
}

/// Connects to `/greet` and checks the open event and the greeting.
async fn connect_greeted(
    running: &Running,
    events: &mut mpsc::UnboundedReceiver<String>,
) -> duplex::ClientSocket {
    let mut ws = duplex::connect(&running.url("/greet")).await.unwrap();
    assert_eq!(events.recv().await.unwrap(), "open /greet");
    assert_eq!(
        ws.recv().await.unwrap().unwrap(),
        Message::text("Welcome to duplex!")
    );
    ws
}

#[tokio::test]
async fn handler_greets_echoes_and_closes_once() {
    let (running, closes, mut events) = start_greeter().await;
    within(TEST, "handler", async {
        let mut ws = connect_greeted(&running, &mut events).await;
        ws.send("Hello, server!").await.unwrap();
        assert_eq!(
            ws.recv().await.unwrap().unwrap(),
            Message::text("Echo: Hello, server!")
        );
        ws.send(vec![1u8, 2, 3]).await.unwrap();
        assert_eq!(
            ws.recv().await.unwrap().unwrap(),
            Message::binary(vec![1u8, 2, 3])
        );
        // A ping is answered by the engine, not by on_message.
        ws.send(Message::Ping("p".into())).await.unwrap();
        assert_eq!(ws.recv().await.unwrap().unwrap(), Message::Pong("p".into()));
        ws.close(Some(CloseFrame::new(CloseCode::Other(4001), "done")))
            .await
            .unwrap();
        assert_eq!(events.recv().await.unwrap(), "close 4001 done");

        // A client that vanishes without a close frame: 1006, once.
        let ws = duplex::connect(&running.url("/greet")).await.unwrap();
        assert_eq!(events.recv().await.unwrap(), "open /greet");
        drop(ws);
        assert_eq!(events.recv().await.unwrap(), "close 1006 ");
    })
    .await;
    running.wait_idle(STEP).await;
    running.stop().await;
    assert_eq!(
        closes.load(Ordering::SeqCst),
        2,
        "on_close once per connection"
    );
    assert!(events.try_recv().is_err(), "no further events");
}

/// Sends from a task of its own, through a clone of the session.
struct Ticker {
    results: mpsc::UnboundedSender<Vec<bool>>,
}

impl Handler for Ticker {
    async fn on_open(&mut self, session: &Session) {
        let session = session.clone();
        let results = self.results.clone();
        tokio::spawn(async move {
            let mut ok = Vec::new();
            for i in 0..3 {
                ok.push(session.send(format!("tick {i}")).is_ok());
                tokio::task::yield_now().await;
            }
            session.close(CloseCode::Other(4002), "ticks done");
            // Refused once the close is queued.
            ok.push(session.send("too late").is_ok());
            let _ = results.send(ok);
        });
    }

    async fn on_message(&mut self, _session: &Session, _message: Message) {}
}

#[tokio::test]
async fn session_sends_from_another_task() {
    let (tx, mut results) = mpsc::unbounded_channel();
    let server = Server::new().handler("/tick", move |_req: &UpgradeRequest| Ticker {
        results: tx.clone(),
    });
    let running = Running::start(server).await;
    within(TEST, "ticks", async {
        let mut ws = duplex::connect(&running.url("/tick")).await.unwrap();
        for i in 0..3 {
            assert_eq!(
                ws.recv().await.unwrap().unwrap(),
                Message::text(format!("tick {i}"))
            );
        }
        match ws.recv().await {
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(frame.code, CloseCode::Other(4002));
                assert_eq!(frame.reason, "ticks done");
            }
            other => panic!("expected close 4002, got {other:?}"),
        }
        assert!(ws.recv().await.is_none());
        assert_eq!(results.recv().await.unwrap(), vec![true, true, true, false]);
    })
    .await;
    running.stop().await;
}

#[tokio::test]
async fn shutdown_closes_handler_connections_with_1001() {
    let (running, closes, mut events) = start_greeter().await;
    within(TEST, "handler shutdown", async {
        let mut ws = connect_greeted(&running, &mut events).await;
        running.handle.shutdown();
        match ws.recv().await {
            Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Away),
            other => panic!("expected close 1001, got {other:?}"),
        }
        while let Some(item) = ws.recv().await {
            item.unwrap();
        }
        drop(ws);
        // The handler hears the client's answer: the echoed 1001.
        let event = events.recv().await.unwrap();
        assert!(event.starts_with("close 1001"), "{event}");
    })
    .await;
    running.join(Duration::from_secs(5)).await;
    assert_eq!(closes.load(Ordering::SeqCst), 1);
}

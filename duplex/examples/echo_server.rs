//! An echo server on the event-handler API, the Rust twin of the classic
//! Java-WebSocket / Node `ws` examples: it greets every client, answers
//! each text message with `Echo: <msg>` and prints open and close events.
//!
//! ```text
//! cargo run --example echo_server -- [ADDR]      (default 127.0.0.1:8080)
//! ```
//!
//! Try it with `cargo run --example echo_client` or
//! `duplex connect ws://127.0.0.1:8080`.

use duplex::{CloseCode, Error, Handler, Message, Server, Session};

/// One per connection: callbacks like `onOpen` / `onMessage` / `onClose`
/// / `onError` in Java-WebSocket.
struct EchoHandler;

impl Handler for EchoHandler {
    async fn on_open(&mut self, session: &Session) {
        let peer = session
            .request()
            .remote_addr()
            .map_or_else(|| "?".to_string(), |a| a.to_string());
        println!("open: connection {} from {peer}", session.id());
        let _ = session.send("Welcome to duplex!");
    }

    async fn on_message(&mut self, session: &Session, message: Message) {
        match message {
            Message::Text(text) => {
                println!("message from {}: {text}", session.id());
                let _ = session.send(format!("Echo: {text}"));
            }
            Message::Binary(data) => {
                println!("binary message from {}: {} bytes", session.id(), data.len());
                let _ = session.send(Message::Binary(data));
            }
            _ => {}
        }
    }

    async fn on_close(&mut self, session: &Session, code: CloseCode, reason: &str) {
        println!("close: connection {} ({code} {reason:?})", session.id());
    }

    async fn on_error(&mut self, session: &Session, error: &Error) {
        eprintln!("error on connection {}: {error}", session.id());
    }
}

#[tokio::main]
async fn main() -> duplex::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".to_string());
    let server = Server::new()
        .handler("/", |_req| EchoHandler)
        .handler("/echo", |_req| EchoHandler)
        .bind(addr.as_str())
        .await?;
    println!("echo server listening on ws://{}", server.local_addr());
    let handle = server.handle();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            println!("shutting down");
            handle.shutdown();
        }
    });
    server.serve().await
}

//! The event-handler API: [`Handler`] with `on_open`, `on_message`,
//! `on_close` and `on_error`, like Java-WebSocket, `javax.websocket` and
//! Node `ws`, and a cloneable [`Session`] to send from anywhere. The loop
//! that calls a handler is in `drive.rs`.

use std::future::Future;

use duplex_proto::{CloseCode, Message};

use crate::error::Error;
use crate::session::Session;

/// Callbacks for one connection. A new handler is made for each
/// connection (by the factory given to
/// [`Server::handler`](crate::Server::handler), or by whoever calls
/// [`Hub::run_handler`](crate::Hub::run_handler)), so it can keep
/// per-connection state in `self`.
///
/// Callbacks run one at a time, in order, on the connection's task. Only
/// text and binary messages reach `on_message`: pings are answered and
/// closes completed by the engine.
///
/// ```no_run
/// use duplex::{Handler, Message, Server, Session};
///
/// struct Echo;
///
/// impl Handler for Echo {
///     async fn on_open(&mut self, session: &Session) {
///         let _ = session.send("Welcome!");
///     }
///     async fn on_message(&mut self, session: &Session, message: Message) {
///         if let Message::Text(text) = message {
///             let _ = session.send(format!("Echo: {text}"));
///         }
///     }
/// }
///
/// # async fn run() -> duplex::Result<()> {
/// Server::new().handler("/", |_req| Echo).bind("127.0.0.1:8080").await?.serve().await
/// # }
/// ```
///
/// The same handler, run over an in-memory pipe by a [`Hub`](crate::Hub):
///
/// ```
/// use std::sync::Arc;
/// use duplex::{Config, Handler, Hub, Message, Role, Session, UpgradeRequest, WebSocket};
///
/// struct Echo;
///
/// impl Handler for Echo {
///     async fn on_open(&mut self, session: &Session) {
///         let _ = session.send("Welcome!");
///     }
///     async fn on_message(&mut self, session: &Session, message: Message) {
///         if let Message::Text(text) = message {
///             let _ = session.send(format!("Echo: {text}"));
///         }
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> duplex::Result<()> {
/// let (client_end, server_end) = tokio::io::duplex(4096);
/// let hub = Arc::new(Hub::new());
/// let server = WebSocket::from_raw(server_end, Role::Server, Config::default());
/// tokio::spawn(async move { hub.run_handler(server, UpgradeRequest::for_path("/"), Echo).await });
///
/// let mut client = WebSocket::from_raw(client_end, Role::Client, Config::default());
/// assert_eq!(client.recv().await.unwrap()?, Message::text("Welcome!"));
/// client.send("hi").await?;
/// assert_eq!(client.recv().await.unwrap()?, Message::text("Echo: hi"));
/// # Ok(()) }
/// ```
pub trait Handler: Send + 'static {
    /// The connection is open.
    fn on_open(&mut self, session: &Session) -> impl Future<Output = ()> + Send {
        let _ = session;
        async {}
    }

    /// A text or binary message arrived.
    fn on_message(
        &mut self,
        session: &Session,
        message: Message,
    ) -> impl Future<Output = ()> + Send;

    /// The connection is over: `code` is the peer's close code (1006 when
    /// it vanished without a close frame). Called exactly once.
    fn on_close(
        &mut self,
        session: &Session,
        code: CloseCode,
        reason: &str,
    ) -> impl Future<Output = ()> + Send {
        let _ = (session, code, reason);
        async {}
    }

    /// Something went wrong (a protocol error by the peer, a socket
    /// error); `on_close` follows.
    fn on_error(&mut self, session: &Session, error: &Error) -> impl Future<Output = ()> + Send {
        let _ = (session, error);
        async {}
    }
}

//! # duplex
//!
//! WebSocket server and client on tokio, built on the sans-IO engine of
//! [`duplex_proto`]: RFC 6455, `permessage-deflate` (RFC 7692) and TLS.
//!
//! - **Client**: [`connect`] or [`ClientBuilder`] (headers, subprotocols,
//!   timeouts, `wss://` with custom roots).
//! - **Stream API**: [`WebSocket`] with `recv` / `send` / `close`, `split`
//!   into halves for different tasks, and `futures` `Stream` / `Sink`.
//! - **Server**: [`Server`] with a path router, an upgrade hook, plain HTTP
//!   routes, TLS, limits and graceful shutdown.
//! - **Event API**: a [`Handler`] with `on_open`, `on_message`, `on_close`
//!   and `on_error`, and a cloneable [`Session`] to send from anywhere, as
//!   in Java-WebSocket, `javax.websocket` and Node `ws`.
//!
//! ```no_run
//! use duplex::{Message, Server};
//!
//! #[tokio::main]
//! async fn main() -> duplex::Result<()> {
//!     let server = Server::new()
//!         .route("/echo", |mut ws, _req| async move {
//!             while let Some(Ok(message)) = ws.recv().await {
//!                 if message.is_data() && ws.send(message).await.is_err() {
//!                     break;
//!                 }
//!             }
//!         })
//!         .bind("127.0.0.1:8080")
//!         .await?;
//!     server.serve().await
//! }
//! ```
#![warn(missing_docs)]

mod buffer_pool;
mod client;
mod error;
mod handler;
#[cfg(unix)]
mod low_water;
mod queue;
#[cfg(feature = "tls")]
mod read_ahead;
pub mod reconnect;
mod request;
pub mod rooms;
pub mod router;
mod server;
mod stream;
#[cfg(feature = "tls")]
pub mod tls;
mod websocket;

pub use client::{connect, ClientBuilder, ClientSocket, Target};
pub use duplex_proto as proto;
pub use duplex_proto::handshake::Headers;
pub use duplex_proto::{
    CloseCode, CloseFrame, Config, Message, MessageRef, Outbox, Role, Utf8Bytes,
};
pub use error::{Error, Result};
pub use handler::{Handler, Session};
pub use queue::{QueueLimits, QueueStats, SlowConsumerPolicy};
#[cfg(feature = "tls")]
pub use read_ahead::ReadAhead;
pub use request::UpgradeRequest;
pub use server::{BoundServer, HttpResponse, Server, ServerHandle, ServerSocket, UpgradeDecision};
pub use stream::MaybeTlsStream;
pub use websocket::{KeepAlive, WebSocket, WsReader, WsWriter, DEFAULT_CLOSE_TIMEOUT};

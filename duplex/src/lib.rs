//! # duplex
//!
//! WebSocket server and client on tokio, built on the sans-IO engine of
//! [`duplex_proto`]: RFC 6455, `permessage-deflate` (RFC 7692) and TLS.
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
//!
//! ## How it fits together
//!
//! ```text
//!  bytes in ──► duplex_proto::Connection ──► messages out      (the engine: sans IO,
//!  bytes out ◄──        (state machine)   ◄── messages in       no sockets, no clocks)
//!                          ▲
//!  WebSocket<S> ───────────┘  any AsyncRead + AsyncWrite: TCP, TLS, an in-memory pipe,
//!     │                       an HTTP framework's upgraded connection; it feeds the
//!     │                       engine, writes what it queues, and executes its close steps
//!     ├── stream API:  recv / send / split / Stream + Sink          (you own the loop)
//!     └── Hub ──► Handler + Session + Rooms                         (callbacks, rooms)
//!          ▲
//!  Server (path router, upgrade hook, TLS, limits, graceful shutdown) or your own acceptor
//! ```
//!
//! The protocol, negotiation included, lives in the engine; this crate
//! executes what the engine decides. A [`Hub`] holds what connections
//! share (settings, rooms, queue limits, keepalive, timeouts, shutdown), so a
//! [`Handler`] works the same whoever accepted the socket.
//!
//! ## Which API to use
//!
//! - **The stream API** ([`WebSocket`]: [`recv`](WebSocket::recv),
//!   [`send`](WebSocket::send), [`split`](WebSocket::split), `futures`
//!   `Stream`/`Sink`): you own the connection's loop. Right for clients,
//!   proxies, echo-like services and anything that sends in step with what
//!   it receives, and for the last bit of speed
//!   ([`lend_buffered`](WebSocket::lend_buffered)).
//! - **The Handler API** ([`Handler`] with `on_open`, `on_message`,
//!   `on_close`, `on_error`, and a cloneable [`Session`]), as in
//!   Java-WebSocket, `javax.websocket` and Node `ws`: the loop is ours.
//!   Right for chats, games and notifications, where messages come from
//!   elsewhere (other members, timers, a backend): [`Session::send`]
//!   never waits, goes through a bounded queue with a slow-consumer policy
//!   ([`QueueLimits`]), and [`Rooms`] relay to many.
//!
//! Both run on duplex's [`Server`] (`route` and `handler`), inside an
//! axum or hyper app (features `axum`, `hyper`), and the Handler API
//! also on any acceptor through [`Hub::run_handler`].
//!
//! ## Cancellation safety
//!
//! Every call keeps the connection consistent at each `.await`:
//!
//! - [`WebSocket::recv`] (and [`WsReader::recv`], and `Stream::poll_next`)
//!   is **cancellation-safe**: use it in `tokio::select!`; a message is
//!   never lost or half-read when the other branch wins (bytes already
//!   read stay in the engine's buffer).
//! - [`WebSocket::send`] and [`WebSocket::flush`] are cancellation-safe in
//!   the sense that a message, once queued, stays queued: if the future is
//!   dropped mid-write, the rest goes out with the next `send`/`flush`.
//! - [`WebSocket::close`] may be dropped too: the close frame is queued
//!   once, and the next `recv` carries on the close handshake.
//!
//! ## Features
//!
//! | feature | default | what |
//! | --- | --- | --- |
//! | `deflate` | on | `permessage-deflate` (RFC 7692), negotiated the way browsers offer it |
//! | `tls` | on | `wss://` for server and client with rustls (the `tls` module, `ReadAhead`) |
//! | `redis` | off | [`backplane::RedisBackplane`]: rooms across processes and machines over Redis (with `tls`, also `rediss://`) |
//! | `hyper` | off | the `hyper` module: WebSocket upgrades inside a hyper 1 server (HTTP/1.1), with duplex's handshake, engine and Handler API |
//! | `axum` | off | the `axum` module: the `WebSocketUpgrade` extractor for axum 0.8, with `on_upgrade` and the Handler API in a shared [`Hub`] (implies `hyper`) |
//!
//! The `duplex` command (crate `duplex-cli`) turns on what it uses.
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
pub mod backplane;
mod budget;
mod client;
mod drive;
mod error;
mod handler;
mod handshake_trace;
mod history;
mod hub;
#[cfg(feature = "hyper")]
#[cfg_attr(docsrs, doc(cfg(feature = "hyper")))]
pub mod hyper;
mod io;
mod keepalive;
pub mod presence;
pub mod proxy;
mod queue;
mod read_buffer;
pub mod reconnect;
mod redirect;
mod rejection;
mod relay;
mod request;
mod rooms;
pub mod router;
mod server;
mod session;
mod signals;
mod split;
mod timeouts;
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub mod tls;
mod transport;
mod warn_limit;
mod websocket;

pub use budget::{MemoryBudget, DEFAULT_MEMORY_BUDGET};
pub use client::{connect, ClientBuilder, ClientSocket, Target};
pub use duplex_proto as proto;
pub use duplex_proto::handshake::Headers;
pub use duplex_proto::{
    CloseCode, CloseFrame, Config, Message, MessageRef, Outbox, Role, State, Utf8Bytes,
};
pub use error::{Error, Failure, Result};
pub use handler::Handler;
pub use handshake_trace::HandshakeStep;
pub use hub::{Attached, Hub};
pub use keepalive::KeepAlive;
pub use queue::{QueueLimits, QueueStats, SlowConsumerPolicy};
pub use relay::Relay;
pub use request::UpgradeRequest;
pub use rooms::Rooms;
pub use server::{
    BoundServer, HttpRequest, HttpResponse, Server, ServerHandle, ServerSocket, UpgradeDecision,
    DEFAULT_MAX_REQUEST_BODY,
};
pub use session::Session;
pub use split::{WsReader, WsWriter};
pub use timeouts::{TimeoutStats, Timeouts, DEFAULT_MESSAGE_TIMEOUT, DEFAULT_WRITE_TIMEOUT};
pub use transport::MaybeTlsStream;
#[cfg(feature = "tls")]
pub use transport::ReadAhead;
pub use websocket::{WebSocket, DEFAULT_CLOSE_TIMEOUT};

//! # duplex-proto
//!
//! The WebSocket protocol (RFC 6455, and RFC 7692 `permessage-deflate`) as a
//! sans-IO state machine: no sockets, no runtime, no clocks. Feed it the
//! bytes you read, take out messages; hand it messages, take out the bytes
//! to write. Everything else (tokio, TLS, servers) lives in the `duplex`
//! crate, which is built on this one.
//!
//! The engine is split one concept per module:
//!
//! | module | what |
//! | --- | --- |
//! | [`handshake`] | the opening handshake, both roles (HTTP/1.1 Upgrade) |
//! | [`frame`] | the frame header codec (§5.2) |
//! | [`mask`] | client-to-server masking (§5.3) |
//! | [`utf8`] | incremental, fail-fast UTF-8 validation |
//! | [`close`] | close codes and the close frame payload (§7.4) |
//! | [`message`] | the [`Message`] type handed to and from the user |
//! | [`connection`] | the per-connection state machine |
//! | [`extensions`] | parsing `Sec-WebSocket-Extensions` |
//! | `deflate` | `permessage-deflate` (feature `deflate`) |
//!
//! ```
//! use duplex_proto::{Connection, Config, Message, Role};
//!
//! // A server-side connection receives one masked "Hello" frame (RFC 6455 §5.7).
//! let mut conn = Connection::new(Role::Server, Config::default());
//! conn.receive(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
//! match conn.next_message().unwrap() {
//!     Some(Message::Text(text)) => assert_eq!(text.as_str(), "Hello"),
//!     other => panic!("unexpected {other:?}"),
//! }
//! // Answer it; the output is an unmasked server frame.
//! conn.send(Message::text("Hi")).unwrap();
//! assert_eq!(conn.take_output(), vec![0x81, 0x02, b'H', b'i']);
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod close;
pub mod config;
pub mod connection;
#[cfg(feature = "deflate")]
pub mod deflate;
pub mod error;
pub mod extensions;
pub mod frame;
pub mod handshake;
pub mod mask;
pub mod message;
pub mod outbox;
pub mod output;
pub mod utf8;

pub use close::{CloseCode, CloseFrame};
pub use config::Config;
pub use connection::{Connection, Role};
pub use error::{Error, HandshakeError, ProtocolError, SendError};
pub use message::{Message, MessageRef, Utf8Bytes};
pub use outbox::Outbox;

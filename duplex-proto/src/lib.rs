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
//! | [`handshake`] | the opening handshake, both roles, with subprotocol and extension negotiation |
//! | [`connection`] | the per-connection state machine ([`Connection`]) |
//! | [`lifecycle`] | its [`State`] from open to closed, and who closes the transport first |
//! | [`message`] | the [`Message`] type handed to and from the user |
//! | [`close`] | close codes and the close frame payload (§7.4) |
//! | [`extensions`] | parsing `Sec-WebSocket-Extensions` |
//! | `deflate` | `permessage-deflate` (feature `deflate`) |
//!
//! Internally, `frame` is the frame header codec (§5.2), `mask` client
//! masking (§5.3), `utf8` incremental, fail-fast UTF-8 validation, and
//! `write_queue` the bytes waiting to be written.
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
//!
//! ## Features
//!
//! | feature | default | what |
//! | --- | --- | --- |
//! | `deflate` | on | `permessage-deflate` (RFC 7692), with zlib-rs |
#![warn(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod close;
pub mod config;
pub mod connection;
#[cfg(feature = "deflate")]
#[cfg_attr(docsrs, doc(cfg(feature = "deflate")))]
pub mod deflate;
pub mod error;
pub mod extensions;
mod frame;
pub mod handshake;
mod incoming;
pub mod lifecycle;
mod mask;
pub mod message;
pub mod outbox;
mod role;
mod utf8;
mod write_queue;

pub use close::{CloseCode, CloseFrame};
pub use config::Config;
pub use connection::Connection;
pub use error::{HandshakeError, ProtocolError, SendError};
pub use lifecycle::{Eof, State, TransportStep};
pub use message::{Message, MessageRef, Utf8Bytes};
pub use outbox::Outbox;
pub use role::Role;
pub use write_queue::WriteQueue;

/// Internals the benchmarks measure (the frame codec, masking, UTF-8
/// validation). Not part of the API: hidden, and free to change.
#[doc(hidden)]
pub mod bench {
    pub use crate::frame::{FrameHeader, OpCode};
    pub use crate::mask::apply_mask;
    pub use crate::utf8::Utf8Validator;
}

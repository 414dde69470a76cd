//! `permessage-deflate` (RFC 7692): negotiation and the per-message codec.
//!
//! Two halves:
//!
//! - **Negotiation.** [`DeflateConfig`] holds what the user wants. A client
//!   sends [`DeflateConfig::client_offer`] and checks the server's answer
//!   with [`DeflateConfig::client_accept`]; a server picks an offer with
//!   [`DeflateConfig::server_negotiate`] and answers with
//!   [`DeflateParams::to_header_value`]. Both produce the agreed
//!   [`DeflateParams`].
//! - **Codec.** [`PerMessageDeflate`] compresses outgoing message payloads
//!   and decompresses incoming ones, with a hard limit on the decompressed
//!   size so that a few kilobytes on the wire cannot become gigabytes in
//!   memory.
//!
//! ```
//! use bytes::BytesMut;
//! use duplex_proto::deflate::{DeflateConfig, PerMessageDeflate};
//! use duplex_proto::Role;
//! use duplex_proto::extensions::parse_extensions;
//!
//! let config = DeflateConfig::default();
//! // The server reads the browser's offer and agrees.
//! let offers = parse_extensions(["permessage-deflate; client_max_window_bits"]).unwrap();
//! let params = config.server_negotiate(&offers).unwrap().expect("accepted");
//! // The client checks the server's answer.
//! let answer = parse_extensions([params.to_header_value().as_str()]).unwrap();
//! assert_eq!(config.client_accept(&answer).unwrap(), Some(params));
//!
//! let mut server = PerMessageDeflate::new(Role::Server, params, &config);
//! let mut client = PerMessageDeflate::new(Role::Client, params, &config);
//! let mut wire = BytesMut::new();
//! server.compress(b"Hello, Hello, Hello!", &mut wire);
//! let mut message = BytesMut::new();
//! client.decompress(&wire, true, &mut message, 1 << 20).unwrap();
//! assert_eq!(&message[..], b"Hello, Hello, Hello!");
//! ```
//!
//! ## Window sizes and zlib
//!
//! RFC 7692 allows LZ77 windows of 2^8 to 2^15 bytes, but zlib (and so
//! zlib-rs) cannot compress raw deflate with a 2^8 window. When the peer
//! asks our compressor for 8 bits we compress with 9: zlib never emits a
//! distance longer than the window minus 262 bytes, which for a 512-byte
//! window is 250, so the stream is valid for a 256-byte window and we can
//! honestly agree to 8 (a test checks the distances). Our decompressor
//! always uses the full 2^15 window, which decodes whatever window the peer
//! compressed with. A user's own limits ([`DeflateConfig`]) stay in 9..=15.

mod codec;
mod negotiation;
mod pool;

pub use codec::{DeflateError, PerMessageDeflate};
pub use negotiation::{DeflateConfig, DeflateMemory, DeflateNegotiationError, DeflateParams};

/// The extension's registered name (RFC 7692 §7).
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// The largest (and default) window, 2^15 = 32 KiB.
const MAX_WINDOW_BITS: u8 = 15;
/// The smallest window RFC 7692 allows.
const MIN_RFC_WINDOW_BITS: u8 = 8;
/// The smallest window zlib compresses raw deflate with.
const MIN_ZLIB_WINDOW_BITS: u8 = 9;

#[cfg(test)]
mod tests;

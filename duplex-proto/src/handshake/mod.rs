//! The opening handshake (RFC 6455 §4): an HTTP/1.1 `GET` with
//! `Upgrade: websocket`, answered by `101 Switching Protocols`.
//!
//! - [`server`]: parse and validate a request, then accept it
//!   ([`server::accept`]: the 101 response and a ready [`Connection`]) or
//!   reject it with an HTTP status;
//! - [`client`]: build a request, check the server's response
//!   ([`client::ClientRequest::accept`]: a ready [`Connection`]);
//! - [`Headers`]: the header list both sides read, and [`check_header`],
//!   which every header the application adds passes before it is written
//!   (no control characters, names that are tokens: no header injection);
//! - [`AllowedOrigins`]: an `Origin` allow-list (403 for other pages);
//! - [`choose_protocol`]: the subprotocol agreed from the client's offer.
//!
//! Subprotocol and extension negotiation happen inside these calls: the
//! connection they return already has `permessage-deflate` on when it was
//! agreed, so the I/O layer above decides nothing about the protocol.
//! Both sides work on byte buffers and return how many bytes the handshake
//! used, so that frames that arrive in the same read are not lost.
//!
//! [`Connection`]: crate::Connection

pub mod client;
mod headers;
mod negotiate;
mod origin;
mod parts;
pub mod server;
mod subprotocol;

pub use headers::{check_header, Headers, InvalidHeader};
pub use origin::AllowedOrigins;
pub use subprotocol::{choose_protocol, Preference};

use base64::Engine;
use sha1::{Digest, Sha1};

/// The GUID that RFC 6455 §1.3 appends to the key.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key`.
///
/// ```
/// // RFC 6455 §1.3.
/// assert_eq!(
///     duplex_proto::handshake::accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
///     "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
/// );
/// ```
pub fn accept_key(key: &str) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(key.as_bytes());
    sha1.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha1.finalize())
}

/// Limits on what a peer may send before the upgrade.
#[derive(Debug, Clone, Copy)]
pub struct HandshakeLimits {
    /// The largest request or response head, in bytes (default 16 KiB).
    pub max_size: usize,
    /// The most header lines (default 64).
    pub max_headers: usize,
}

impl Default for HandshakeLimits {
    fn default() -> Self {
        HandshakeLimits {
            max_size: 16 * 1024,
            max_headers: 64,
        }
    }
}

/// Room for httparse's header lines: up to 64 on the stack (no allocation
/// per handshake), more on the heap only if a limit above 64 is set.
pub(crate) struct HeaderSlots<'a> {
    stack: [httparse::Header<'a>; 64],
    heap: Vec<httparse::Header<'a>>,
    len: usize,
}

impl<'a> HeaderSlots<'a> {
    pub(crate) fn new(len: usize) -> Self {
        HeaderSlots {
            stack: [httparse::EMPTY_HEADER; 64],
            heap: if len > 64 {
                vec![httparse::EMPTY_HEADER; len]
            } else {
                Vec::new()
            },
            len,
        }
    }

    pub(crate) fn as_mut(&mut self) -> &mut [httparse::Header<'a>] {
        if self.len <= self.stack.len() {
            &mut self.stack[..self.len]
        } else {
            &mut self.heap
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_sample_key() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}

//! Watching a client's opening handshake: [`HandshakeStep`], given to the
//! callback of [`ClientBuilder::inspect_handshake`](crate::ClientBuilder::inspect_handshake).
//!
//! A tool such as `duplex connect -v` shows what went over the wire, like
//! `curl -v`: the request head as sent, each response head, and every
//! redirect followed, for refused handshakes too (which is when one wants
//! to see them most).

use std::sync::Arc;

use duplex_proto::handshake::Headers;

/// One step of a client's opening handshake, in the order they happen; a
/// redirect repeats `Request` and `Response` for the new URL.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum HandshakeStep<'a> {
    /// The request head was written.
    Request {
        /// The URL it is for.
        url: &'a str,
        /// The head as written (CRLF line ends, blank line included).
        head: &'a str,
    },
    /// The server's response head was read.
    Response {
        /// The HTTP status.
        status: u16,
        /// The reason phrase.
        reason: &'a str,
        /// The response headers.
        headers: &'a Headers,
    },
    /// A redirect is being followed.
    Redirect {
        /// The redirect's status (301, 302, 307 or 308).
        status: u16,
        /// Where it leads (an absolute `ws://` or `wss://` URL).
        to: &'a str,
    },
}

/// The callback, shared by clones of a builder.
#[derive(Clone)]
pub(crate) struct Inspector(pub(crate) Arc<dyn Fn(HandshakeStep<'_>) + Send + Sync>);

impl Inspector {
    /// Tells the callback about `step`.
    pub(crate) fn see(&self, step: HandshakeStep<'_>) {
        (self.0)(step)
    }
}

impl std::fmt::Debug for Inspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Inspector(..)")
    }
}

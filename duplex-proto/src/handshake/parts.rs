//! The server's handshake answers as header lists, for an HTTP framework
//! (hyper, axum) that parses requests and writes responses its own way:
//! the same decisions as [`accept`](super::server::accept) and
//! [`reject_response`](super::server::reject_response), without the
//! HTTP/1.1 bytes. duplex's own server writes these same lists, so an
//! adapter answers exactly as it does.

use std::sync::Arc;

use super::headers::{wire_value, InvalidHeader};
use super::server::{negotiate, validate_request, Choice, Request};
use super::{accept_key, Headers};
use crate::config::Config;
use crate::connection::Connection;
use crate::error::HandshakeError;

/// An accepted upgrade as parts: the headers of the
/// `101 Switching Protocols` response, in order, and the engine.
#[derive(Debug)]
pub struct AcceptedParts {
    /// `Upgrade`, `Connection`, `Sec-WebSocket-Accept`, the agreed
    /// `Sec-WebSocket-Protocol` and `Sec-WebSocket-Extensions`, then the
    /// choice's extra headers. Every line passed
    /// [`check_header`](super::check_header); values are as they go on
    /// the wire (without surrounding spaces).
    pub headers: Headers,
    /// The connection, in the open state, with every agreed extension on.
    pub connection: Connection,
    /// The agreed subprotocol.
    pub protocol: Option<String>,
}

/// Accepts an upgrade like [`accept`](super::server::accept) (validation,
/// subprotocol and extension negotiation, the choice's headers checked:
/// 500 when one cannot be written) and returns the 101's headers instead
/// of its bytes.
///
/// ```
/// use duplex_proto::handshake::{server, Headers};
/// use duplex_proto::Config;
///
/// let mut headers = Headers::default();
/// for (name, value) in [
///     ("Host", "example.com"),
///     ("Upgrade", "websocket"),
///     ("Connection", "Upgrade"),
///     ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
///     ("Sec-WebSocket-Version", "13"),
/// ] {
///     headers.push(name, value);
/// }
/// let request = server::Request::new("GET", "/chat", headers);
/// let parts = server::accept_parts(&request, Config::default().into(), server::Choice::default())
///     .unwrap();
/// assert_eq!(parts.headers.get("sec-websocket-accept"), Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
/// ```
pub fn accept_parts(
    request: &Request,
    config: Arc<Config>,
    choice: Choice,
) -> Result<AcceptedParts, HandshakeError> {
    validate_request(request)?;
    check_choice(&choice)
        .map_err(|e| HandshakeError::new(500, format!("invalid response header: {e}")))?;
    let extra = choice.headers.clone();
    let negotiated = negotiate(request.headers(), config, choice)?;
    let key = request
        .headers()
        .get("sec-websocket-key")
        .unwrap_or("")
        .trim();
    let mut headers = Headers::default();
    headers.push("Upgrade", "websocket");
    headers.push("Connection", "Upgrade");
    headers.push("Sec-WebSocket-Accept", accept_key(key));
    if let Some(protocol) = &negotiated.protocol {
        headers.push("Sec-WebSocket-Protocol", wire_value(protocol));
    }
    if let Some(extensions) = &negotiated.extensions {
        // Built by the engine (`DeflateParams::to_header_value`): tokens only.
        headers.push("Sec-WebSocket-Extensions", extensions.as_str());
    }
    for (name, value) in extra.iter() {
        headers.push(name, wire_value(value));
    }
    Ok(AcceptedParts {
        headers,
        connection: negotiated.connection,
        protocol: negotiated.protocol,
    })
}

/// Checks what the application chose before it goes into the response.
fn check_choice(choice: &Choice) -> Result<(), InvalidHeader> {
    if let Some(protocol) = &choice.protocol {
        // Chosen among the request's tokens, which a request built by hand
        // ([`Request::new`]) may fill with anything.
        super::headers::check_value("Sec-WebSocket-Protocol", protocol)?;
    }
    choice.headers.validate()
}

/// A refused handshake as parts: what
/// [`reject_response`](super::server::reject_response) writes, without
/// `Content-Length` and `Connection: close`, which belong to the
/// framework's own framing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedParts {
    /// The HTTP status (400 for an error without one).
    pub status: u16,
    /// `Content-Type`, then what the status calls for: `Upgrade:
    /// websocket` and `Sec-WebSocket-Version: 13` with a 426 (RFC 6455
    /// §4.4), `Allow: GET` with a 405.
    pub headers: Headers,
    /// The text body saying why, ending in a newline.
    pub body: String,
}

/// The parts of the response that refuses a handshake with `error`.
///
/// ```
/// use duplex_proto::handshake::server;
/// use duplex_proto::HandshakeError;
///
/// let parts = server::reject_parts(&HandshakeError::new(426, "only version 13"));
/// assert_eq!(parts.status, 426);
/// assert_eq!(parts.headers.get("sec-websocket-version"), Some("13"));
/// assert_eq!(parts.body, "only version 13\n");
/// ```
pub fn reject_parts(error: &HandshakeError) -> RejectedParts {
    let status = error.status().unwrap_or(400);
    let mut headers = Headers::default();
    headers.push("Content-Type", "text/plain; charset=utf-8");
    push_status_headers(&mut headers, status, &Headers::default());
    RejectedParts {
        status,
        headers,
        body: format!("{}\n", error.message()),
    }
}

/// Adds the headers a plain response with `status` must carry, unless
/// `extra` (the application's own headers) already says it.
pub(crate) fn push_status_headers(headers: &mut Headers, status: u16, extra: &Headers) {
    if status == 426 {
        headers.push("Upgrade", "websocket");
        headers.push("Sec-WebSocket-Version", "13");
    }
    // A WebSocket endpoint allows GET; a route that allows other methods
    // says so with its own `Allow`.
    if status == 405 && extra.get("allow").is_none() {
        headers.push("Allow", "GET");
    }
}

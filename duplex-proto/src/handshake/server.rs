//! The server side of the opening handshake.
//!
//! ```
//! use duplex_proto::handshake::{server, HandshakeLimits};
//! use duplex_proto::Config;
//!
//! let raw = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
//!     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
//!     Sec-WebSocket-Version: 13\r\n\r\n";
//! let (request, used) = server::parse_request(raw, &HandshakeLimits::default()).unwrap().unwrap();
//! assert_eq!(used, raw.len());
//! // Validate, negotiate subprotocol and extensions, and get the engine.
//! let accepted = server::accept(&request, Config::default().into(), server::Choice::default())
//!     .unwrap();
//! let response = String::from_utf8(accepted.response).unwrap();
//! assert!(response.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
//! assert!(response.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
//! assert_eq!(accepted.connection.role(), duplex_proto::Role::Server);
//! ```
//!
//! An HTTP framework that parses requests itself (hyper, axum) builds a
//! [`Request`] from its own request type ([`Request::new`],
//! [`Request::with_minor_version`]) and takes the same decisions as
//! header lists: [`accept_parts`] (the 101's headers and the engine) and
//! [`reject_parts`] (status, headers and body of a refusal); [`accept`]
//! and [`reject_response`] are those plus the HTTP/1.1 bytes.

use std::fmt::Write as _;
use std::sync::Arc;

use base64::Engine;

use super::headers::{check_value, wire_value};
use super::negotiate::server_extensions;
use super::parts::push_status_headers;
pub use super::parts::{accept_parts, reject_parts, AcceptedParts, RejectedParts};
use super::{HandshakeLimits, HeaderSlots, Headers};
use crate::config::Config;
use crate::connection::Connection;
use crate::error::HandshakeError;
use crate::role::Role;

/// What the application decided about an upgrade it accepts.
#[derive(Debug, Clone, Default)]
pub struct Choice {
    /// The subprotocol chosen from the client's offer (`None`: none).
    pub protocol: Option<String>,
    /// Extra response headers (e.g. `Set-Cookie`). Each must pass
    /// [`check_header`](super::check_header), or [`accept`] fails with 500.
    pub headers: Headers,
}

/// What the server and the client agreed on, with the engine that speaks
/// it.
#[derive(Debug)]
pub struct Negotiated {
    /// The connection, in the open state, with every agreed extension on.
    pub connection: Connection,
    /// The subprotocol, echoed in `Sec-WebSocket-Protocol`.
    pub protocol: Option<String>,
    /// The `Sec-WebSocket-Extensions` value to answer with, if any.
    pub extensions: Option<String>,
}

/// An accepted upgrade: the response head to write, and the engine.
#[derive(Debug)]
pub struct Accepted {
    /// The `101 Switching Protocols` response head.
    pub response: Vec<u8>,
    /// The connection, in the open state, with every agreed extension on.
    pub connection: Connection,
    /// The agreed subprotocol.
    pub protocol: Option<String>,
}

/// Accepts an upgrade: validates the request ([`validate_request`]),
/// negotiates subprotocol and extensions ([`negotiate`]) and builds the
/// 101 response with the choice's extra headers.
///
/// A choice that cannot be written as given (an extra header whose name
/// is not a token or whose value holds a control character, see
/// [`check_header`](super::check_header)) fails with 500: it is the
/// application's bug, and writing it would let it forge or break headers.
pub fn accept(
    request: &Request,
    config: Arc<Config>,
    choice: Choice,
) -> Result<Accepted, HandshakeError> {
    let parts = accept_parts(request, config, choice)?;
    let mut head = String::with_capacity(256);
    head.push_str("HTTP/1.1 101 Switching Protocols\r\n");
    write_headers(&mut head, &parts.headers);
    head.push_str("\r\n");
    Ok(Accepted {
        response: head.into_bytes(),
        connection: parts.connection,
        protocol: parts.protocol,
    })
}

/// Agrees on the subprotocol and the extensions of a request with these
/// `headers` and makes the server's engine for it. The chosen subprotocol
/// must be one the client offered (500 otherwise: a server bug); a
/// malformed `Sec-WebSocket-Extensions` is refused with 400; offers that
/// `config` does not allow are declined, as RFC 7692 asks.
pub fn negotiate(
    headers: &Headers,
    config: Arc<Config>,
    choice: Choice,
) -> Result<Negotiated, HandshakeError> {
    if let Some(protocol) = &choice.protocol {
        if !headers
            .tokens("sec-websocket-protocol")
            .any(|p| p == protocol)
        {
            return Err(HandshakeError::new(
                500,
                "the server chose a subprotocol the client did not offer",
            ));
        }
    }
    let mut connection = Connection::with_shared_config(Role::Server, config.clone());
    let extensions = server_extensions(
        headers.get_all("sec-websocket-extensions"),
        &config,
        &mut connection,
    )?;
    Ok(Negotiated {
        connection,
        protocol: choice.protocol,
        extensions,
    })
}

/// A parsed HTTP request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    method: String,
    target: String,
    minor_version: u8,
    headers: Headers,
}

impl Request {
    /// A request head built from its parts (HTTP/1.1), for code that
    /// parsed the request itself (an HTTP framework) or tests.
    pub fn new(method: impl Into<String>, target: impl Into<String>, headers: Headers) -> Request {
        Request {
            method: method.into(),
            target: target.into(),
            minor_version: 1,
            headers,
        }
    }

    /// The same request as HTTP/1.`minor` (a framework that parsed an
    /// HTTP/1.0 request says so: [`validate_request`] refuses it with 400).
    pub fn with_minor_version(mut self, minor: u8) -> Request {
        self.minor_version = minor;
        self
    }

    /// The HTTP method (`GET` for a WebSocket upgrade).
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The request target as sent: path and query.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// The query string after `?`, if any.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    /// The headers, in order.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// Whether this asks for a WebSocket upgrade at all (as opposed to a
    /// plain HTTP request for a page).
    pub fn is_upgrade(&self) -> bool {
        self.headers.get("upgrade").is_some()
    }

    /// The subprotocols the client offers, in its order of preference.
    pub fn protocols(&self) -> Vec<&str> {
        self.headers.tokens("sec-websocket-protocol").collect()
    }

    /// The `Origin` header, which browsers always send.
    pub fn origin(&self) -> Option<&str> {
        self.headers.get("origin")
    }
}

/// Parses a request head from the start of `buf`. Returns the request and
/// the length of its head, or `Ok(None)` if more bytes are needed.
///
/// A head longer than `limits.max_size` or with more than
/// `limits.max_headers` lines is refused with 431; a malformed one with 400.
pub fn parse_request(
    buf: &[u8],
    limits: &HandshakeLimits,
) -> Result<Option<(Request, usize)>, HandshakeError> {
    let mut slots = HeaderSlots::new(limits.max_headers);
    let raw = slots.as_mut();
    let mut req = httparse::Request::new(raw);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => {
            if len > limits.max_size {
                return Err(too_large());
            }
            let request = Request {
                method: req.method.unwrap_or_default().to_string(),
                target: req.path.unwrap_or_default().to_string(),
                minor_version: req.version.unwrap_or(0),
                headers: Headers::from_httparse(req.headers),
            };
            Ok(Some((request, len)))
        }
        Ok(httparse::Status::Partial) if buf.len() >= limits.max_size => Err(too_large()),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(HandshakeError::new(
            431,
            format!("more than {} header lines", limits.max_headers),
        )),
        Err(e) => Err(HandshakeError::new(
            400,
            format!("malformed HTTP request: {e}"),
        )),
    }
}

fn too_large() -> HandshakeError {
    HandshakeError::new(431, "request headers too large")
}

/// Checks everything RFC 6455 §4.2.1 asks of an upgrade request.
pub fn validate_request(request: &Request) -> Result<(), HandshakeError> {
    let h = &request.headers;
    if request.method != "GET" {
        return Err(HandshakeError::new(405, "a WebSocket upgrade must use GET"));
    }
    if request.minor_version != 1 {
        return Err(HandshakeError::new(
            400,
            "a WebSocket upgrade needs HTTP/1.1",
        ));
    }
    if h.count("host") != 1 {
        return Err(HandshakeError::new(
            400,
            "exactly one Host header is required",
        ));
    }
    if h.get("upgrade").is_none() {
        return Err(HandshakeError::new(
            426,
            "this endpoint speaks WebSocket only",
        ));
    }
    if !h.has_token("upgrade", "websocket") {
        return Err(HandshakeError::new(
            400,
            "the Upgrade header must name websocket",
        ));
    }
    if !h.has_token("connection", "upgrade") {
        return Err(HandshakeError::new(
            400,
            "the Connection header must contain upgrade",
        ));
    }
    if h.get("sec-websocket-version").map(str::trim) != Some("13")
        || h.count("sec-websocket-version") != 1
    {
        return Err(HandshakeError::new(
            426,
            "only WebSocket version 13 is supported",
        ));
    }
    let key = match (h.get("sec-websocket-key"), h.count("sec-websocket-key")) {
        (Some(key), 1) => key.trim(),
        _ => {
            return Err(HandshakeError::new(
                400,
                "exactly one Sec-WebSocket-Key is required",
            ))
        }
    };
    match base64::engine::general_purpose::STANDARD.decode(key) {
        Ok(nonce) if nonce.len() == 16 => Ok(()),
        _ => Err(HandshakeError::new(
            400,
            "Sec-WebSocket-Key must be base64 of 16 bytes",
        )),
    }
}

/// A plain HTTP response that ends the connection: a rejected handshake
/// (with a short text body saying why) or an ordinary page.
///
/// A 426 carries `Sec-WebSocket-Version: 13` and `Upgrade: websocket`, as
/// RFC 6455 §4.4 asks.
///
/// What cannot be written as given (a status outside 100..=999, a content
/// type or extra header that fails [`check_header`](super::check_header))
/// is answered with a plain 500 saying which, instead of the response: the
/// application's bug is reported, and never forges or breaks headers.
pub fn http_response(status: u16, content_type: &str, body: &[u8], extra: &Headers) -> Vec<u8> {
    match check_response(status, content_type, extra) {
        Ok(()) => response_head(status, content_type, body, extra),
        Err(why) => {
            let body = format!("invalid response: {why}\n");
            response_head(
                500,
                "text/plain; charset=utf-8",
                body.as_bytes(),
                &Headers::default(),
            )
        }
    }
}

/// Checks the parts of a plain response that the application supplies.
fn check_response(status: u16, content_type: &str, extra: &Headers) -> Result<(), String> {
    if !(100..=999).contains(&status) {
        return Err(format!("status {status} is not three digits"));
    }
    check_value("Content-Type", content_type).map_err(|e| e.to_string())?;
    extra.validate().map_err(|e| e.to_string())
}

/// The response of [`http_response`], from checked parts.
fn response_head(status: u16, content_type: &str, body: &[u8], extra: &Headers) -> Vec<u8> {
    let mut head = String::with_capacity(256);
    let _ = write!(head, "HTTP/1.1 {status} {}\r\n", reason_phrase(status));
    let _ = write!(head, "Content-Type: {}\r\n", wire_value(content_type));
    let _ = write!(head, "Content-Length: {}\r\n", body.len());
    head.push_str("Connection: close\r\n");
    let mut status_headers = Headers::default();
    push_status_headers(&mut status_headers, status, extra);
    write_headers(&mut head, &status_headers);
    write_headers(&mut head, extra);
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

/// The response that rejects a handshake with `error`'s status and message.
pub fn reject_response(error: &HandshakeError) -> Vec<u8> {
    let body = format!("{}\n", error.message());
    http_response(
        error.status().unwrap_or(400),
        "text/plain; charset=utf-8",
        body.as_bytes(),
        &Headers::default(),
    )
}

/// Writes checked header lines ([`Headers::validate`]).
fn write_headers(head: &mut String, headers: &Headers) {
    for (name, value) in headers.iter() {
        let _ = write!(head, "{name}: {}\r\n", wire_value(value));
    }
}

/// The standard reason phrase of the statuses a WebSocket server uses.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str =
        "GET /chat?room=1 HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
        Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n\
        Sec-WebSocket-Version: 13\r\n\r\n";

    fn parse(raw: &str) -> Request {
        parse_request(raw.as_bytes(), &HandshakeLimits::default())
            .unwrap()
            .unwrap()
            .0
    }

    fn status_of(raw: &str) -> u16 {
        match parse_request(raw.as_bytes(), &HandshakeLimits::default()) {
            Err(e) => e.status().unwrap(),
            Ok(Some((req, _))) => validate_request(&req)
                .err()
                .map_or(101, |e| e.status().unwrap()),
            Ok(None) => 0,
        }
    }

    #[test]
    fn rfc_example_request() {
        let req = parse(GOOD);
        validate_request(&req).unwrap();
        assert_eq!(req.path(), "/chat");
        assert_eq!(req.query(), Some("room=1"));
        assert_eq!(req.protocols(), vec!["chat", "superchat"]);
        assert_eq!(req.origin(), Some("http://example.com"));
        let choice = Choice {
            protocol: Some("chat".into()),
            headers: Headers::default(),
        };
        let accepted = accept(&req, Config::default().into(), choice.clone()).unwrap();
        let resp = String::from_utf8(accepted.response).unwrap();
        assert_eq!(
            resp,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
            Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
            Sec-WebSocket-Protocol: chat\r\n\r\n"
        );
        // The parts are the same lines.
        let parts = accept_parts(&req, Config::default().into(), choice).unwrap();
        let lines: String = parts
            .headers
            .iter()
            .map(|(n, v)| format!("{n}: {v}\r\n"))
            .collect();
        assert_eq!(
            resp,
            format!("HTTP/1.1 101 Switching Protocols\r\n{lines}\r\n")
        );
    }

    #[test]
    fn every_prefix_is_incomplete_and_extra_bytes_are_not_consumed() {
        for cut in 0..GOOD.len() {
            assert_eq!(
                parse_request(&GOOD.as_bytes()[..cut], &HandshakeLimits::default()),
                Ok(None)
            );
        }
        let mut with_frame = GOOD.as_bytes().to_vec();
        with_frame.extend_from_slice(&[0x81, 0x80, 1, 2, 3, 4]);
        let (_, used) = parse_request(&with_frame, &HandshakeLimits::default())
            .unwrap()
            .unwrap();
        assert_eq!(used, GOOD.len());
    }

    #[test]
    fn bad_requests_get_the_right_status() {
        assert_eq!(status_of(&GOOD.replace("GET", "POST")), 405);
        assert_eq!(status_of(&GOOD.replace("HTTP/1.1", "HTTP/1.0")), 400);
        assert_eq!(
            status_of(&GOOD.replace("Host: server.example.com\r\n", "")),
            400
        );
        assert_eq!(status_of(&GOOD.replace("Upgrade: websocket\r\n", "")), 426);
        assert_eq!(
            status_of(&GOOD.replace("Upgrade: websocket", "Upgrade: h2c")),
            400
        );
        assert_eq!(
            status_of(&GOOD.replace("keep-alive, Upgrade", "keep-alive")),
            400
        );
        assert_eq!(status_of(&GOOD.replace("Version: 13", "Version: 8")), 426);
        assert_eq!(
            status_of(&GOOD.replace("Sec-WebSocket-Version: 13\r\n", "")),
            426
        );
        assert_eq!(
            status_of(&GOOD.replace("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ=")),
            400
        );
        assert_eq!(
            status_of(&GOOD.replace("dGhlIHNhbXBsZSBub25jZQ==", "!!!")),
            400
        );
        assert_eq!(status_of("GARBAGE\r\n\r\n"), 400);
        assert_eq!(status_of("GET / HTTP/1.1\r\nBad Header\r\n\r\n"), 400);
        // Case-insensitive tokens are fine.
        assert_eq!(
            status_of(&GOOD.replace("Upgrade: websocket", "upgrade: WebSocket")),
            101
        );
    }

    #[test]
    fn limits_are_enforced() {
        let many: String = (0..100).map(|i| format!("X-{i}: y\r\n")).collect();
        let raw = GOOD.replace("Origin", &format!("{many}Origin"));
        assert_eq!(status_of(&raw), 431);
        let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(20_000));
        assert_eq!(status_of(&huge), 431);
    }

    #[test]
    fn rejection_426_names_the_version() {
        let resp = reject_response(&HandshakeError::new(426, "only version 13"));
        let resp = String::from_utf8(resp).unwrap();
        assert!(resp.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
        assert!(resp.contains("Sec-WebSocket-Version: 13\r\n"));
    }

    #[test]
    fn rejected_parts_are_the_lines_of_the_rejection() {
        for status in [400, 405, 426, 431, 503] {
            let error = HandshakeError::new(status, "why");
            let parts = reject_parts(&error);
            assert_eq!(parts.status, status);
            assert_eq!(parts.body, "why\n");
            let written = parsed_headers(&reject_response(&error));
            let mut expected: Vec<(String, String)> = parts
                .headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
            // The framing lines are the framework's own.
            expected.insert(1, ("Content-Length".into(), "4".into()));
            expected.insert(2, ("Connection".into(), "close".into()));
            assert_eq!(written, expected, "{status}");
        }
        let request = parse(&GOOD.replace("HTTP/1.1", "HTTP/1.0"));
        assert_eq!(request, parse(GOOD).with_minor_version(0));
    }

    #[test]
    fn a_405_allows_get_unless_the_route_says_otherwise() {
        let get = String::from_utf8(reject_response(&HandshakeError::new(405, "no"))).unwrap();
        assert!(get.contains("\r\nAllow: GET\r\n"), "{get}");
        let mut extra = Headers::default();
        extra.push("Allow", "POST");
        let post = http_response(405, "text/plain", b"no", &extra);
        let post = String::from_utf8(post).unwrap();
        assert!(post.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
        assert_eq!(post.matches("Allow:").count(), 1, "{post}");
        assert!(post.contains("\r\nAllow: POST\r\n"), "{post}");
    }

    /// The headers of a response, as the client parses them.
    fn parsed_headers(response: &[u8]) -> Vec<(String, String)> {
        let (parsed, used) =
            crate::handshake::client::parse_response(response, &HandshakeLimits::default())
                .unwrap()
                .unwrap();
        let body = parsed
            .headers
            .get("content-length")
            .map_or(0, |len| len.parse().unwrap());
        assert_eq!(used + body, response.len());
        parsed
            .headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn choice(name: &str, value: &str) -> Choice {
        let mut headers = Headers::default();
        headers.push(name, value);
        Choice {
            protocol: None,
            headers,
        }
    }

    #[test]
    fn extra_headers_cannot_inject_or_break_the_response() {
        let req = parse(GOOD);
        for (name, value) in [
            ("Set-Cookie: evil=1; X", "y"),
            ("X-A", "a\r\nSet-Cookie: evil=1"),
            ("X-A", "a\nb"),
            ("X-A", "a\0b"),
            ("X-A", "a\x7fb"),
            ("", "v"),
        ] {
            let error = accept(&req, Config::default().into(), choice(name, value)).unwrap_err();
            assert_eq!(error.status(), Some(500), "{name:?}: {value:?}");
            assert!(
                error
                    .message()
                    .starts_with("invalid response header: header"),
                "{error}"
            );
            // A plain response with the same header is a 500 instead.
            let page = http_response(200, "text/plain", b"hi", &choice(name, value).headers);
            assert!(
                page.starts_with(b"HTTP/1.1 500 Internal Server Error\r\n"),
                "{name:?}"
            );
            let headers = parsed_headers(&page);
            let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(names, ["Content-Type", "Content-Length", "Connection"]);
        }
        let bad_protocol = Choice {
            protocol: Some("chat\r\nX: y".into()),
            headers: Headers::default(),
        };
        let mut headers = req.headers().clone();
        headers.push("Sec-WebSocket-Protocol", "chat\r\nX: y");
        let by_hand = Request::new("GET", "/", headers);
        assert_eq!(
            accept(&by_hand, Config::default().into(), bad_protocol)
                .unwrap_err()
                .status(),
            Some(500)
        );
        let page = http_response(200, "text/html\r\nX: y", b"", &Headers::default());
        assert!(page.starts_with(b"HTTP/1.1 500 "));
        let page = http_response(1000, "text/plain", b"", &Headers::default());
        assert!(page.starts_with(b"HTTP/1.1 500 "));
    }

    #[test]
    fn valid_extra_headers_parse_back_exactly() {
        let req = parse(GOOD);
        let mut extra = Headers::default();
        extra.push("Set-Cookie", "a=b; Path=/");
        extra.push("X-Utf8", "héllo\tthere");
        extra.push("X-Padded", "  v  ");
        extra.push("X-Empty", "");
        let accepted = accept(
            &req,
            Config::default().into(),
            Choice {
                protocol: Some("chat".into()),
                headers: extra.clone(),
            },
        )
        .unwrap();
        let headers = parsed_headers(&accepted.response);
        let tail: Vec<(&str, &str)> = headers[headers.len() - 4..]
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            tail,
            [
                ("Set-Cookie", "a=b; Path=/"),
                ("X-Utf8", "héllo\tthere"),
                ("X-Padded", "v"),
                ("X-Empty", "")
            ]
        );
        let page = http_response(404, "text/plain", b"no", &extra);
        assert_eq!(parsed_headers(&page).len(), 3 + 4);
    }
}

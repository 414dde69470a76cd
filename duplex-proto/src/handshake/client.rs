//! The client side of the opening handshake.
//!
//! ```
//! use duplex_proto::handshake::client::ClientRequest;
//! use duplex_proto::handshake::Headers;
//!
//! let request = ClientRequest::new("example.com", "/chat", &["chat"], None, &Headers::default());
//! let text = String::from_utf8(request.bytes().to_vec()).unwrap();
//! assert!(text.starts_with("GET /chat HTTP/1.1\r\nHost: example.com\r\n"));
//! assert!(text.contains("Sec-WebSocket-Protocol: chat\r\n"));
//! ```

use std::fmt::Write as _;

use base64::Engine;

use super::{accept_key, sanitize_header, HandshakeLimits, HeaderSlots, Headers};
use crate::error::HandshakeError;

/// An upgrade request ready to send, with the key its answer must match.
#[derive(Debug, Clone)]
pub struct ClientRequest {
    bytes: Vec<u8>,
    key: String,
    protocols: Vec<String>,
    offered_extensions: bool,
}

impl ClientRequest {
    /// Builds a request for `target` (path and query) on `host` (the `Host`
    /// header: host, plus `:port` when it is not the scheme's default), with
    /// a fresh random key.
    pub fn new(
        host: &str,
        target: &str,
        protocols: &[&str],
        extensions: Option<&str>,
        extra: &Headers,
    ) -> ClientRequest {
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).expect("the operating system's random source failed");
        let key = base64::engine::general_purpose::STANDARD.encode(nonce);
        let target = if target.is_empty() { "/" } else { target };
        let mut head = String::with_capacity(256);
        let _ = write!(
            head,
            "GET {} HTTP/1.1\r\n",
            sanitize_header(target).replace(' ', "%20")
        );
        let _ = write!(head, "Host: {}\r\n", sanitize_header(host));
        head.push_str("Upgrade: websocket\r\nConnection: Upgrade\r\n");
        let _ = write!(
            head,
            "Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        );
        if !protocols.is_empty() {
            let _ = write!(
                head,
                "Sec-WebSocket-Protocol: {}\r\n",
                sanitize_header(&protocols.join(", "))
            );
        }
        if let Some(extensions) = extensions {
            let _ = write!(
                head,
                "Sec-WebSocket-Extensions: {}\r\n",
                sanitize_header(extensions)
            );
        }
        for (name, value) in extra.iter() {
            let _ = write!(
                head,
                "{}: {}\r\n",
                sanitize_header(name),
                sanitize_header(value)
            );
        }
        head.push_str("\r\n");
        ClientRequest {
            bytes: head.into_bytes(),
            key,
            protocols: protocols.iter().map(|p| p.to_string()).collect(),
            offered_extensions: extensions.is_some(),
        }
    }

    /// The request head to write.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The `Sec-WebSocket-Key` sent.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Validates the server's response (RFC 6455 §4.1): status 101,
    /// `Upgrade: websocket`, `Connection: upgrade`, the right accept value,
    /// a subprotocol only if one was offered and it is one of ours, and
    /// extensions only if we offered some (the caller checks which).
    pub fn validate(&self, response: &Response) -> Result<Accepted, HandshakeError> {
        let h = &response.headers;
        if response.status != 101 {
            return Err(HandshakeError::new(
                response.status,
                format!(
                    "server rejected the handshake: {} {}",
                    response.status, response.reason
                ),
            ));
        }
        let fail = |why: &str| HandshakeError::new(0, format!("invalid handshake response: {why}"));
        if !h.has_token("upgrade", "websocket") {
            return Err(fail("missing Upgrade: websocket"));
        }
        if !h.has_token("connection", "upgrade") {
            return Err(fail("missing Connection: upgrade"));
        }
        if h.get("sec-websocket-accept").map(str::trim) != Some(&accept_key(&self.key)) {
            return Err(fail("wrong Sec-WebSocket-Accept"));
        }
        let protocol = match h.count("sec-websocket-protocol") {
            0 => None,
            1 => {
                let chosen = h.get("sec-websocket-protocol").unwrap_or("").trim();
                if !self.protocols.iter().any(|p| p == chosen) {
                    return Err(fail(&format!(
                        "server chose subprotocol {chosen:?}, which was not offered"
                    )));
                }
                Some(chosen.to_string())
            }
            _ => return Err(fail("more than one Sec-WebSocket-Protocol")),
        };
        let extensions: Vec<String> = h
            .get_all("sec-websocket-extensions")
            .map(str::to_string)
            .collect();
        if !extensions.is_empty() && !self.offered_extensions {
            return Err(fail(
                "server answered with extensions that were not offered",
            ));
        }
        Ok(Accepted {
            protocol,
            extensions,
        })
    }
}

/// What a successful handshake agreed on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accepted {
    /// The subprotocol the server chose.
    pub protocol: Option<String>,
    /// The raw `Sec-WebSocket-Extensions` values of the response, for the
    /// extension negotiation to check.
    pub extensions: Vec<String>,
}

/// A parsed HTTP response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
    /// The headers.
    pub headers: Headers,
}

/// Parses a response head from the start of `buf`; returns it and its
/// length, or `Ok(None)` if more bytes are needed.
pub fn parse_response(
    buf: &[u8],
    limits: &HandshakeLimits,
) -> Result<Option<(Response, usize)>, HandshakeError> {
    let mut slots = HeaderSlots::new(limits.max_headers);
    let raw = slots.as_mut();
    let mut resp = httparse::Response::new(raw);
    let fail = |why: String| HandshakeError::new(0, format!("invalid handshake response: {why}"));
    match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len <= limits.max_size => Ok(Some((
            Response {
                status: resp.code.unwrap_or(0),
                reason: resp.reason.unwrap_or("").to_string(),
                headers: Headers::from_httparse(resp.headers),
            },
            len,
        ))),
        Ok(httparse::Status::Partial) if buf.len() < limits.max_size => Ok(None),
        Ok(_) => Err(fail(format!(
            "response head longer than {} bytes",
            limits.max_size
        ))),
        Err(e) => Err(fail(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response_for(req: &ClientRequest, extra: &str) -> Response {
        let raw = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n{extra}\r\n",
            accept_key(req.key())
        );
        parse_response(raw.as_bytes(), &HandshakeLimits::default())
            .unwrap()
            .unwrap()
            .0
    }

    #[test]
    fn accepts_a_good_response() {
        let req = ClientRequest::new("h:1", "/x", &["a", "b"], None, &Headers::default());
        let accepted = req
            .validate(&response_for(&req, "Sec-WebSocket-Protocol: b\r\n"))
            .unwrap();
        assert_eq!(accepted.protocol.as_deref(), Some("b"));
    }

    #[test]
    fn rejects_bad_responses() {
        let req = ClientRequest::new("h", "/", &["a"], None, &Headers::default());
        assert!(req
            .validate(&response_for(&req, "Sec-WebSocket-Protocol: z\r\n"))
            .is_err());
        assert!(req
            .validate(&response_for(
                &req,
                "Sec-WebSocket-Extensions: permessage-deflate\r\n"
            ))
            .is_err());
        let mut wrong = response_for(&req, "");
        wrong.headers = Headers::default();
        assert!(req.validate(&wrong).is_err());
        let raw = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n";
        let (resp, _) = parse_response(raw, &HandshakeLimits::default())
            .unwrap()
            .unwrap();
        assert_eq!(req.validate(&resp).unwrap_err().status(), 403);
    }

    #[test]
    fn keys_are_fresh() {
        let a = ClientRequest::new("h", "/", &[], None, &Headers::default());
        let b = ClientRequest::new("h", "/", &[], None, &Headers::default());
        assert_ne!(a.key(), b.key());
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(a.key())
                .unwrap()
                .len(),
            16
        );
    }
}

//! The client side of the opening handshake.
//!
//! ```
//! use duplex_proto::handshake::client::{parse_response, ClientRequest};
//! use duplex_proto::handshake::{accept_key, HandshakeLimits, Headers};
//! use duplex_proto::Config;
//!
//! let config = Config::default();
//! let request = ClientRequest::new("example.com", "/chat", &["chat"], &Headers::default(), &config);
//! let text = String::from_utf8(request.bytes().to_vec()).unwrap();
//! assert!(text.starts_with("GET /chat HTTP/1.1\r\nHost: example.com\r\n"));
//! assert!(text.contains("Sec-WebSocket-Protocol: chat\r\n"));
//!
//! // The server's answer, checked; the engine comes out ready.
//! let answer = format!(
//!     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
//!      Sec-WebSocket-Accept: {}\r\nSec-WebSocket-Protocol: chat\r\n\r\n",
//!     accept_key(request.key())
//! );
//! let (response, _) = parse_response(answer.as_bytes(), &HandshakeLimits::default())
//!     .unwrap()
//!     .unwrap();
//! let established = request.accept(&response, config.into()).unwrap();
//! assert_eq!(established.protocol.as_deref(), Some("chat"));
//! assert!(!established.connection.is_compressed());
//! ```

use std::fmt::Write as _;
use std::sync::Arc;

use base64::Engine;

use super::headers::{check_value, is_tchar, lossy_value, wire_value, InvalidHeader};
use super::negotiate::{client_extensions, client_offer};
use super::{accept_key, HandshakeLimits, HeaderSlots, Headers};
use crate::config::Config;
use crate::connection::Connection;
use crate::error::HandshakeError;
use crate::role::Role;

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
    /// a fresh random key, the subprotocols in order of preference, extra
    /// headers, and the extensions `config` asks for (permessage-deflate).
    ///
    /// Fails with [`HandshakeError::invalid_request`] on what cannot be
    /// written as given: control characters in `host` or `target`, a
    /// subprotocol that is not an HTTP token (RFC 6455 §4.1), or an extra
    /// header that fails [`check_header`](super::check_header). Spaces in
    /// `target` are sent as `%20` (tabs as `%09`).
    pub fn try_new(
        host: &str,
        target: &str,
        protocols: &[&str],
        extra: &Headers,
        config: &Config,
    ) -> Result<ClientRequest, HandshakeError> {
        check_request(host, target, protocols, extra)
            .map_err(|e| HandshakeError::invalid_request(e.to_string()))?;
        Ok(ClientRequest::new(host, target, protocols, extra, config))
    }

    /// Like [`ClientRequest::try_new`], for callers that cannot take an
    /// error: what `try_new` refuses is made writable instead, never
    /// written as given. Control characters become spaces, and an extra
    /// header whose name is not a token is left out. Prefer `try_new`,
    /// which says what was wrong.
    pub fn new(
        host: &str,
        target: &str,
        protocols: &[&str],
        extra: &Headers,
        config: &Config,
    ) -> ClientRequest {
        let offer = client_offer(config);
        let extensions = offer.as_deref();
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).expect("the operating system's random source failed");
        let key = base64::engine::general_purpose::STANDARD.encode(nonce);
        let target = if target.is_empty() { "/" } else { target };
        let mut head = String::with_capacity(256);
        let _ = write!(
            head,
            "GET {} HTTP/1.1\r\n",
            lossy_value(target).replace(' ', "%20").replace('\t', "%09")
        );
        let _ = write!(head, "Host: {}\r\n", wire_value(&lossy_value(host)));
        head.push_str("Upgrade: websocket\r\nConnection: Upgrade\r\n");
        let _ = write!(
            head,
            "Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        );
        if !protocols.is_empty() {
            let _ = write!(
                head,
                "Sec-WebSocket-Protocol: {}\r\n",
                wire_value(&lossy_value(&protocols.join(", ")))
            );
        }
        if let Some(extensions) = extensions {
            // Built by the engine (`DeflateConfig::client_offer`): tokens only.
            let _ = write!(head, "Sec-WebSocket-Extensions: {extensions}\r\n");
        }
        for (name, value) in extra.iter() {
            if name.is_empty() || !name.bytes().all(is_tchar) {
                continue;
            }
            let _ = write!(head, "{name}: {}\r\n", wire_value(&lossy_value(value)));
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

    /// Checks the server's response and makes the client's engine: status
    /// 101, `Upgrade: websocket`, `Connection: upgrade`, the right accept
    /// value, a subprotocol only if it is one we offered, and only
    /// extensions we offered, with parameters we accept (RFC 6455 §4.1,
    /// RFC 7692 §7). Agreed extensions are on in the returned connection.
    /// `config` should be the one the request was built with.
    pub fn accept(
        &self,
        response: &Response,
        config: Arc<Config>,
    ) -> Result<Established, HandshakeError> {
        let (protocol, extensions) = self.check(response)?;
        let mut connection = Connection::with_shared_config(Role::Client, config.clone());
        client_extensions(&extensions, &config, &mut connection)?;
        Ok(Established {
            connection,
            protocol,
        })
    }

    /// The subprotocol and the raw extension values of a valid response.
    fn check(&self, response: &Response) -> Result<(Option<String>, Vec<String>), HandshakeError> {
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
        if !h.has_token("upgrade", "websocket") {
            return Err(HandshakeError::invalid_response(
                "missing Upgrade: websocket",
            ));
        }
        if !h.has_token("connection", "upgrade") {
            return Err(HandshakeError::invalid_response(
                "missing Connection: upgrade",
            ));
        }
        if h.get("sec-websocket-accept").map(str::trim) != Some(&accept_key(&self.key)) {
            return Err(HandshakeError::invalid_response(
                "wrong Sec-WebSocket-Accept",
            ));
        }
        let protocol = match h.count("sec-websocket-protocol") {
            0 => None,
            1 => {
                let chosen = h.get("sec-websocket-protocol").unwrap_or("").trim();
                if !self.protocols.iter().any(|p| p == chosen) {
                    return Err(HandshakeError::invalid_response(format!(
                        "server chose subprotocol {chosen:?}, which was not offered"
                    )));
                }
                Some(chosen.to_string())
            }
            _ => {
                return Err(HandshakeError::invalid_response(
                    "more than one Sec-WebSocket-Protocol",
                ))
            }
        };
        let extensions: Vec<String> = h
            .get_all("sec-websocket-extensions")
            .map(str::to_string)
            .collect();
        if !extensions.is_empty() && !self.offered_extensions {
            return Err(HandshakeError::invalid_response(
                "server answered with extensions that were not offered",
            ));
        }
        Ok((protocol, extensions))
    }
}

/// Checks what [`ClientRequest::try_new`] is asked to write.
fn check_request(
    host: &str,
    target: &str,
    protocols: &[&str],
    extra: &Headers,
) -> Result<(), InvalidHeader> {
    check_value("Host", host)?;
    check_value("the request target", target)?;
    for protocol in protocols {
        if protocol.is_empty() || !protocol.bytes().all(is_tchar) {
            return Err(InvalidHeader::new(
                format!("subprotocol {protocol:?}"),
                "not an HTTP token".into(),
            ));
        }
    }
    extra.validate()
}

/// A completed client handshake: the engine, and what was agreed.
#[derive(Debug)]
pub struct Established {
    /// The connection, in the open state, with every agreed extension on.
    pub connection: Connection,
    /// The subprotocol the server chose.
    pub protocol: Option<String>,
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
        Ok(_) => Err(HandshakeError::invalid_response(format!(
            "response head longer than {} bytes",
            limits.max_size
        ))),
        Err(e) => Err(HandshakeError::invalid_response(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Settings that offer no extension.
    fn plain() -> Arc<Config> {
        #[allow(unused_mut)]
        let mut config = Config::default();
        #[cfg(feature = "deflate")]
        {
            config.deflate = None;
        }
        Arc::new(config)
    }

    fn request(protocols: &[&str]) -> ClientRequest {
        ClientRequest::new("h:1", "/x", protocols, &Headers::default(), &plain())
    }

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
        let req = request(&["a", "b"]);
        let established = req
            .accept(
                &response_for(&req, "Sec-WebSocket-Protocol: b\r\n"),
                plain(),
            )
            .unwrap();
        assert_eq!(established.protocol.as_deref(), Some("b"));
        assert_eq!(established.connection.role(), Role::Client);
    }

    #[test]
    fn rejects_bad_responses() {
        let req = request(&["a"]);
        let error = req
            .accept(
                &response_for(&req, "Sec-WebSocket-Protocol: z\r\n"),
                plain(),
            )
            .unwrap_err();
        assert_eq!(error.status(), None, "{error}");
        assert!(req
            .accept(
                &response_for(&req, "Sec-WebSocket-Extensions: permessage-deflate\r\n"),
                plain()
            )
            .is_err());
        let mut wrong = response_for(&req, "");
        wrong.headers = Headers::default();
        assert!(req.accept(&wrong, plain()).is_err());
        let raw = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n";
        let (resp, _) = parse_response(raw, &HandshakeLimits::default())
            .unwrap()
            .unwrap();
        assert_eq!(req.accept(&resp, plain()).unwrap_err().status(), Some(403));
    }

    #[cfg(feature = "deflate")]
    #[test]
    fn the_offer_comes_from_the_config_and_the_answer_turns_deflate_on() {
        let config = Arc::new(Config::default());
        let req = ClientRequest::new("h", "/", &[], &Headers::default(), &config);
        let text = String::from_utf8(req.bytes().to_vec()).unwrap();
        assert!(text.contains("Sec-WebSocket-Extensions: permessage-deflate"));
        let answer = response_for(&req, "Sec-WebSocket-Extensions: permessage-deflate\r\n");
        assert!(req
            .accept(&answer, config.clone())
            .unwrap()
            .connection
            .is_compressed());
        let bad = response_for(
            &req,
            "Sec-WebSocket-Extensions: permessage-deflate; x=1\r\n",
        );
        assert_eq!(req.accept(&bad, config).unwrap_err().status(), None);
    }

    #[test]
    fn keys_are_fresh() {
        let a = request(&[]);
        let b = request(&[]);
        assert_ne!(a.key(), b.key());
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(a.key())
                .unwrap()
                .len(),
            16
        );
    }

    /// The headers of a request head, as a server parses them.
    fn parsed(req: &ClientRequest) -> crate::handshake::server::Request {
        let (parsed, used) =
            crate::handshake::server::parse_request(req.bytes(), &HandshakeLimits::default())
                .unwrap()
                .unwrap();
        assert_eq!(used, req.bytes().len());
        parsed
    }

    #[test]
    fn try_new_refuses_what_would_inject_or_break_the_request() {
        let one = |name: &str, value: &str| {
            let mut headers = Headers::default();
            headers.push(name, value);
            headers
        };
        let none = Headers::default();
        let cases: [(&str, &str, &[&str], Headers); 7] = [
            ("h\r\nX: y", "/", &[], none.clone()),
            ("h", "/a\r\nX: y", &[], none.clone()),
            ("h", "/", &["a,b"], none.clone()),
            ("h", "/", &["a b"], none.clone()),
            ("h", "/", &[""], none.clone()),
            ("h", "/", &[], one("Authorization: x\r\nCookie", "y")),
            ("h", "/", &[], one("X-Ctl", "a\0b")),
        ];
        for (host, target, protocols, extra) in cases {
            let error =
                ClientRequest::try_new(host, target, protocols, &extra, &plain()).unwrap_err();
            assert_eq!(error.status(), None);
            assert!(
                error.message().starts_with("invalid handshake request: "),
                "{error}"
            );
            // The lossy constructor writes a head that parses, with no
            // header but the ones it writes itself and the valid extras.
            let req = ClientRequest::new(host, target, protocols, &extra, &plain());
            let parsed = parsed(&req);
            assert!(parsed.headers().get("x").is_none());
            assert!(parsed.headers().get("cookie").is_none());
            assert_eq!(parsed.headers().count("host"), 1);
        }
        assert_eq!(
            ClientRequest::try_new("h", "/", &[], &one("X-A", "1\n"), &plain())
                .unwrap_err()
                .to_string(),
            "invalid handshake request: header \"X-A\": control character 0x0a at byte 1"
        );
    }

    #[test]
    fn try_new_writes_valid_parts_exactly() {
        let mut extra = Headers::default();
        extra.push("Authorization", "Bearer abc");
        extra.push("X-Utf8", "héllo");
        let req = ClientRequest::try_new("h:1", "/a b\tc?q=1", &["chat", "v2.x"], &extra, &plain())
            .unwrap();
        let parsed = parsed(&req);
        assert_eq!(parsed.target(), "/a%20b%09c?q=1");
        assert_eq!(parsed.headers().get("host"), Some("h:1"));
        assert_eq!(parsed.protocols(), ["chat", "v2.x"]);
        assert_eq!(parsed.headers().get("authorization"), Some("Bearer abc"));
        assert_eq!(parsed.headers().get("x-utf8"), Some("héllo"));
        crate::handshake::server::validate_request(&parsed).unwrap();
    }
}

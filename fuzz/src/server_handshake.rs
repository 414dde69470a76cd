//! The server side of the opening handshake: any request bytes, any
//! application choice (subprotocol, extra headers), any settings.
//!
//! Input: a flags byte (bit 0 compression on, bit 1 choose one of the
//! offered subprotocols, bit 2 choose the text that follows instead, bit
//! 3 small head limits), the server's deflate settings (three bytes, see
//! [`config`](super::extensions::config)), that subprotocol text, a count
//! (mod 5) of extra headers and each header's name and value, a status
//! and a content type for a plain response, then the request bytes.
//!
//! Checked: every response the engine writes (the 101, a rejection, a
//! plain page) parses back with exactly the expected status, headers and
//! body; caller-supplied headers come back exactly as given (less the
//! spaces around a value) or, when they would inject or break anything,
//! are refused with 500; a rejection carries the status the error says.

use std::sync::Arc;

use duplex_proto::deflate::DeflateConfig;
use duplex_proto::extensions::parse_extensions;
use duplex_proto::handshake::server::{
    accept, http_response, parse_request, reject_response, validate_request, Choice, Request,
};
use duplex_proto::handshake::{accept_key, check_header, HandshakeLimits, Headers};
use duplex_proto::{Config, HandshakeError, Role};

use super::input::{is_field_value, trimmed, Input};

/// A response as an independent parser (httparse) reads it.
pub struct Parsed {
    /// The status code.
    pub status: u16,
    /// The header lines, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The bytes after the head.
    pub body: Vec<u8>,
}

/// Parses a whole response head; panics when it is not one.
pub fn parse_response(bytes: &[u8]) -> Parsed {
    let mut slots = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut slots);
    let len = match response.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        other => panic!(
            "the engine wrote an invalid response ({other:?}): {:?}",
            String::from_utf8_lossy(bytes)
        ),
    };
    Parsed {
        status: response.code.unwrap_or(0),
        headers: response
            .headers
            .iter()
            .map(|h| (h.name.to_string(), h.value.to_vec()))
            .collect(),
        body: bytes[len..].to_vec(),
    }
}

/// `(name, value)` pairs as owned expectations.
fn lines(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
        .collect()
}

/// The headers `http_response` writes before the extra ones.
fn plain_headers(status: u16, content_type: &str, body_len: usize) -> Vec<(String, Vec<u8>)> {
    let len = body_len.to_string();
    let mut expected = lines(&[
        ("Content-Type", trimmed(content_type)),
        ("Content-Length", &len),
        ("Connection", "close"),
    ]);
    if status == 426 {
        expected.extend(lines(&[
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Version", "13"),
        ]));
    }
    if status == 405 {
        expected.extend(lines(&[("Allow", "GET")]));
    }
    expected
}

fn extra_lines(extra: &Headers) -> Vec<(String, Vec<u8>)> {
    extra
        .iter()
        .map(|(n, v)| (n.to_string(), trimmed(v).as_bytes().to_vec()))
        .collect()
}

/// A plain response: exactly what was asked, or a 500 when that cannot
/// be written.
fn check_page(status: u16, content_type: &str, extra: &Headers) {
    let body = b"page body";
    let page = parse_response(&http_response(status, content_type, body, extra));
    let writable = (100..=999).contains(&status)
        && is_field_value(content_type)
        && extra
            .iter()
            .all(|(n, v)| super::input::is_token(n) && is_field_value(v));
    assert_eq!(
        writable,
        extra.validate().is_ok()
            && check_header("Content-Type", content_type).is_ok()
            && (100..=999).contains(&status)
    );
    if writable {
        let mut expected = plain_headers(status, content_type, body.len());
        expected.extend(extra_lines(extra));
        assert_eq!(page.status, status);
        assert_eq!(page.headers, expected);
        assert_eq!(page.body, body);
    } else {
        assert_eq!(page.status, 500);
        let text = "text/plain; charset=utf-8";
        assert_eq!(page.headers, plain_headers(500, text, page.body.len()));
        assert!(page.body.starts_with(b"invalid response: "));
    }
}

/// A rejection: the error's status, the fixed headers, its message.
fn check_reject(error: &HandshakeError) {
    let status = error.status().unwrap_or(400);
    let page = parse_response(&reject_response(error));
    assert_eq!(page.status, status);
    let body = format!("{}\n", error.message());
    let text = "text/plain; charset=utf-8";
    assert_eq!(page.headers, plain_headers(status, text, body.len()));
    assert_eq!(page.body, body.as_bytes());
}

/// The 101: the handshake's own headers, then the extra ones, exactly.
fn check_101(request: &Request, config: &Config, choice: &Choice, response: &[u8]) {
    let page = parse_response(response);
    assert_eq!(page.status, 101);
    assert!(page.body.is_empty());
    let key = request.headers().get("sec-websocket-key").unwrap().trim();
    let accept = accept_key(key);
    let mut expected = lines(&[
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", &accept),
    ]);
    if let Some(protocol) = &choice.protocol {
        expected.extend(lines(&[("Sec-WebSocket-Protocol", protocol)]));
    }
    if let Some(deflate) = &config.deflate {
        let offers = parse_extensions(request.headers().get_all("sec-websocket-extensions"))
            .expect("accepted, so the offers parsed");
        if let Some(params) = deflate.server_negotiate(&offers).unwrap() {
            expected.extend(lines(&[(
                "Sec-WebSocket-Extensions",
                &params.to_header_value(),
            )]));
        }
    }
    expected.extend(extra_lines(&choice.headers));
    assert_eq!(page.headers, expected);
}

/// The harness.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.byte();
    let deflate: DeflateConfig = super::extensions::config(&mut input);
    let protocol_text = input.text();
    let mut extra = Headers::default();
    for _ in 0..input.byte() % 5 {
        let name = input.text();
        extra.push(name, input.text());
    }
    let status = input.u16();
    let content_type = input.text();
    let request_bytes = input.rest();

    check_page(status, &content_type, &extra);

    let limits = if flags & 8 != 0 {
        HandshakeLimits {
            max_size: 256,
            max_headers: 4,
        }
    } else {
        HandshakeLimits::default()
    };
    let (request, used) = match parse_request(request_bytes, &limits) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => {
            assert!(request_bytes.len() < limits.max_size);
            return;
        }
        Err(error) => {
            assert!(matches!(error.status(), Some(400 | 431)), "{error}");
            check_reject(&error);
            return;
        }
    };
    assert!(used <= request_bytes.len() && used <= limits.max_size);
    let offered = request.protocols();
    let protocol = if flags & 4 != 0 {
        Some(protocol_text)
    } else if flags & 2 != 0 && !offered.is_empty() {
        Some(offered[usize::from(flags >> 4) % offered.len()].to_string())
    } else {
        None
    };
    let config = Config {
        deflate: (flags & 1 != 0).then_some(deflate),
        ..Config::default()
    };
    let choice = Choice {
        protocol,
        headers: extra,
    };
    let valid = validate_request(&request);
    match accept(&request, Arc::new(config.clone()), choice.clone()) {
        Ok(accepted) => {
            assert_eq!(valid, Ok(()));
            assert!(choice.headers.validate().is_ok());
            assert_eq!(accepted.protocol, choice.protocol);
            assert_eq!(accepted.connection.role(), Role::Server);
            check_101(&request, &config, &choice, &accepted.response);
        }
        Err(error) => {
            match valid {
                Err(invalid) => assert_eq!(error, invalid),
                Ok(()) if choice.headers.validate().is_err() => {
                    assert_eq!(error.status(), Some(500), "{error}");
                }
                Ok(()) => assert!(matches!(error.status(), Some(400 | 500)), "{error}"),
            }
            check_reject(&error);
        }
    }
}

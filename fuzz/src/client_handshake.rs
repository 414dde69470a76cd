//! The client side of the opening handshake: any host, target,
//! subprotocols and extra headers going out, any response coming back,
//! and the whole exchange with our own server.
//!
//! Input: a flags byte (bit 0 the client offers compression, bit 1 the
//! server allows it, bit 2 the server picks a subprotocol, bit 3 small
//! head limits), the client's and the server's deflate settings (three
//! bytes each, see [`config`](super::extensions::config)), the host, the
//! target, a count (mod 4) of subprotocols and each one, a count (mod 5)
//! of extra headers and each name and value, then a response. In the
//! response, the accept value of RFC 6455 §1.3
//! (`s3pPLMBiTxaQ9kYGzzhZRbK+xOo=`) stands for the right one, as the key
//! is random.
//!
//! Checked: `try_new` refuses exactly what cannot be written as given,
//! and what it accepts parses back (as the server parses it) with exactly
//! the expected request line and headers; `new` always writes a head that
//! parses, with no header line but its own and the extra ones with valid
//! names; a response is only accepted when RFC 6455 §4.1 allows it; and
//! with our server on the other side the handshake succeeds, both ends
//! agree on the subprotocol and on compression, and messages cross both
//! ways unchanged.

use std::sync::Arc;

use duplex_proto::handshake::client::{parse_response, ClientRequest};
use duplex_proto::handshake::server::{self, Choice};
use duplex_proto::handshake::{accept_key, HandshakeLimits, Headers};
use duplex_proto::{Config, Connection, Message};

use super::input::{is_field_value, is_token, trimmed, Input};

/// The RFC 6455 §1.3 accept value, replaced in responses by the real one.
const RFC_ACCEPT: &[u8] = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// Headers the handshake writes itself: extra ones by these names make a
/// request our server refuses (a second Host) or reads differently.
fn is_handshake_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    matches!(name.as_str(), "host" | "upgrade" | "connection") || name.starts_with("sec-websocket-")
}

/// A request head as the server reads it: target and header lines.
fn parse_request(bytes: &[u8]) -> (String, Vec<(String, Vec<u8>)>) {
    let mut slots = [httparse::EMPTY_HEADER; 32];
    let mut request = httparse::Request::new(&mut slots);
    match request.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => assert_eq!(len, bytes.len()),
        other => panic!(
            "the engine wrote an invalid request ({other:?}): {:?}",
            String::from_utf8_lossy(bytes)
        ),
    }
    assert_eq!(request.method, Some("GET"));
    assert_eq!(request.version, Some(1));
    let headers = request
        .headers
        .iter()
        .map(|h| (h.name.to_string(), h.value.to_vec()))
        .collect();
    (request.path.unwrap().to_string(), headers)
}

/// What goes out: `try_new` refuses exactly the unwritable, and both
/// constructors write heads that parse to what they should. Returns the
/// request to go on with, and whether `try_new` accepted it.
fn check_request(
    host: &str,
    target: &str,
    protocols: &[&str],
    extra: &Headers,
    config: &Config,
) -> (ClientRequest, bool) {
    let writable = is_field_value(host)
        && is_field_value(target)
        && protocols.iter().all(|p| is_token(p))
        && extra.iter().all(|(n, v)| is_token(n) && is_field_value(v));
    let strict = ClientRequest::try_new(host, target, protocols, extra, config);
    assert_eq!(strict.is_ok(), writable, "{:?}", strict.err());
    let offer = config.deflate.as_ref().map(|d| d.client_offer());
    let own = |request: &ClientRequest| {
        let mut own = vec![
            ("Host".to_string(), trimmed(host).as_bytes().to_vec()),
            ("Upgrade".into(), b"websocket".to_vec()),
            ("Connection".into(), b"Upgrade".to_vec()),
            (
                "Sec-WebSocket-Key".into(),
                request.key().as_bytes().to_vec(),
            ),
            ("Sec-WebSocket-Version".into(), b"13".to_vec()),
        ];
        if !protocols.is_empty() {
            own.push((
                "Sec-WebSocket-Protocol".into(),
                protocols.join(", ").into_bytes(),
            ));
        }
        if let Some(offer) = &offer {
            own.push((
                "Sec-WebSocket-Extensions".into(),
                offer.clone().into_bytes(),
            ));
        }
        own
    };
    if let Ok(request) = &strict {
        let (path, headers) = parse_request(request.bytes());
        let expected_path = if target.is_empty() { "/" } else { target };
        assert_eq!(path, expected_path.replace(' ', "%20").replace('\t', "%09"));
        let mut expected = own(request);
        expected.extend(
            extra
                .iter()
                .map(|(n, v)| (n.to_string(), trimmed(v).as_bytes().to_vec())),
        );
        assert_eq!(headers, expected);
    }
    let lossy = ClientRequest::new(host, target, protocols, extra, config);
    let (_, headers) = parse_request(lossy.bytes());
    let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
    let own_names = own(&lossy);
    let mut expected: Vec<&str> = own_names.iter().map(|(n, _)| n.as_str()).collect();
    expected.extend(extra.iter().map(|(n, _)| n).filter(|n| is_token(n)));
    assert_eq!(names, expected);
    let (parsed, _) = server::parse_request(lossy.bytes(), &HandshakeLimits::default())
        .unwrap()
        .unwrap();
    if !extra.iter().any(|(n, _)| is_handshake_header(n)) {
        server::validate_request(&parsed).unwrap();
    }
    match strict {
        Ok(request) => (request, true),
        Err(_) => (lossy, false),
    }
}

/// What comes back: a response is accepted only as RFC 6455 §4.1 allows.
fn check_response(request: &ClientRequest, raw: &[u8], limits: &HandshakeLimits, config: &Config) {
    let accept = accept_key(request.key());
    let mut bytes = raw.to_vec();
    let mut at = 0;
    while let Some(i) = bytes[at..]
        .windows(RFC_ACCEPT.len())
        .position(|w| w == RFC_ACCEPT)
    {
        bytes[at + i..at + i + RFC_ACCEPT.len()].copy_from_slice(accept.as_bytes());
        at += i + RFC_ACCEPT.len();
    }
    let Ok(Some((response, used))) = parse_response(&bytes, limits) else {
        return;
    };
    assert!(used <= bytes.len() && used <= limits.max_size);
    match request.accept(&response, Arc::new(config.clone())) {
        Ok(established) => {
            let h = &response.headers;
            assert_eq!(response.status, 101);
            assert!(h.has_token("upgrade", "websocket"));
            assert!(h.has_token("connection", "upgrade"));
            assert_eq!(
                h.get("sec-websocket-accept").map(str::trim),
                Some(accept.as_str())
            );
            assert!(h.count("sec-websocket-protocol") <= 1);
            assert_eq!(
                established.protocol.as_deref(),
                h.get("sec-websocket-protocol").map(str::trim)
            );
            if established.connection.is_compressed() {
                assert!(config.deflate.is_some());
                assert!(h.get("sec-websocket-extensions").is_some());
            }
        }
        Err(error) => {
            if let Some(status) = error.status() {
                assert_eq!(status, response.status);
                assert_ne!(status, 101);
            }
        }
    }
}

/// Both ways through a handshaken pair.
fn exchange(from: &mut Connection, to: &mut Connection, message: Message) {
    from.send(message.clone()).unwrap();
    to.receive(&from.take_output());
    assert_eq!(to.next_message(), Ok(Some(message)));
}

/// Our client and our server agree.
fn check_with_server(
    request: &ClientRequest,
    client_config: &Config,
    server_config: Config,
    pick: Option<usize>,
    payload: &[u8],
) {
    let server_config = Arc::new(server_config);
    let valid_settings = [client_config, &*server_config]
        .iter()
        .all(|c| c.deflate.as_ref().is_none_or(|d| d.validate().is_ok()));
    let (parsed, used) = server::parse_request(request.bytes(), &HandshakeLimits::default())
        .unwrap()
        .unwrap();
    assert_eq!(used, request.bytes().len());
    let offered = parsed.protocols();
    let protocol = pick
        .filter(|_| !offered.is_empty())
        .map(|i| offered[i % offered.len()].to_string());
    let choice = Choice {
        protocol,
        headers: Headers::default(),
    };
    let accepted = match server::accept(&parsed, server_config, choice.clone()) {
        Ok(accepted) => accepted,
        Err(error) if !valid_settings => {
            assert_eq!(error.status(), Some(500));
            return;
        }
        Err(error) => panic!("our server refused our client: {error}"),
    };
    let (response, used) = parse_response(&accepted.response, &HandshakeLimits::default())
        .unwrap()
        .unwrap();
    assert_eq!(used, accepted.response.len());
    let established = match request.accept(&response, Arc::new(client_config.clone())) {
        Ok(established) => established,
        Err(error) if !valid_settings => {
            assert_eq!(error.status(), None);
            return;
        }
        Err(error) => panic!("our client refused our server: {error}"),
    };
    assert_eq!(established.protocol, choice.protocol);
    assert_eq!(established.protocol, accepted.protocol);
    let mut client = established.connection;
    let mut server = accepted.connection;
    assert_eq!(client.is_compressed(), server.is_compressed());
    assert_eq!(
        client.is_compressed(),
        client_config.deflate.is_some() && server.config().deflate.is_some()
    );
    for message in [
        Message::binary(payload.to_vec()),
        Message::text(String::from_utf8_lossy(payload).into_owned()),
    ] {
        exchange(&mut client, &mut server, message.clone());
        exchange(&mut server, &mut client, message);
    }
}

/// The harness.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.byte();
    let client_deflate = super::extensions::config(&mut input);
    let server_deflate = super::extensions::config(&mut input);
    let host = input.text();
    let target = input.text();
    let protocols: Vec<String> = (0..input.byte() % 4).map(|_| input.text()).collect();
    let protocols: Vec<&str> = protocols.iter().map(String::as_str).collect();
    let mut extra = Headers::default();
    for _ in 0..input.byte() % 5 {
        let name = input.text();
        extra.push(name, input.text());
    }
    let response = input.rest();
    let client_config = Config {
        deflate: (flags & 1 != 0).then_some(client_deflate),
        ..Config::default()
    };
    let server_config = Config {
        deflate: (flags & 2 != 0).then_some(server_deflate),
        ..Config::default()
    };
    let limits = if flags & 8 != 0 {
        HandshakeLimits {
            max_size: 256,
            max_headers: 4,
        }
    } else {
        HandshakeLimits::default()
    };

    let (request, strict) = check_request(&host, &target, &protocols, &extra, &client_config);
    check_response(&request, response, &limits, &client_config);
    if strict && !extra.iter().any(|(n, _)| is_handshake_header(n)) {
        let pick = (flags & 4 != 0).then_some(usize::from(flags >> 4));
        let payload = &response[..response.len().min(300)];
        check_with_server(&request, &client_config, server_config, pick, payload);
    }
}

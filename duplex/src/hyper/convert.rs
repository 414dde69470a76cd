//! Between `http` types and the engine's handshake types: a request's
//! head in, the engine's header lists out. No decision is taken here; the
//! engine takes them all (`duplex_proto::handshake::server`).

use bytes::Bytes;
use duplex_proto::handshake::server::{AcceptedParts, RejectedParts, Request};
use duplex_proto::handshake::Headers;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode, Version};
use http_body_util::Full;

/// The engine's view of a request head: method, target, HTTP version and
/// headers (values that are not UTF-8 are kept lossily, as duplex's own
/// server does: no header the handshake reads may hold such bytes).
pub(crate) fn engine_request(
    method: &http::Method,
    uri: &http::Uri,
    version: Version,
    map: &HeaderMap,
) -> Request {
    let target = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_string(), |pq| pq.as_str().to_string());
    let mut headers = Headers::default();
    for (name, value) in map {
        headers.push(
            name.as_str(),
            String::from_utf8_lossy(value.as_bytes()).into_owned(),
        );
    }
    // HTTP/1.1 is the only version an HTTP/1 upgrade may use; every other
    // one is refused by the engine with its own message.
    let minor = u8::from(version == Version::HTTP_11);
    Request::new(method.as_str(), target, headers).with_minor_version(minor)
}

/// Copies checked header lines into `map`; `None` if one cannot be an
/// `http` header (a name `http` does not take), which the engine's checks
/// make unexpected.
fn fill(map: &mut HeaderMap, headers: &Headers) -> Option<()> {
    for (name, value) in headers.iter() {
        let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
        let value = HeaderValue::from_bytes(value.as_bytes()).ok()?;
        map.append(name, value);
    }
    Some(())
}

/// The `101 Switching Protocols` response of an accepted upgrade, or
/// `None` when a header could not be converted.
pub(crate) fn switching_response(parts: &AcceptedParts) -> Option<http::Response<Full<Bytes>>> {
    let mut response = http::Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    fill(response.headers_mut(), &parts.headers)?;
    Some(response)
}

/// The response of a refused handshake: its status, headers and text body,
/// and `Connection: close`, as duplex's own server answers: a client that
/// asked to switch protocols and was refused starts over on a new
/// connection (hyper then closes this one after the response).
pub(crate) fn rejection_response(parts: &RejectedParts) -> http::Response<Full<Bytes>> {
    let mut response = http::Response::new(Full::new(Bytes::from(parts.body.clone())));
    *response.status_mut() =
        StatusCode::from_u16(parts.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    if fill(response.headers_mut(), &parts.headers).is_none() {
        // The engine's own lines are constants; this is unreachable in
        // practice, and a bare 500 is still an answer.
        *response.headers_mut() = HeaderMap::new();
        *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    }
    response
}

/// Whether one of the comma-separated values of `name` is `token`
/// (case-insensitive), as `Upgrade: websocket` and `Connection: keep-alive,
/// Upgrade` are read.
pub(crate) fn has_token(headers: &HeaderMap, name: http::header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

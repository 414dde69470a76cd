//! `duplex serve --publish-token TOKEN`: `POST /publish/<room>` publishes
//! its body as one message into a room, so that a backend can notify the
//! browsers there without a WebSocket of its own.
//!
//! - `Authorization: Bearer TOKEN` is required, compared in constant
//!   time; a missing or wrong one gets 401 with `WWW-Authenticate: Bearer`
//!   and nothing is published.
//! - The body is the message. `application/octet-stream` makes it a
//!   binary message; no `Content-Type`, `text/*`, `application/json` and
//!   `application/x-www-form-urlencoded` (what `curl -d` sends) make it a
//!   text message, and the body must then be UTF-8 (else 400; a `charset`
//!   other than UTF-8 or US-ASCII gets 415). Any other type gets 415.
//! - 202 with `{"recipients":N}`: how many members of the room on this
//!   node it was queued for (0 when the room is empty or does not exist).
//! - Other methods get 405 with `Allow: POST`. Limits (size: 413, time:
//!   408, framing: 400/411) are the server's, see
//!   [`Server::http_with_body`](duplex::Server::http_with_body).

use duplex::{HttpRequest, HttpResponse, Hub, Message, Rooms, Utf8Bytes};
use subtle::{ConstantTimeEq, ConstantTimeLess};

/// The route of the endpoint.
pub const PATTERN: &str = "/publish/{room}";

/// The bearer token publishers must present (never printed).
#[derive(Clone)]
pub struct PublishToken(String);

impl std::fmt::Debug for PublishToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PublishToken(..)")
    }
}

/// `--publish-token`: a non-empty token of the bearer syntax (RFC 6750:
/// letters, digits and `-._~+/`, then optional `=` padding), so that any
/// HTTP client can send it as given.
pub fn parse_token(text: &str) -> Result<PublishToken, String> {
    let body = text.trim_end_matches('=');
    let valid = !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b));
    if !valid {
        return Err(
            "a publish token is one or more of A-Z a-z 0-9 - . _ ~ + / (then = padding)".into(),
        );
    }
    Ok(PublishToken(text.to_string()))
}

/// The route's handler: answers each request with [`answer`] on the
/// server's rooms.
pub fn route(token: PublishToken) -> impl Fn(&HttpRequest, &Hub) -> HttpResponse + Send + Sync {
    move |req, hub| answer(&token, req, hub.rooms())
}

/// Checks and publishes one request.
fn answer(token: &PublishToken, req: &HttpRequest, rooms: &Rooms) -> HttpResponse {
    if req.method() != "POST" {
        return HttpResponse::text(405, "publish with POST\n").with_header("Allow", "POST");
    }
    if let Err(refusal) = authorize(token, req) {
        return refusal;
    }
    let message = match message_of(req) {
        Ok(message) => message,
        Err(refusal) => return refusal,
    };
    // The route matched, so the room is a non-empty path segment.
    let room = req.param("room").unwrap_or_default();
    let recipients = rooms.publish(room, &message);
    HttpResponse::json(202, format!("{{\"recipients\":{recipients}}}\n"))
}

/// Accepts exactly one `Authorization: Bearer <token>` with our token.
fn authorize(token: &PublishToken, req: &HttpRequest) -> Result<(), HttpResponse> {
    let unauthorized = |challenge: &str, why: &str| {
        HttpResponse::text(401, format!("{why}\n")).with_header("WWW-Authenticate", challenge)
    };
    let mut given = req.headers().get_all("authorization");
    let (Some(given), None) = (given.next(), given.next()) else {
        return Err(unauthorized(
            "Bearer realm=\"publish\"",
            "Authorization: Bearer <token> is required",
        ));
    };
    let presented = given
        .trim()
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, credentials)| credentials.trim());
    match presented {
        Some(presented) if same_token(presented.as_bytes(), token.0.as_bytes()) => Ok(()),
        _ => Err(unauthorized(
            "Bearer realm=\"publish\", error=\"invalid_token\"",
            "invalid token",
        )),
    }
}

/// Compares in time that depends only on the expected token's length:
/// neither where a guess goes wrong nor how long it is shows.
fn same_token(given: &[u8], expected: &[u8]) -> bool {
    let mut equal = (given.len() as u64).ct_eq(&(expected.len() as u64));
    for (i, want) in expected.iter().enumerate() {
        // Bytes past the end of a shorter guess compare as 0, and the
        // index check itself is done without a branch on secret data.
        let inside = (i as u64).ct_lt(&(given.len() as u64));
        let got = given.get(i).copied().unwrap_or(0);
        equal &= got.ct_eq(want) & inside;
    }
    equal.into()
}

/// The message the body makes, by its `Content-Type`.
fn message_of(req: &HttpRequest) -> Result<Message, HttpResponse> {
    let body = req.body().clone();
    let Some(content_type) = req.header("content-type") else {
        return text(body);
    };
    let mut parts = content_type.split(';');
    let media_type = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let charset = parts
        .filter_map(|p| p.split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("charset"))
        .map(|(_, value)| value.trim().trim_matches('"').to_ascii_lowercase());
    match media_type.as_str() {
        "application/octet-stream" => Ok(Message::binary(body)),
        t if t.starts_with("text/")
            || t == "application/json"
            || t == "application/x-www-form-urlencoded" =>
        {
            match charset.as_deref() {
                None | Some("utf-8" | "utf8" | "us-ascii") => text(body),
                Some(other) => Err(HttpResponse::text(
                    415,
                    format!("charset {other} is not supported: send UTF-8\n"),
                )),
            }
        }
        _ => Err(HttpResponse::text(
            415,
            "send text/*, application/json or no Content-Type for a text message, \
             application/octet-stream for a binary one\n",
        )),
    }
}

/// A text message, if the body is UTF-8 (checked, not copied).
fn text(body: bytes::Bytes) -> Result<Message, HttpResponse> {
    Utf8Bytes::try_from_bytes(body)
        .map(Message::text)
        .map_err(|_| {
            HttpResponse::text(
                400,
                "the body is not UTF-8: send binary data as application/octet-stream\n",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_exactly() {
        assert!(same_token(b"s3cret", b"s3cret"));
        for wrong in [
            &b""[..],
            b"s3cre",
            b"s3cret!",
            b"S3cret",
            b"x3cret",
            b"s3cre\0",
        ] {
            assert!(!same_token(wrong, b"s3cret"), "{wrong:?}");
        }
    }

    #[test]
    fn token_syntax() {
        assert!(parse_token("abc-DEF_0.9~+/==").is_ok());
        for bad in ["", "===", "a b", "a\r\nb", "tök", "a,b"] {
            assert!(parse_token(bad).is_err(), "{bad:?}");
        }
    }
}

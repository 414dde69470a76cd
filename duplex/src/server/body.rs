//! Plain HTTP routes with a body ([`Server::http_with_body`]): how the
//! request frames its body (RFC 9112 §6), reading it within the server's
//! limits, and answering.
//!
//! Memory stays bounded whatever the request claims: a declared length
//! over the limit is refused before any of the body is read, the buffer
//! grows with what actually arrives (never past the limit), and what is
//! held beyond the per-connection allowance counts against the hub's
//! [`MemoryBudget`](crate::MemoryBudget).

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use duplex_proto::handshake::server::{self as hs, Request};
use duplex_proto::HandshakeError;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::chunked::{too_large, Chunk, ChunkedDecoder};
use super::http_request::HttpRequest;
use super::respond::respond;
use super::HttpBodyRoute;
use crate::budget::{Direction, Reservation};
use crate::hub::Hub;
use crate::request::UpgradeRequest;

/// The most bytes read from the socket at once.
const READ_CHUNK: usize = 16 * 1024;

/// How long a refused request's unread body is read and dropped after
/// the answer, so that closing does not reset the connection before the
/// client has read why (a close with unread data sends a TCP reset).
const DRAIN_TIME: Duration = Duration::from_secs(1);

/// How a request says where its body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body.
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// Why no body was read.
enum BodyError {
    /// Answered with this status, then the connection is closed.
    Refused(HandshakeError),
    /// The socket failed or the client closed it before the body ended.
    Gone,
}

impl From<HandshakeError> for BodyError {
    fn from(error: HandshakeError) -> Self {
        BodyError::Refused(error)
    }
}

/// The limits a body is read under.
#[derive(Debug, Clone, Copy)]
pub(super) struct BodyLimits {
    /// The largest body, decoded ([`Server::max_request_body`](super::Server::max_request_body)).
    pub(super) max_body: usize,
    /// The largest trailer section of a chunked body (the head's limit).
    pub(super) max_trailers: usize,
}

/// Reads the body of `request` (whose first bytes may be in `leftover`)
/// until `deadline`, hands it to `route` and writes the answer; every
/// failure is answered with its status (408 for a body that does not
/// arrive in time), and the connection is closed.
pub(super) async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    request: UpgradeRequest,
    leftover: Bytes,
    route: &HttpBodyRoute,
    hub: &Arc<Hub>,
    limits: BodyLimits,
    deadline: Instant,
) {
    let mut reservation = Reservation::new(hub.memory_budget().clone());
    let reading = read_body(stream, request.http(), leftover, limits, &mut reservation);
    match tokio::time::timeout_at(deadline, reading).await {
        Ok(Ok(body)) => {
            let request = HttpRequest::new(request, body);
            let r = route(&request, hub);
            drop(request);
            drop(reservation);
            let response = hs::http_response(r.status, &r.content_type, &r.body, &r.headers);
            respond(stream, &response).await;
        }
        Ok(Err(BodyError::Refused(error))) => {
            drop(reservation);
            respond(stream, &hs::reject_response(&error)).await;
            drain(stream).await;
        }
        Ok(Err(BodyError::Gone)) => {}
        Err(_) => {
            let error = HandshakeError::new(408, "the request body did not arrive in time");
            respond(stream, &hs::reject_response(&error)).await;
        }
    }
}

/// Reads and drops what the client still sends, until it closes or for
/// [`DRAIN_TIME`], through a small fixed buffer.
async fn drain<S: AsyncRead + Unpin>(stream: &mut S) {
    let mut scratch = [0u8; 16 * 1024];
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while let Ok(1..) = stream.read(&mut scratch).await {}
    })
    .await;
}

/// How `request` frames its body. Both `Content-Length` and
/// `Transfer-Encoding`, a bad or conflicting length, and a transfer coding
/// that does not end with `chunked` are refused with 400 (the body's end
/// would be ambiguous); other codings before `chunked` with 501; a POST,
/// PUT or PATCH that frames no body at all with 411.
fn framing(request: &Request) -> Result<Framing, HandshakeError> {
    let headers = request.headers();
    let chunked = headers.count("transfer-encoding") > 0;
    let sized = headers.count("content-length") > 0;
    if chunked && sized {
        return Err(HandshakeError::new(
            400,
            "both Content-Length and Transfer-Encoding: the body's end is ambiguous",
        ));
    }
    if chunked {
        let codings: Vec<&str> = headers.tokens("transfer-encoding").collect();
        return match codings.as_slice() {
            [only] if only.eq_ignore_ascii_case("chunked") => Ok(Framing::Chunked),
            [.., last] if last.eq_ignore_ascii_case("chunked") => Err(HandshakeError::new(
                501,
                "only the chunked transfer coding is supported",
            )),
            _ => Err(HandshakeError::new(
                400,
                "Transfer-Encoding must end with chunked",
            )),
        };
    }
    if sized {
        let mut length = None;
        for value in headers.get_all("content-length").flat_map(|v| v.split(',')) {
            let value = value.trim();
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(HandshakeError::new(400, "invalid Content-Length"));
            }
            // Digits only: a number too large for u64 is simply too large.
            let n = value.parse::<u64>().unwrap_or(u64::MAX);
            if length.is_some_and(|l| l != n) {
                return Err(HandshakeError::new(
                    400,
                    "conflicting Content-Length values",
                ));
            }
            length = Some(n);
        }
        return Ok(Framing::Length(length.unwrap_or(0)));
    }
    match request.method() {
        "POST" | "PUT" | "PATCH" => Err(HandshakeError::new(
            411,
            "a request with a body needs Content-Length or Transfer-Encoding: chunked",
        )),
        _ => Ok(Framing::Empty),
    }
}

/// Reads the whole body within `limits`.
async fn read_body<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    request: &Request,
    leftover: Bytes,
    limits: BodyLimits,
    reservation: &mut Reservation,
) -> Result<Bytes, BodyError> {
    match framing(request)? {
        Framing::Empty => {
            answer_expect(stream, request, false).await?;
            Ok(Bytes::new())
        }
        Framing::Length(n) if n > limits.max_body as u64 => {
            Err(too_large(limits.max_body as u64).into())
        }
        Framing::Length(n) => {
            answer_expect(stream, request, n > 0).await?;
            read_sized(stream, leftover, n as usize, reservation).await
        }
        Framing::Chunked => {
            answer_expect(stream, request, true).await?;
            read_chunked(stream, leftover, limits, reservation).await
        }
    }
}

/// Answers `Expect: 100-continue` (when a body is to come) so that a
/// client waiting for it sends the body; any other expectation gets 417.
async fn answer_expect<S: AsyncWrite + Unpin>(
    stream: &mut S,
    request: &Request,
    body_follows: bool,
) -> Result<(), BodyError> {
    let Some(expect) = request.headers().get("expect") else {
        return Ok(());
    };
    if !expect.trim().eq_ignore_ascii_case("100-continue") {
        let error = HandshakeError::new(417, "only Expect: 100-continue is understood");
        return Err(error.into());
    }
    if body_follows {
        stream
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .await
            .map_err(|_| BodyError::Gone)?;
        stream.flush().await.map_err(|_| BodyError::Gone)?;
    }
    Ok(())
}

/// Reads a body of exactly `n` bytes (`n` within the limit).
async fn read_sized<S: AsyncRead + Unpin>(
    stream: &mut S,
    leftover: Bytes,
    n: usize,
    reservation: &mut Reservation,
) -> Result<Bytes, BodyError> {
    if leftover.len() >= n {
        // Bytes after the body are ignored: the connection closes after
        // the answer.
        return Ok(leftover.slice(..n));
    }
    let mut body = Vec::new();
    make_room(&mut body, leftover.len(), n, reservation)?;
    body.extend_from_slice(&leftover);
    while body.len() < n {
        let want = (n - body.len()).min(READ_CHUNK);
        make_room(&mut body, want, n, reservation)?;
        let read = (&mut *stream)
            .take(want as u64)
            .read_buf(&mut body)
            .await
            .map_err(|_| BodyError::Gone)?;
        if read == 0 {
            return Err(BodyError::Gone);
        }
    }
    Ok(Bytes::from(body))
}

/// Reads and decodes a chunked body.
async fn read_chunked<S: AsyncRead + Unpin>(
    stream: &mut S,
    leftover: Bytes,
    limits: BodyLimits,
    reservation: &mut Reservation,
) -> Result<Bytes, BodyError> {
    let mut decoder = ChunkedDecoder::new(limits.max_body, limits.max_trailers);
    // Framing and data not yet decoded: at most a read and a partial line.
    let mut raw = BytesMut::from(&leftover[..]);
    let mut body = Vec::new();
    loop {
        let (used, what) = decoder.decode(&raw)?;
        match what {
            Chunk::Data(n) => {
                make_room(&mut body, n, decoder.declared(), reservation)?;
                body.extend_from_slice(&raw[used..used + n]);
                raw.advance(used + n);
            }
            Chunk::Incomplete => {
                raw.advance(used);
                raw.reserve(READ_CHUNK);
                let read = (&mut *stream)
                    .take(READ_CHUNK as u64)
                    .read_buf(&mut raw)
                    .await
                    .map_err(|_| BodyError::Gone)?;
                if read == 0 {
                    return Err(BodyError::Gone);
                }
            }
            Chunk::End => return Ok(Bytes::from(body)),
        }
    }
}

/// Makes room in `body` for `want` more bytes, growing it geometrically
/// (few copies) but never past `bound`, the size the request has
/// announced (itself within the limit), and counts the capacity against
/// the memory budget: 503 when the budget cannot cover it.
fn make_room(
    body: &mut Vec<u8>,
    want: usize,
    bound: usize,
    reservation: &mut Reservation,
) -> Result<(), HandshakeError> {
    let needed = body.len() + want;
    if body.capacity() >= needed {
        return Ok(());
    }
    let target = (body.capacity() * 2).max(needed).min(bound.max(needed));
    if !reservation.hold(Direction::Incoming, target) {
        return Err(HandshakeError::new(
            503,
            "the server's memory budget cannot hold this request body now",
        ));
    }
    body.reserve_exact(target - body.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use duplex_proto::handshake::Headers;

    fn framing_of(method: &str, headers: &[(&str, &str)]) -> Result<Framing, u16> {
        let mut h = Headers::default();
        for (name, value) in headers {
            h.push(*name, *value);
        }
        framing(&Request::new(method, "/", h)).map_err(|e| e.status().unwrap())
    }

    #[test]
    fn framing_follows_rfc_9112() {
        use Framing::*;
        assert_eq!(framing_of("GET", &[]), Ok(Empty));
        assert_eq!(framing_of("DELETE", &[]), Ok(Empty));
        assert_eq!(framing_of("POST", &[]), Err(411));
        assert_eq!(
            framing_of("POST", &[("Content-Length", "12")]),
            Ok(Length(12))
        );
        assert_eq!(
            framing_of("POST", &[("Content-Length", "0")]),
            Ok(Length(0))
        );
        assert_eq!(
            framing_of(
                "POST",
                &[("Content-Length", "7"), ("content-length", "7, 7")]
            ),
            Ok(Length(7))
        );
        let huge = "9".repeat(40);
        assert_eq!(
            framing_of("POST", &[("Content-Length", huge.as_str())]),
            Ok(Length(u64::MAX))
        );
        for bad in ["", "-1", "+5", "1 2", "0x10", "5, 6", "1e3"] {
            assert_eq!(
                framing_of("POST", &[("Content-Length", bad)]),
                Err(400),
                "{bad:?}"
            );
        }
        assert_eq!(
            framing_of("POST", &[("Content-Length", "5"), ("Content-Length", "6")]),
            Err(400)
        );
        assert_eq!(
            framing_of("POST", &[("Transfer-Encoding", "Chunked")]),
            Ok(Chunked)
        );
        assert_eq!(
            framing_of("POST", &[("Transfer-Encoding", "gzip, chunked")]),
            Err(501)
        );
        assert_eq!(
            framing_of("POST", &[("Transfer-Encoding", "gzip")]),
            Err(400)
        );
        assert_eq!(
            framing_of("POST", &[("Transfer-Encoding", "chunked, gzip")]),
            Err(400)
        );
        assert_eq!(
            framing_of(
                "POST",
                &[("Transfer-Encoding", "chunked"), ("Content-Length", "5")]
            ),
            Err(400)
        );
    }

    #[test]
    fn room_grows_geometrically_up_to_the_bound_only() {
        let budget = crate::MemoryBudget::new(1 << 30);
        let mut reservation = Reservation::new(budget);
        let mut body = Vec::new();
        make_room(&mut body, 1000, 10_000, &mut reservation).unwrap();
        assert!(body.capacity() >= 1000 && body.capacity() < 10_000);
        body.resize(1000, 0);
        make_room(&mut body, 1, 10_000, &mut reservation).unwrap();
        assert!(body.capacity() >= 2000);
        body.resize(9_000, 0);
        make_room(&mut body, 1000, 10_000, &mut reservation).unwrap();
        assert_eq!(body.capacity(), 10_000);
    }

    #[test]
    fn the_memory_budget_is_charged_beyond_the_allowance() {
        let budget = crate::MemoryBudget::new(100 << 10);
        let mut reservation = Reservation::new(budget.clone());
        let mut body = Vec::new();
        let big = 1 << 20;
        make_room(&mut body, 128 << 10, big, &mut reservation).unwrap();
        assert!(budget.used() > 0);
        body.resize(128 << 10, 0);
        let refused = make_room(&mut body, 128 << 10, big, &mut reservation).unwrap_err();
        assert_eq!(refused.status(), Some(503));
        drop(reservation);
        assert_eq!(budget.used(), 0);
    }
}

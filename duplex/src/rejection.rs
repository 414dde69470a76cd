//! The body of a refused handshake: servers say there why they refused (a
//! JSON error, "token expired", a login page), so the client reads a
//! bounded part of it into the error ([`HandshakeError::with_body`]).

use std::time::Duration;

use duplex_proto::handshake::Headers;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The most body bytes read: enough for an error message, not for a page.
pub(crate) const MAX_BODY: usize = 4096;

/// How long the rest of a body is waited for: a server that keeps the
/// connection open without `Content-Length` must not hold the error back.
const BODY_WAIT: Duration = Duration::from_secs(2);

/// Reads the body that follows a response head with `headers`, of which
/// `already` arrived with the head: up to `Content-Length` or the end of
/// the stream, at most [`MAX_BODY`] bytes and [`BODY_WAIT`], de-chunked
/// when it is chunked, as (lossy) UTF-8 with surrounding whitespace
/// trimmed. `None` when there is none.
pub(crate) async fn read_body<S: AsyncRead + Unpin>(
    stream: &mut S,
    headers: &Headers,
    already: &[u8],
) -> Option<String> {
    let declared: Option<usize> = headers
        .get("content-length")
        .and_then(|v| v.trim().parse().ok());
    let chunked = headers
        .get_all("transfer-encoding")
        .any(|v| v.to_ascii_lowercase().contains("chunked"));
    let want = declared.unwrap_or(MAX_BODY).min(MAX_BODY);
    let mut body = already[..already.len().min(want)].to_vec();
    let _ = tokio::time::timeout(BODY_WAIT, async {
        let mut chunk = [0u8; 1024];
        while body.len() < want && !(chunked && body.ends_with(b"0\r\n\r\n")) {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => body.extend_from_slice(&chunk[..n.min(want - body.len())]),
            }
        }
    })
    .await;
    if chunked {
        body = dechunk(&body);
    }
    let text = String::from_utf8_lossy(&body).trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// The data of a chunked body, as far as it is complete.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut data = Vec::new();
    while let Some(end) = raw.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&raw[..end]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            break;
        };
        raw = &raw[end + 2..];
        if size == 0 {
            break;
        }
        let take = size.min(raw.len());
        data.extend_from_slice(&raw[..take]);
        raw = raw.get(take + 2..).unwrap_or(&[]);
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bodies_are_read_within_their_length_and_the_bound() {
        let mut headers = Headers::default();
        headers.push("Content-Length", "5");
        let mut rest: &[u8] = b"lo, and more";
        assert_eq!(
            read_body(&mut rest, &headers, b"hel").await.as_deref(),
            Some("hello")
        );
        let mut chunked = Headers::default();
        chunked.push("Transfer-Encoding", "chunked");
        let mut rest: &[u8] = b"n\r\n3\r\nied\r\n0\r\n\r\n";
        assert_eq!(
            read_body(&mut rest, &chunked, b"3\r\nde").await.as_deref(),
            Some("denied")
        );
        let mut long: &[u8] = &[b'x'; 10_000];
        let body = read_body(&mut long, &Headers::default(), b"")
            .await
            .unwrap();
        assert_eq!(body.len(), MAX_BODY);
        let mut empty: &[u8] = b"";
        assert_eq!(read_body(&mut empty, &Headers::default(), b"").await, None);
    }
}

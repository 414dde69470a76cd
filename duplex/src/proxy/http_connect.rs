//! The HTTP `CONNECT` tunnel (RFC 9110 §9.3.6): ask, read the reply
//! head, hand the socket back.
//!
//! The reply is read with `peek` and then consumed exactly up to the end
//! of its head, so bytes that follow it (the target's, already in the
//! tunnel) stay in the socket for whoever reads next, and the stream stays
//! a plain `TcpStream` (TLS for `wss://` wraps it as it wraps a direct
//! connection).

use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::error::ProxyError;
use super::url::Proxy;

/// The most a reply head may take; real ones are a few hundred bytes.
const MAX_REPLY_HEAD: usize = 16 * 1024;
/// The most header lines a reply head may have.
const MAX_REPLY_HEADERS: usize = 64;

/// Asks `proxy` (connected as `tcp`) for a tunnel to `host:port`.
pub(super) async fn tunnel(
    proxy: &Proxy,
    mut tcp: TcpStream,
    host: &str,
    port: u16,
) -> Result<TcpStream, ProxyError> {
    let request = request(proxy, host, port);
    let io = |e: std::io::Error| ProxyError::bad_reply(proxy, format!("during CONNECT: {e}"));
    tcp.write_all(request.as_bytes()).await.map_err(io)?;
    let head = read_head(&mut tcp).await.map_err(|e| match e {
        HeadError::Io(e) => io(e),
        HeadError::Closed => {
            ProxyError::bad_reply(proxy, "the proxy closed the connection before replying")
        }
        HeadError::TooLarge => ProxyError::bad_reply(
            proxy,
            format!("the reply to CONNECT is larger than {MAX_REPLY_HEAD} bytes"),
        ),
    })?;
    let mut headers = [httparse::EMPTY_HEADER; MAX_REPLY_HEADERS];
    let mut reply = httparse::Response::new(&mut headers);
    match reply.parse(&head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) | Err(_) => {
            return Err(ProxyError::bad_reply(
                proxy,
                "the reply to CONNECT is not an HTTP response",
            ))
        }
    }
    let status = reply.code.unwrap_or(0);
    if (200..300).contains(&status) {
        return Ok(tcp);
    }
    Err(ProxyError::Refused {
        proxy: proxy.to_string(),
        status,
        reason: reply.reason.unwrap_or("").to_string(),
        credentials_sent: proxy.credentials().is_some(),
    })
}

/// The `CONNECT` request, with Basic credentials when the proxy URL has
/// them.
fn request(proxy: &Proxy, host: &str, port: u16) -> String {
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some((user, password)) = proxy.credentials() {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        request.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
    }
    request.push_str("\r\n");
    request
}

enum HeadError {
    Io(std::io::Error),
    Closed,
    TooLarge,
}

/// Reads up to and including the blank line that ends a reply head, and
/// not one byte more.
async fn read_head(tcp: &mut TcpStream) -> Result<Vec<u8>, HeadError> {
    let mut head = Vec::with_capacity(256);
    let mut chunk = [0u8; 1024];
    loop {
        let n = tcp.peek(&mut chunk).await.map_err(HeadError::Io)?;
        if n == 0 {
            return Err(HeadError::Closed);
        }
        let before = head.len();
        head.extend_from_slice(&chunk[..n]);
        // The end may straddle what was read before and this chunk.
        let from = before.saturating_sub(3);
        let take = match head[from..].windows(4).position(|w| w == b"\r\n\r\n") {
            Some(at) => from + at + 4 - before,
            None => n,
        };
        head.truncate(before + take);
        // Consumes exactly the bytes kept: they are in the socket already.
        tcp.read_exact(&mut chunk[..take])
            .await
            .map_err(HeadError::Io)?;
        if head.ends_with(b"\r\n\r\n") {
            return Ok(head);
        }
        if head.len() > MAX_REPLY_HEAD {
            return Err(HeadError::TooLarge);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A proxy that writes `reply` in pieces of `piece` bytes, then
    /// `after` at once; returns the request it read.
    async fn run(
        reply: &'static [u8],
        piece: usize,
        after: &'static [u8],
    ) -> (Result<TcpStream, ProxyError>, String) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy =
            Proxy::parse(&format!("http://u:p@{}", listener.local_addr().unwrap())).unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            while !request.ends_with(b"\r\n\r\n") {
                let mut b = [0u8; 1];
                s.read_exact(&mut b).await.unwrap();
                request.push(b[0]);
            }
            let mut all = reply.to_vec();
            all.extend_from_slice(after);
            if piece >= reply.len() {
                s.write_all(&all).await.unwrap();
            } else {
                for part in reply.chunks(piece) {
                    s.write_all(part).await.unwrap();
                    s.flush().await.unwrap();
                    tokio::task::yield_now().await;
                }
                s.write_all(after).await.unwrap();
            }
            // Keeps the socket open until the client is done.
            let _ = s.read(&mut [0u8; 1]).await;
            String::from_utf8(request).unwrap()
        });
        let tcp = TcpStream::connect((proxy.host(), proxy.port()))
            .await
            .unwrap();
        let result = tunnel(&proxy, tcp, "target.example", 443).await;
        let result = match result {
            Ok(mut tcp) => {
                let mut rest = vec![0u8; after.len()];
                tcp.read_exact(&mut rest).await.unwrap();
                assert_eq!(rest, after, "the bytes after the reply stay in the tunnel");
                tcp.shutdown().await.unwrap();
                Ok(tcp)
            }
            Err(e) => Err(e),
        };
        (result, server.await.unwrap())
    }

    #[tokio::test]
    async fn bytes_after_the_reply_are_not_read() {
        let (result, request) = run(
            b"HTTP/1.1 200 Connection established\r\nVia: t\r\n\r\n",
            1000,
            b"\x16\x03\x01tunnel",
        )
        .await;
        result.unwrap();
        assert_eq!(
            request,
            "CONNECT target.example:443 HTTP/1.1\r\nHost: target.example:443\r\n\
             Proxy-Authorization: Basic dTpw\r\n\r\n"
        );
    }

    #[tokio::test]
    async fn a_reply_arriving_byte_by_byte() {
        let (result, _) = run(b"HTTP/1.0 200 OK\r\n\r\n", 1, b"after").await;
        result.unwrap();
    }

    #[tokio::test]
    async fn refusals_name_the_status() {
        let (result, _) = run(
            b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n",
            5,
            b"",
        )
        .await;
        let e = result.unwrap_err();
        assert_eq!(e.status(), Some(407));
        assert!(e.to_string().contains("were not accepted"), "{e}");
        let (result, _) = run(b"SSH-2.0-OpenSSH\r\n\r\n", 1000, b"").await;
        assert!(matches!(result.unwrap_err(), ProxyError::BadReply { .. }));
    }

    #[test]
    fn ipv6_targets_in_brackets() {
        let proxy = Proxy::parse("http://127.0.0.1:1").unwrap();
        assert_eq!(
            request(&proxy, "::1", 80),
            "CONNECT [::1]:80 HTTP/1.1\r\nHost: [::1]:80\r\n\r\n"
        );
    }
}

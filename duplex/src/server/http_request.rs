//! [`HttpRequest`]: a plain HTTP request with its body, as a route
//! registered with [`Server::http_with_body`](crate::Server::http_with_body)
//! sees it.

use bytes::Bytes;
use duplex_proto::handshake::Headers;

use crate::request::UpgradeRequest;

/// A plain HTTP request whose body the server has read, within its
/// limits: [`Server::max_request_body`](crate::Server::max_request_body)
/// and the handshake timeout.
///
/// The head is the same [`UpgradeRequest`] every route sees (path, route
/// parameters, query, headers, peer address); the body is the request's
/// content, decoded from chunked transfer coding if it was sent so.
///
/// ```
/// use duplex::{Headers, HttpRequest, UpgradeRequest};
///
/// let mut headers = Headers::default();
/// headers.push("Content-Type", "text/plain");
/// let head = UpgradeRequest::new(
///     duplex::proto::handshake::server::Request::new("POST", "/notes", headers),
///     Default::default(),
///     None,
/// );
/// let req = HttpRequest::new(head, "remember the milk".into());
/// assert_eq!(req.method(), "POST");
/// assert_eq!(req.header("content-type"), Some("text/plain"));
/// assert_eq!(&req.body()[..], b"remember the milk");
/// ```
#[derive(Debug, Clone)]
pub struct HttpRequest {
    head: UpgradeRequest,
    body: Bytes,
}

impl HttpRequest {
    /// A request from its head and body (for tests, or an acceptor of
    /// one's own).
    pub fn new(head: UpgradeRequest, body: Bytes) -> HttpRequest {
        HttpRequest { head, body }
    }

    /// The HTTP method (`POST`, `GET`, ...), as sent.
    pub fn method(&self) -> &str {
        self.head.http().method()
    }

    /// The request path, without the query.
    pub fn path(&self) -> &str {
        self.head.path()
    }

    /// A route parameter such as `room` in `/publish/{room}`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.head.param(name)
    }

    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.header(name)
    }

    /// The request headers.
    pub fn headers(&self) -> &Headers {
        self.head.headers()
    }

    /// The body (empty when the request had none). Cloning it is cheap:
    /// it can become a [`Message`](crate::Message) without a copy.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The head: query, peer address and everything else.
    pub fn head(&self) -> &UpgradeRequest {
        &self.head
    }
}

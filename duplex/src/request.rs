//! [`UpgradeRequest`]: what a server route sees of the client's request.

use std::net::SocketAddr;

use duplex_proto::handshake::server::Request;
use duplex_proto::handshake::Headers;

use crate::router::Params;

/// The HTTP request that opened a connection: path, route parameters,
/// query, headers and the peer's address. Upgrade hooks, routes and
/// handlers all see it.
///
/// ```no_run
/// use duplex::{Server, UpgradeDecision};
///
/// # async fn run() -> duplex::Result<()> {
/// let server = Server::new()
///     .on_upgrade(|req| {
///         // wss://host/chat/lobby?name=ada, from a page of ours
///         if req.origin() != Some("https://chat.example") {
///             return UpgradeDecision::reject(403, "cross-site request");
///         }
///         match req.query_param("name") {
///             Some(_) => UpgradeDecision::accept(),
///             None => UpgradeDecision::reject(400, "name= is required"),
///         }
///     })
///     .route("/chat/{room}", |mut ws, req| async move {
///         let room = req.param("room").unwrap_or("lobby").to_string();
///         let name = req.query_param("name").unwrap_or_default();
///         let _ = ws.send(format!("{name} joined {room}")).await;
///     });
/// server.bind("127.0.0.1:8080").await?.serve().await
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct UpgradeRequest {
    request: Request,
    params: Params,
    remote_addr: Option<SocketAddr>,
}

impl UpgradeRequest {
    /// A request from its parsed head, the route parameters its path
    /// matched, and the peer's address: for an acceptor other than
    /// [`Server`](crate::Server) that hands connections to a
    /// [`Hub`](crate::Hub).
    pub fn new(request: Request, params: Params, remote_addr: Option<SocketAddr>) -> Self {
        UpgradeRequest {
            request,
            params,
            remote_addr,
        }
    }

    /// A `GET` of `target` (path and query) with no headers, no route
    /// parameters and no peer address: for running a handler over a
    /// connection that was not accepted by a [`Server`](crate::Server)
    /// (tests, in-memory pipes).
    pub fn for_path(target: &str) -> UpgradeRequest {
        UpgradeRequest::new(
            Request::new("GET", target, Headers::default()),
            Params::default(),
            None,
        )
    }

    /// The request path, without the query.
    pub fn path(&self) -> &str {
        self.request.path()
    }

    /// The raw query string, if any.
    pub fn query(&self) -> Option<&str> {
        self.request.query()
    }

    /// The first value of a query parameter (percent-decoded).
    pub fn query_param(&self, name: &str) -> Option<String> {
        let query = self.query()?;
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// A route parameter such as `room` in `/chat/{room}`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name)
    }

    /// All route parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The request headers.
    pub fn headers(&self) -> &Headers {
        self.request.headers()
    }

    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.request.headers().get(name)
    }

    /// The `Origin` header (sent by browsers).
    pub fn origin(&self) -> Option<&str> {
        self.request.origin()
    }

    /// The subprotocols the client offers.
    pub fn protocols(&self) -> Vec<&str> {
        self.request.protocols()
    }

    /// The client's address.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.remote_addr
    }

    /// The parsed HTTP request.
    pub fn http(&self) -> &Request {
        &self.request
    }
}

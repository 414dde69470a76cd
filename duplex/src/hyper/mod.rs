//! WebSockets inside a hyper 1 server (feature `hyper`): the same port,
//! the same service, duplex's handshake, engine and Handler API.
//!
//! [`upgrade`] answers an upgrade request with the response to return
//! from the service (`101 Switching Protocols`, or the refusal duplex's
//! own [`Server`](crate::Server) would send: 400, 405, 426 with
//! `Sec-WebSocket-Version: 13`, ...) and an [`UpgradeFuture`] that
//! becomes the [`WebSocket`] once hyper has sent the
//! 101. Validation, subprotocol choice and `permessage-deflate` are the
//! engine's ([`duplex_proto::handshake::server::accept_parts`]); the
//! engine settings, keepalive, timeouts, memory budget and rooms are the
//! [`Hub`]'s that [`UpgradeConfig`] carries, so a hub shared with a
//! [`Server`](crate::Server) gives both the same limits and rooms.
//!
//! ```no_run
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use hyper::server::conn::http1;
//! use hyper::service::service_fn;
//! use hyper_util::rt::TokioIo;
//!
//! # async fn run() -> std::io::Result<()> {
//! let config = duplex::hyper::UpgradeConfig::new().protocols(["chat.v1"]);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! loop {
//!     let (tcp, _) = listener.accept().await?;
//!     let config = config.clone();
//!     let service = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
//!         let config = config.clone();
//!         async move {
//!             if !duplex::hyper::is_upgrade_request(&req) {
//!                 return Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from("a page"))));
//!             }
//!             Ok(match duplex::hyper::upgrade(&mut req, &config) {
//!                 Ok((response, socket)) => {
//!                     tokio::spawn(socket.run(|mut ws, _req| async move {
//!                         while let Some(Ok(message)) = ws.recv().await {
//!                             if message.is_data() && ws.send(message).await.is_err() {
//!                                 break;
//!                             }
//!                         }
//!                     }));
//!                     response
//!                 }
//!                 Err(rejection) => rejection.into_response(),
//!             })
//!         }
//!     });
//!     tokio::spawn(async move {
//!         // Without `.with_upgrades()` hyper never hands the connection over.
//!         let _ = http1::Builder::new()
//!             .serve_connection(TokioIo::new(tcp), service)
//!             .with_upgrades()
//!             .await;
//!     });
//! }
//! # }
//! ```
//!
//! ## Pitfalls
//!
//! - **`with_upgrades()`**: hyper's HTTP/1 `serve_connection(..)` only
//!   gives the connection up after a 101 when it is called with
//!   `.with_upgrades()` (`hyper_util`'s `auto::Builder` has
//!   `serve_connection_with_upgrades`; `axum::serve` does it for you).
//!   Without it the client gets its 101 and then nothing, and the
//!   [`UpgradeFuture`] fails with [`Error::Io`](crate::Error::Io).
//! - **Spawn, then return**: the [`UpgradeFuture`] resolves only after the
//!   service has returned the 101 response and hyper has written it, so
//!   awaiting it inside the service deadlocks the connection. Spawn it.
//! - **Request limits are hyper's**: hyper parsed the head, so
//!   duplex's [`HandshakeLimits`](duplex_proto::handshake::HandshakeLimits)
//!   and handshake timeout do not apply; set hyper's own
//!   (`max_buf_size`, `header_read_timeout`).
//! - **HTTP/1.1 only for now**: an HTTP/2 request is refused with 400.
//!   RFC 8441 (extended `CONNECT` with `:protocol = websocket`, answered
//!   with 200, on a server built with `enable_connect_protocol()`) will
//!   come through this same [`upgrade`], [`UpgradeFuture`] and socket type:
//!   hyper upgrades such a stream the same way.

pub(crate) mod convert;
mod pending;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use duplex_proto::handshake::server::{self as hs, Choice, RejectedParts};
use duplex_proto::handshake::{choose_protocol, AllowedOrigins, Headers, Preference};
use duplex_proto::{Config, HandshakeError};
use http_body_util::Full;
use hyper_util::rt::TokioIo;

use crate::hub::Hub;
use crate::request::UpgradeRequest;
use crate::router::Params;
use crate::websocket::WebSocket;

pub use pending::UpgradeFuture;

/// The socket of a connection hyper upgraded.
pub type HyperSocket = WebSocket<TokioIo<::hyper::upgrade::Upgraded>>;

/// The body type of the responses [`upgrade`] returns: the empty body of
/// the 101, or a refusal's short text.
pub type Body = Full<Bytes>;

/// Whether `request` asks for a WebSocket: an `Upgrade` header naming
/// `websocket` and a `Connection` header naming `upgrade`. Use it to send
/// other requests of the same path to the application's own handlers; a
/// request that says yes still has to pass [`upgrade`]'s checks (method,
/// version, key).
///
/// ```
/// let request = http::Request::get("/chat")
///     .header("Upgrade", "websocket")
///     .header("Connection", "keep-alive, Upgrade")
///     .body(())
///     .unwrap();
/// assert!(duplex::hyper::is_upgrade_request(&request));
/// assert!(!duplex::hyper::is_upgrade_request(&http::Request::get("/").body(()).unwrap()));
/// ```
pub fn is_upgrade_request<B>(request: &http::Request<B>) -> bool {
    convert::has_token(request.headers(), http::header::UPGRADE, "websocket")
        && convert::has_token(request.headers(), http::header::CONNECTION, "upgrade")
}

/// How [`upgrade`] accepts: the [`Hub`] whose settings and rooms the
/// connections get, the subprotocols the server speaks, and extra
/// response headers. Cheap to clone (share one per route).
#[derive(Debug, Clone)]
pub struct UpgradeConfig {
    hub: Arc<Hub>,
    /// The engine settings of these upgrades, when not the hub's.
    engine: Option<Arc<Config>>,
    protocols: Vec<String>,
    /// `None`: every origin may upgrade.
    origins: Option<AllowedOrigins>,
    headers: Headers,
}

impl Default for UpgradeConfig {
    fn default() -> Self {
        UpgradeConfig::new()
    }
}

impl UpgradeConfig {
    /// Accepting with a hub of default settings (engine
    /// [`Config::default`](crate::Config::default): `permessage-deflate`
    /// on with the `deflate` feature; 30 s message and write timeouts; no
    /// keepalive) and no subprotocol.
    pub fn new() -> UpgradeConfig {
        UpgradeConfig::with_hub(Arc::new(Hub::new()))
    }

    /// Accepting into `hub`: its engine settings (limits, compression),
    /// keepalive, timeouts, memory budget, queue limits and rooms (with
    /// their backplane, if any) apply; give the same hub to a
    /// [`Server`](crate::Server) ([`Server::hub`](crate::Server::hub)) and
    /// both run alike.
    pub fn with_hub(hub: Arc<Hub>) -> UpgradeConfig {
        UpgradeConfig {
            hub,
            engine: None,
            protocols: Vec::new(),
            origins: None,
            headers: Headers::default(),
        }
    }

    /// The subprotocols the server speaks. The agreed one is the first
    /// the client offers that is in this list (the client's order of
    /// preference, as in axum and Node `ws`); none when there is no
    /// common one, which is no error (RFC 6455 §4.2.2).
    pub fn protocols<I, S>(mut self, protocols: I) -> UpgradeConfig
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.protocols = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// Lets only pages of these origins (`scheme://host[:port]`) upgrade:
    /// another `Origin` is refused with 403, as
    /// [`Server::allowed_origins`](crate::Server::allowed_origins) does; a
    /// request without `Origin` (no browser) passes.
    ///
    /// ```
    /// let config = duplex::hyper::UpgradeConfig::new().allowed_origins(["https://chat.example"]);
    /// # let _ = config;
    /// ```
    pub fn allowed_origins<I, S>(mut self, origins: I) -> UpgradeConfig
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.origins = Some(AllowedOrigins::new(origins));
        self
    }

    /// Adds a header to every 101 response (e.g. `Set-Cookie`). One that
    /// could change the shape of the response makes [`upgrade`] refuse
    /// with 500 instead.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> UpgradeConfig {
        self.headers.push(name, value);
        self
    }

    /// Runs the connections in `hub` instead, keeping the rest.
    #[cfg(feature = "axum")]
    pub(crate) fn set_hub(&mut self, hub: Arc<Hub>) {
        self.hub = hub;
    }

    /// The hub the connections run in.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// The engine settings (limits, compression) of these upgrades,
    /// instead of the hub's [`Hub::config`]: e.g. a route that takes large
    /// uploads, or one without compression.
    pub fn config(mut self, config: Config) -> UpgradeConfig {
        self.engine = Some(Arc::new(config));
        self
    }

    /// The largest message these upgrades accept, with the largest frame
    /// to match ([`Config::with_max_message_size`]); a larger one closes
    /// the connection with 1009.
    pub fn max_message_size(self, bytes: usize) -> UpgradeConfig {
        let config = self.engine_config().as_ref().clone();
        self.config(config.with_max_message_size(bytes))
    }

    /// The largest frame these upgrades accept ([`Config::max_frame_size`]);
    /// a larger one closes the connection with 1009.
    pub fn max_frame_size(self, bytes: usize) -> UpgradeConfig {
        let mut config = self.engine_config().as_ref().clone();
        config.max_frame_size = bytes;
        self.config(config)
    }

    /// The engine settings upgrades get: [`UpgradeConfig::config`]'s, or
    /// the hub's.
    pub fn engine_config(&self) -> &Arc<Config> {
        self.engine.as_ref().unwrap_or(self.hub.config())
    }

    /// The first offered subprotocol this server speaks.
    pub(crate) fn choose(&self, offered: &[&str]) -> Option<String> {
        choose_protocol(&self.protocols, offered, Preference::Client)
    }
}

/// A refused upgrade: the status, headers and text body duplex's own
/// server would answer with. Return [`Rejection::into_response`] from the
/// service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    parts: RejectedParts,
}

impl Rejection {
    pub(crate) fn new(error: &HandshakeError) -> Rejection {
        Rejection {
            parts: hs::reject_parts(error),
        }
    }

    /// The HTTP status (e.g. 400, 405, 426).
    pub fn status(&self) -> u16 {
        self.parts.status
    }

    /// Why, in a few words (the body without its newline).
    pub fn reason(&self) -> &str {
        self.parts.body.trim_end()
    }

    /// The response headers (`Content-Type`, and `Sec-WebSocket-Version`
    /// and `Upgrade` with a 426, `Allow` with a 405).
    pub fn headers(&self) -> &Headers {
        &self.parts.headers
    }

    /// The response to return from the service.
    pub fn into_response(self) -> http::Response<Body> {
        convert::rejection_response(&self.parts)
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "upgrade refused with {}: {}",
            self.status(),
            self.reason()
        )
    }
}

impl std::error::Error for Rejection {}

/// Answers a WebSocket upgrade request: the `101 Switching Protocols`
/// response to return from the service and the [`UpgradeFuture`] to
/// spawn, or the [`Rejection`] of a request that is no valid upgrade
/// (with the status and headers duplex's own server answers it with).
///
/// The request keeps everything but hyper's upgrade handle, which the
/// future takes; the future's [`UpgradeRequest`] has its path, query and
/// headers, no route parameters ([`UpgradeFuture::with_params`]) and no
/// peer address ([`UpgradeFuture::with_remote_addr`]).
pub fn upgrade<B>(
    request: &mut http::Request<B>,
    config: &UpgradeConfig,
) -> Result<(http::Response<Body>, UpgradeFuture), Rejection> {
    let engine_request = convert::engine_request(
        request.method(),
        request.uri(),
        request.version(),
        request.headers(),
    );
    let on_upgrade = request
        .extensions_mut()
        .remove::<::hyper::upgrade::OnUpgrade>();
    accept(engine_request, on_upgrade, Params::default(), None, config)
}

/// [`upgrade`] from the parts an extractor sees (the request already
/// converted, hyper's handle taken from its extensions).
pub(crate) fn accept(
    engine_request: hs::Request,
    on_upgrade: Option<::hyper::upgrade::OnUpgrade>,
    params: Params,
    remote_addr: Option<SocketAddr>,
    config: &UpgradeConfig,
) -> Result<(http::Response<Body>, UpgradeFuture), Rejection> {
    // A request that is no valid upgrade is refused with the engine's
    // status before anything else is looked at.
    hs::validate_request(&engine_request).map_err(|e| Rejection::new(&e))?;
    if let Some(origins) = &config.origins {
        origins
            .check(engine_request.origin())
            .map_err(|e| Rejection::new(&e))?;
    }
    let Some(on_upgrade) = on_upgrade else {
        return Err(Rejection::new(&HandshakeError::new(
            500,
            "this connection cannot be upgraded (no hyper upgrade handle on the request)",
        )));
    };
    let choice = Choice {
        protocol: config.choose(&engine_request.protocols()),
        headers: config.headers.clone(),
    };
    let parts = hs::accept_parts(&engine_request, config.engine_config().clone(), choice)
        .map_err(|e| Rejection::new(&e))?;
    let response = convert::switching_response(&parts).ok_or_else(|| {
        Rejection::new(&HandshakeError::new(
            500,
            "a response header cannot be sent as given",
        ))
    })?;
    let request = UpgradeRequest::new(engine_request, params, remote_addr);
    let future = UpgradeFuture::new(
        on_upgrade,
        parts.connection,
        parts.protocol,
        request,
        config.hub.clone(),
    );
    Ok((response, future))
}

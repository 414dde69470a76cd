//! WebSockets in an axum app (feature `axum`): the [`WebSocketUpgrade`]
//! extractor, in the style of axum's own, plus what axum's lacks:
//! `permessage-deflate`, duplex's limits, and the [`Handler`] API with a
//! [`Session`](crate::Session) in a shared [`Hub`], so rooms (and the
//! Redis backplane, when the hub's [`Rooms`](crate::Rooms) has one) work
//! inside the app as in `duplex serve`.
//!
//! ```no_run
//! use std::sync::Arc;
//! use axum::routing::get;
//! use duplex::axum::WebSocketUpgrade;
//! use duplex::{Hub, Relay};
//!
//! # async fn run() -> std::io::Result<()> {
//! let hub = Arc::new(Hub::new());
//! let app = axum::Router::new()
//!     // The stream API: the socket is yours.
//!     .route("/echo", get(|ws: WebSocketUpgrade| async move {
//!         ws.protocols(["echo.v1"]).on_upgrade(|mut ws| async move {
//!             while let Some(Ok(message)) = ws.recv().await {
//!                 if message.is_data() && ws.send(message).await.is_err() {
//!                     break;
//!                 }
//!             }
//!         })
//!     }))
//!     // The Handler API, with rooms shared by every connection of the hub.
//!     .route("/chat/{room}", get(move |ws: WebSocketUpgrade| {
//!         let hub = hub.clone();
//!         async move {
//!             let relay = Relay::for_request(ws.request());
//!             ws.run(relay, hub)
//!         }
//!     }));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await
//! # }
//! ```
//!
//! The extractor refuses a request that is no valid upgrade with the
//! status and headers duplex's own [`Server`](crate::Server) answers it
//! with (400, 405 with `Allow: GET`, 426 with `Upgrade: websocket` and
//! `Sec-WebSocket-Version: 13`), before the route's code runs. Route
//! parameters (`{room}`) come from axum's router into the
//! [`UpgradeRequest`] handlers see.
//!
//! `axum::serve` upgrades connections as hyper needs (see the
//! [`hyper`](crate::hyper) module's pitfalls for a server of your own);
//! axum's HTTP/1 server needs axum's `tokio` and `http1` features, which
//! the application turns on (axum's defaults have them).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use ::axum::body::Body as AxumBody;
use ::axum::extract::{FromRequestParts, RawPathParams};
use ::axum::response::{IntoResponse, Response};
use ::hyper::upgrade::OnUpgrade;
use duplex_proto::handshake::server::{self as hs, Request};
use duplex_proto::{Config, HandshakeError};
use http::request::Parts;

use crate::handler::Handler;
use crate::hub::Hub;
use crate::hyper::{self as adapter, HyperSocket, Rejection, UpgradeConfig};
use crate::request::UpgradeRequest;
use crate::router::Params;

/// The hub of extractors that were given none: one per process, so that
/// their handlers still share rooms.
fn default_hub() -> Arc<Hub> {
    static HUB: OnceLock<Arc<Hub>> = OnceLock::new();
    HUB.get_or_init(|| Arc::new(Hub::new())).clone()
}

/// An axum extractor for a WebSocket upgrade: configure it
/// ([`protocols`](Self::protocols), [`hub`](Self::hub), limits), then
/// answer with [`on_upgrade`](Self::on_upgrade) (the stream API),
/// [`handler`](Self::handler) or [`run`](Self::run) (the Handler API).
///
/// Extraction fails, with the [`Rejection`] duplex's own server would
/// answer, for a request that is no valid WebSocket upgrade; and with 500
/// when the request did not come through a hyper server that can upgrade
/// it (e.g. a test calling the router with `oneshot`).
///
/// Without [`hub`](Self::hub), connections run in one process-wide hub of
/// default settings.
pub struct WebSocketUpgrade {
    request: UpgradeRequest,
    on_upgrade: OnUpgrade,
    config: UpgradeConfig,
}

impl std::fmt::Debug for WebSocketUpgrade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketUpgrade")
            .field("path", &self.request.path())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for WebSocketUpgrade {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Rejection> {
        let request = engine_request(parts);
        hs::validate_request(&request).map_err(|e| Rejection::new(&e))?;
        let Some(on_upgrade) = parts.extensions.remove::<OnUpgrade>() else {
            return Err(Rejection::new(&HandshakeError::new(
                500,
                "this connection cannot be upgraded (it did not come through a hyper server)",
            )));
        };
        // A route without parameters has none to give.
        let params: Params = match RawPathParams::from_request_parts(parts, state).await {
            Ok(raw) => raw
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
            Err(_) => Params::default(),
        };
        Ok(WebSocketUpgrade {
            request: UpgradeRequest::new(request, params, None),
            on_upgrade,
            config: UpgradeConfig::with_hub(default_hub()),
        })
    }
}

fn engine_request(parts: &Parts) -> Request {
    adapter::convert::engine_request(&parts.method, &parts.uri, parts.version, &parts.headers)
}

impl WebSocketUpgrade {
    /// The request, as the route's code and the [`Handler`]'s
    /// [`Session::request`](crate::Session::request) see it: path, query,
    /// headers, route parameters.
    pub fn request(&self) -> &UpgradeRequest {
        &self.request
    }

    /// The subprotocols the server speaks; the agreed one is the first the
    /// client offers that is in this list (see
    /// [`UpgradeConfig::protocols`]).
    pub fn protocols<I, P>(mut self, protocols: I) -> WebSocketUpgrade
    where
        I: IntoIterator<Item = P>,
        P: Into<String>,
    {
        self.config = self.config.protocols(protocols);
        self
    }

    /// Lets only pages of these origins upgrade; another `Origin` is
    /// refused with 403 (see [`UpgradeConfig::allowed_origins`]).
    pub fn allowed_origins<I, S>(mut self, origins: I) -> WebSocketUpgrade
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.config = self.config.allowed_origins(origins);
        self
    }

    /// Adds a header to the 101 response.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> WebSocketUpgrade {
        self.config = self.config.header(name, value);
        self
    }

    /// Runs the connection in `hub`: its engine settings, keepalive,
    /// timeouts, memory budget, queue limits and rooms apply, and its
    /// [`shutdown`](Hub::shutdown) closes the connection. Share one hub
    /// between the routes of an app (and a [`Server`](crate::Server),
    /// if any) so that they share rooms.
    pub fn hub(mut self, hub: Arc<Hub>) -> WebSocketUpgrade {
        self.config.set_hub(hub);
        self
    }

    /// The engine settings (limits, compression) of this connection
    /// instead of the hub's.
    pub fn config(mut self, config: Config) -> WebSocketUpgrade {
        self.config = self.config.config(config);
        self
    }

    /// The largest message accepted (see
    /// [`UpgradeConfig::max_message_size`]).
    pub fn max_message_size(mut self, bytes: usize) -> WebSocketUpgrade {
        self.config = self.config.max_message_size(bytes);
        self
    }

    /// The largest frame accepted (see [`UpgradeConfig::max_frame_size`]).
    pub fn max_frame_size(mut self, bytes: usize) -> WebSocketUpgrade {
        self.config = self.config.max_frame_size(bytes);
        self
    }

    /// The client's address, for the [`UpgradeRequest`] (e.g. from axum's
    /// `ConnectInfo<SocketAddr>`, which the extractor cannot read itself).
    pub fn remote_addr(mut self, addr: SocketAddr) -> WebSocketUpgrade {
        self.request = UpgradeRequest::new(
            self.request.http().clone(),
            self.request.params().clone(),
            Some(addr),
        );
        self
    }

    /// Accepts, and once the 101 is sent runs `f` with the socket on a
    /// task of its own, attached to the hub. Returns the response for
    /// axum: the 101, or the refusal of an offer the engine cannot accept
    /// (a malformed `Sec-WebSocket-Extensions`: 400).
    pub fn on_upgrade<F, Fut>(self, f: F) -> Response
    where
        F: FnOnce(HyperSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.start(move |future| async move { future.run(|ws, _request| f(ws)).await })
    }

    /// Accepts, and runs `handler` over the connection with a
    /// [`Session`](crate::Session) in the hub's rooms, as
    /// [`Server::handler`](crate::Server::handler) does.
    pub fn handler<H: Handler>(self, handler: H) -> Response {
        self.start(move |future| future.run_handler(handler))
    }

    /// [`handler`](Self::handler) in `hub`: `ws.run(handler, hub)` is
    /// `ws.hub(hub).handler(handler)`.
    pub fn run<H: Handler>(self, handler: H, hub: Arc<Hub>) -> Response {
        self.hub(hub).handler(handler)
    }

    /// Negotiates, spawns what `then` makes of the future, and returns the
    /// response.
    fn start<T, Fut>(self, then: T) -> Response
    where
        T: FnOnce(adapter::UpgradeFuture) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let WebSocketUpgrade {
            request,
            on_upgrade,
            config,
        } = self;
        let params = request.params().clone();
        let remote_addr = request.remote_addr();
        let engine_request = request.http().clone();
        match adapter::accept(
            engine_request,
            Some(on_upgrade),
            params,
            remote_addr,
            &config,
        ) {
            Ok((response, future)) => {
                tokio::spawn(then(future));
                response.map(AxumBody::new)
            }
            Err(rejection) => IntoResponse::into_response(rejection),
        }
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        Rejection::into_response(self).map(AxumBody::new)
    }
}

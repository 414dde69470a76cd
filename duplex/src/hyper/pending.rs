//! [`UpgradeFuture`]: the WebSocket of an accepted upgrade, once hyper has
//! sent the 101 and handed over the connection.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use ::hyper::upgrade::OnUpgrade;
use duplex_proto::Connection;
use hyper_util::rt::TokioIo;

use super::HyperSocket;
use crate::error::{Error, Result};
use crate::handler::Handler;
use crate::hub::Hub;
use crate::request::UpgradeRequest;
use crate::router::Params;
use crate::websocket::WebSocket;

/// The WebSocket of an accepted upgrade: resolves once the `101
/// Switching Protocols` response returned by
/// [`upgrade`](super::upgrade) has gone out and hyper hands the
/// connection over. Spawn it (or one of [`run`](Self::run) and
/// [`run_handler`](Self::run_handler)) and return the response: it only
/// resolves after the response is sent.
///
/// Awaited as a future it gives the socket with the engine the
/// negotiation produced (subprotocol, `permessage-deflate`) and the
/// hub's keepalive, timeouts and memory budget; it is not in the hub's
/// shutdown list unless [`Hub::attach`] is called on it. [`run`](Self::run)
/// and [`run_handler`](Self::run_handler) attach it for as long as they
/// run, as duplex's own [`Server`](crate::Server) does.
///
/// It fails with [`Error::Io`] when the connection is not upgraded: the
/// client went away, or the server was built without
/// `serve_connection(..).with_upgrades()`.
#[must_use = "the WebSocket is only there once this future is awaited or spawned"]
pub struct UpgradeFuture {
    on_upgrade: OnUpgrade,
    /// The engine and the agreed subprotocol, until the socket is made.
    engine: Option<(Connection, Option<String>)>,
    request: UpgradeRequest,
    hub: Arc<Hub>,
}

impl std::fmt::Debug for UpgradeFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpgradeFuture")
            .field("path", &self.request.path())
            .field("protocol", &self.protocol())
            .finish_non_exhaustive()
    }
}

impl UpgradeFuture {
    pub(crate) fn new(
        on_upgrade: OnUpgrade,
        connection: Connection,
        protocol: Option<String>,
        request: UpgradeRequest,
        hub: Arc<Hub>,
    ) -> UpgradeFuture {
        UpgradeFuture {
            on_upgrade,
            engine: Some((connection, protocol)),
            request,
            hub,
        }
    }

    /// The request that asked for the upgrade, as routes and handlers see
    /// it ([`Session::request`](crate::Session::request)).
    pub fn request(&self) -> &UpgradeRequest {
        &self.request
    }

    /// The agreed subprotocol, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.engine.as_ref().and_then(|(_, p)| p.as_deref())
    }

    /// Sets the route parameters the request carries (e.g. `room` of
    /// `/chat/{room}`, which [`Relay::for_request`](crate::Relay::for_request)
    /// reads), as the application's router matched them.
    pub fn with_params(mut self, params: Params) -> UpgradeFuture {
        self.request = UpgradeRequest::new(
            self.request.http().clone(),
            params,
            self.request.remote_addr(),
        );
        self
    }

    /// Sets the client's address the request carries
    /// ([`UpgradeRequest::remote_addr`]); hyper's request does not know
    /// it, the accept loop does.
    pub fn with_remote_addr(mut self, addr: SocketAddr) -> UpgradeFuture {
        self.request = UpgradeRequest::new(
            self.request.http().clone(),
            self.request.params().clone(),
            Some(addr),
        );
        self
    }

    /// Runs `f` with the socket and its request (like a
    /// [`Server::route`](crate::Server::route)), attached to the hub for
    /// as long as `f` runs. A connection that is never upgraded is logged
    /// (debug) and `f` is not called.
    pub async fn run<F, Fut>(self, f: F)
    where
        F: FnOnce(HyperSocket, UpgradeRequest) -> Fut,
        Fut: Future<Output = ()>,
    {
        let hub = self.hub.clone();
        let request = self.request.clone();
        let mut ws = match self.await {
            Ok(ws) => ws,
            Err(e) => return tracing::debug!("no WebSocket after the 101: {e}"),
        };
        let attached = hub.attach(&mut ws);
        f(ws, request).await;
        drop(attached);
    }

    /// Runs `handler` over the socket with a [`Session`](crate::Session)
    /// in the hub's [`Rooms`](crate::Rooms), as
    /// [`Server::handler`](crate::Server::handler) does (see
    /// [`Hub::run_handler`]). A connection that is never upgraded is
    /// logged (debug) and the handler is not called.
    pub async fn run_handler<H: Handler>(self, handler: H) {
        let hub = self.hub.clone();
        let request = self.request.clone();
        match self.await {
            Ok(ws) => hub.run_handler(ws, request, handler).await,
            Err(e) => tracing::debug!("no WebSocket after the 101: {e}"),
        }
    }
}

impl Future for UpgradeFuture {
    type Output = Result<HyperSocket>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let upgraded = ready!(Pin::new(&mut this.on_upgrade).poll(cx))
            .map_err(|e| Error::Io(std::io::Error::other(e)))?;
        let Some((connection, protocol)) = this.engine.take() else {
            return Poll::Ready(Err(Error::Closed));
        };
        // hyper's `Upgraded` replays what it read past the request, so
        // there is no leftover here.
        let mut ws = WebSocket::from_parts(TokioIo::new(upgraded), connection, &[]);
        ws.set_protocol(protocol);
        if let Some(keepalive) = this.hub.keepalive() {
            ws.set_keepalive(Some(keepalive));
        }
        ws.set_timeouts(this.hub.timeouts());
        ws.set_memory_budget(Some(this.hub.memory_budget().clone()));
        Poll::Ready(Ok(ws))
    }
}

//! [`Server`]: accepts connections, routes them by path, performs the
//! handshake and runs each connection on its own task.
//!
//! ```no_run
//! use duplex::{HttpResponse, Message, Server};
//!
//! # async fn run() -> duplex::Result<()> {
//! let server = Server::new()
//!     .route("/echo", |mut ws, _req| async move {
//!         while let Some(Ok(message)) = ws.recv().await {
//!             if message.is_data() && ws.send(message).await.is_err() {
//!                 break;
//!             }
//!         }
//!     })
//!     .http("/healthz", |_req| HttpResponse::text(200, "ok"))
//!     .bind("127.0.0.1:8080")
//!     .await?;
//! println!("listening on ws://{}", server.local_addr());
//! server.serve().await
//! # }
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use duplex_proto::handshake::server::{self as hs, Request};
use duplex_proto::handshake::{HandshakeLimits, Headers};
use duplex_proto::{CloseCode, CloseFrame, Config, Connection, HandshakeError, Role};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::Notify;

use crate::error::Result;
use crate::handler::{drive, Handler, Session};
use crate::queue::{OutboundQueue, QueueLimits, QueueStats};
use crate::request::UpgradeRequest;
use crate::rooms::Rooms;
use crate::router::Pattern;
use crate::stream::MaybeTlsStream;
use crate::websocket::{Control, KeepAlive, WebSocket};

/// A server-side connection.
pub type ServerSocket = WebSocket<MaybeTlsStream>;

type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;
type SocketRoute =
    Arc<dyn Fn(ServerSocket, UpgradeRequest, ConnectionContext) -> BoxFuture + Send + Sync>;
type HttpRoute = Arc<dyn Fn(&UpgradeRequest) -> HttpResponse + Send + Sync>;
type UpgradeHook = Arc<dyn Fn(&UpgradeRequest) -> UpgradeDecision + Send + Sync>;

/// What a route's connection gets from the server besides its socket.
#[derive(Clone)]
pub(crate) struct ConnectionContext {
    pub(crate) id: u64,
    pub(crate) stats: Arc<QueueStats>,
    pub(crate) queue_limits: QueueLimits,
    pub(crate) rooms: Arc<Rooms>,
}

#[derive(Clone)]
enum Route {
    Socket(SocketRoute),
    Http(HttpRoute),
}

/// A plain HTTP response for a non-WebSocket route (a page, a health
/// check).
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The `Content-Type`.
    pub content_type: String,
    /// Extra headers.
    pub headers: Headers,
    /// The body.
    pub body: Bytes,
}

impl HttpResponse {
    /// A `text/plain` response.
    pub fn text(status: u16, body: impl Into<String>) -> HttpResponse {
        HttpResponse {
            status,
            content_type: "text/plain; charset=utf-8".into(),
            headers: Headers::default(),
            body: Bytes::from(body.into()),
        }
    }

    /// A `text/html` response.
    pub fn html(body: impl Into<Bytes>) -> HttpResponse {
        HttpResponse {
            status: 200,
            content_type: "text/html; charset=utf-8".into(),
            headers: Headers::default(),
            body: body.into(),
        }
    }
}

/// The answer of an upgrade hook.
#[derive(Debug, Clone)]
pub enum UpgradeDecision {
    /// Accept, optionally choosing one of the offered subprotocols and
    /// adding response headers.
    Accept {
        /// The chosen subprotocol (must be one the client offered).
        protocol: Option<String>,
        /// Extra response headers.
        headers: Headers,
    },
    /// Refuse with an HTTP status (e.g. 401, 403) and a short reason.
    Reject {
        /// The HTTP status.
        status: u16,
        /// The response body.
        reason: String,
    },
}

impl UpgradeDecision {
    /// Accept without a subprotocol.
    pub fn accept() -> Self {
        UpgradeDecision::Accept {
            protocol: None,
            headers: Headers::default(),
        }
    }

    /// Accept with a subprotocol.
    pub fn accept_protocol(protocol: impl Into<String>) -> Self {
        UpgradeDecision::Accept {
            protocol: Some(protocol.into()),
            headers: Headers::default(),
        }
    }

    /// Reject with a status and reason.
    pub fn reject(status: u16, reason: impl Into<String>) -> Self {
        UpgradeDecision::Reject {
            status,
            reason: reason.into(),
        }
    }
}

/// A WebSocket server under construction: routes, hooks and limits. Call
/// [`Server::bind`] to start listening.
#[derive(Clone)]
pub struct Server {
    routes: Vec<(Pattern, Route)>,
    config: Arc<Config>,
    limits: HandshakeLimits,
    handshake_timeout: Duration,
    max_connections: usize,
    queue_limits: QueueLimits,
    shutdown_grace: Duration,
    upgrade_hook: Option<UpgradeHook>,
    rooms: Arc<Rooms>,
    keepalive: Option<KeepAlive>,
    #[cfg(feature = "tls")]
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Default for Server {
    fn default() -> Self {
        Server::new()
    }
}

impl Server {
    /// A server with no routes and default limits.
    pub fn new() -> Server {
        Server {
            routes: Vec::new(),
            config: Arc::new(Config::default()),
            limits: HandshakeLimits::default(),
            handshake_timeout: Duration::from_secs(10),
            max_connections: 100_000,
            queue_limits: QueueLimits::default(),
            shutdown_grace: Duration::from_secs(3),
            upgrade_hook: None,
            rooms: Arc::new(Rooms::new()),
            keepalive: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Routes WebSocket connections on `pattern` (e.g. `/echo`,
    /// `/chat/{room}`) to `f`, which owns the socket until it returns.
    pub fn route<F, Fut>(mut self, pattern: &str, f: F) -> Self
    where
        F: Fn(ServerSocket, UpgradeRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let route: SocketRoute = Arc::new(move |ws, req, _ctx| Box::pin(f(ws, req)));
        self.routes
            .push((Pattern::new(pattern), Route::Socket(route)));
        self
    }

    /// Routes WebSocket connections on `pattern` to a [`Handler`] made by
    /// `factory` for each connection.
    pub fn handler<H, F>(mut self, pattern: &str, factory: F) -> Self
    where
        H: Handler,
        F: Fn(&UpgradeRequest) -> H + Send + Sync + 'static,
    {
        let route: SocketRoute = Arc::new(
            move |ws: ServerSocket, req: UpgradeRequest, ctx: ConnectionContext| {
                let handler = factory(&req);
                let protocol = ws.protocol().map(str::to_string);
                let session = Session::new(
                    ctx.id,
                    ctx.rooms,
                    req,
                    OutboundQueue::new(ctx.queue_limits),
                    ctx.stats,
                    protocol,
                );
                Box::pin(drive(ws, handler, session))
            },
        );
        self.routes
            .push((Pattern::new(pattern), Route::Socket(route)));
        self
    }

    /// Serves a plain HTTP response on `pattern` (any method).
    pub fn http<F>(mut self, pattern: &str, f: F) -> Self
    where
        F: Fn(&UpgradeRequest) -> HttpResponse + Send + Sync + 'static,
    {
        self.routes
            .push((Pattern::new(pattern), Route::Http(Arc::new(f))));
        self
    }

    /// Decides on each upgrade from its request (path, headers, origin,
    /// query, offered subprotocols): accept, choosing a subprotocol and
    /// adding headers, or reject with a status.
    pub fn on_upgrade<F>(mut self, hook: F) -> Self
    where
        F: Fn(&UpgradeRequest) -> UpgradeDecision + Send + Sync + 'static,
    {
        self.upgrade_hook = Some(Arc::new(hook));
        self
    }

    /// The engine's settings for every connection (limits, compression).
    pub fn config(mut self, config: Config) -> Self {
        self.config = Arc::new(config);
        self
    }

    /// Limits on the handshake request.
    pub fn handshake_limits(mut self, limits: HandshakeLimits) -> Self {
        self.limits = limits;
        self
    }

    /// How long a client has for TLS and the upgrade request (default 10 s).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The most simultaneous connections; more are answered with 503.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max;
        self
    }

    /// Limits of each connection's outbound queue (handler routes).
    pub fn queue_limits(mut self, limits: QueueLimits) -> Self {
        self.queue_limits = limits;
        self
    }

    /// How long a shutdown waits for clients to answer the close (default 3 s).
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Pings each client after `interval` of silence and drops it when
    /// nothing arrives within `timeout` after that (see
    /// [`WebSocket::set_keepalive`]).
    pub fn keepalive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.keepalive = Some(KeepAlive { interval, timeout });
        self
    }

    /// Uses this room registry (e.g. shared with other servers of the
    /// process) instead of the server's own.
    pub fn rooms(mut self, rooms: Arc<Rooms>) -> Self {
        self.rooms = rooms;
        self
    }

    /// Serves `wss://` with this TLS configuration.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(tokio_rustls::TlsAcceptor::from(config));
        self
    }

    /// Whether this server speaks TLS.
    pub fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        false
    }

    /// Binds a TCP listener (port 0 picks a free port).
    pub async fn bind(self, addr: impl ToSocketAddrs) -> Result<BoundServer> {
        let listener = TcpListener::bind(addr).await?;
        Ok(self.listen(listener))
    }

    /// Serves on an existing listener.
    pub fn listen(self, listener: TcpListener) -> BoundServer {
        BoundServer {
            listener,
            shared: Arc::new(ServerShared {
                server: self,
                registry: Mutex::new(HashMap::new()),
                active: AtomicUsize::new(0),
                idle: Notify::new(),
                next_id: AtomicU64::new(1),
                stats: Arc::new(QueueStats::default()),
                shutting_down: AtomicBool::new(false),
                shutdown: Notify::new(),
            }),
        }
    }
}

struct ServerShared {
    server: Server,
    registry: Mutex<HashMap<u64, Weak<Control>>>,
    active: AtomicUsize,
    idle: Notify,
    next_id: AtomicU64,
    stats: Arc<QueueStats>,
    shutting_down: AtomicBool,
    shutdown: Notify,
}

impl ServerShared {
    fn registry(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Weak<Control>>> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A listening server; [`BoundServer::serve`] runs it.
pub struct BoundServer {
    listener: TcpListener,
    shared: Arc<ServerShared>,
}

/// Stops a running server gracefully from anywhere.
#[derive(Clone)]
pub struct ServerHandle {
    shared: Arc<ServerShared>,
}

impl ServerHandle {
    /// Stops accepting, sends close 1001 to every client, waits for their
    /// answers (at most the shutdown grace), and makes `serve` return.
    pub fn shutdown(&self) {
        self.shared.shutting_down.store(true, Ordering::SeqCst);
        self.shared.shutdown.notify_waiters();
        self.shared.shutdown.notify_one();
    }

    /// How many connections are open (including those still in the
    /// handshake).
    pub fn connections(&self) -> usize {
        self.shared.active.load(Ordering::Relaxed)
    }

    /// Counters of slow consumers closed and messages dropped.
    pub fn queue_stats(&self) -> &QueueStats {
        &self.shared.stats
    }
}

impl BoundServer {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// A handle to stop the server.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            shared: self.shared.clone(),
        }
    }

    /// Accepts connections until [`ServerHandle::shutdown`], then closes
    /// every connection with 1001 and returns.
    pub async fn serve(self) -> Result<()> {
        let shared = self.shared;
        loop {
            if shared.shutting_down.load(Ordering::SeqCst) {
                break;
            }
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((tcp, addr)) => {
                        shared.active.fetch_add(1, Ordering::SeqCst);
                        let shared = shared.clone();
                        tokio::spawn(async move {
                            let guard = ActiveGuard(shared.clone());
                            handle_connection(&shared, tcp, addr).await;
                            drop(guard);
                        });
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: keep serving.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                },
                _ = shared.shutdown.notified() => {}
            }
        }
        drop(self.listener);
        let open: Vec<Arc<Control>> = shared
            .registry()
            .values()
            .filter_map(Weak::upgrade)
            .collect();
        for conn in open {
            conn.start_close(CloseFrame::new(CloseCode::Away, "server shutting down"));
        }
        let grace = shared.server.shutdown_grace;
        let _ = tokio::time::timeout(grace, async {
            while shared.active.load(Ordering::SeqCst) > 0 {
                let idle = shared.idle.notified();
                if shared.active.load(Ordering::SeqCst) == 0 {
                    break;
                }
                idle.await;
            }
        })
        .await;
        Ok(())
    }
}

struct ActiveGuard(Arc<ServerShared>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Runs one connection: the handshake phase in a boxed future that is freed
/// once it is over (it is large: TLS, parsing, the response), then the
/// route. A long-lived idle connection so keeps only what its route needs.
async fn handle_connection(shared: &Arc<ServerShared>, tcp: TcpStream, addr: SocketAddr) {
    let Some(upgraded) = Box::pin(establish(shared, tcp, addr)).await else {
        return;
    };
    let (id, running) = start_route(upgraded);
    running.await;
    shared.registry().remove(&id);
}

/// Hands the connection to its route. Not inline in `handle_connection`:
/// values moved out of an async fn's locals still take room in its future
/// for as long as they are in scope, and that future is allocated for
/// every connection for its whole life.
fn start_route(upgraded: Upgraded) -> (u64, BoxFuture) {
    let Upgraded {
        route,
        ws,
        request,
        ctx,
    } = upgraded;
    (ctx.id, route(ws, request, ctx))
}

/// A connection past its handshake, ready for its route.
struct Upgraded {
    route: SocketRoute,
    ws: ServerSocket,
    request: UpgradeRequest,
    ctx: ConnectionContext,
}

/// TLS, the request, routing and the upgrade. Plain HTTP routes and
/// rejections are answered here; `None` means the connection is done.
async fn establish(
    shared: &Arc<ServerShared>,
    tcp: TcpStream,
    addr: SocketAddr,
) -> Option<Upgraded> {
    let server = &shared.server;
    let _ = tcp.set_nodelay(true);
    let over_limit = shared.active.load(Ordering::SeqCst) > server.max_connections;
    let stream = match tokio::time::timeout(server.handshake_timeout, secure(server, tcp)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::warn!("TLS handshake with {addr} failed: {e}");
            return None;
        }
        Err(_) => return None,
    };
    let read = tokio::time::timeout(
        server.handshake_timeout,
        read_request(stream, &server.limits),
    )
    .await;
    let (mut stream, request, leftover) = match read {
        Ok(Ok(Some(parts))) => parts,
        Ok(Ok(None)) | Err(_) => return None,
        Ok(Err((mut stream, error))) => {
            respond(&mut stream, &hs::reject_response(&error)).await;
            return None;
        }
    };
    if over_limit {
        let error = HandshakeError::new(503, "too many connections");
        respond(&mut stream, &hs::reject_response(&error)).await;
        return None;
    }
    let found = server.routes.iter().find_map(|(pattern, route)| {
        pattern
            .matches(request.path())
            .map(|params| (route.clone(), params))
    });
    let Some((route, params)) = found else {
        let error = HandshakeError::new(404, "no such path");
        respond(&mut stream, &hs::reject_response(&error)).await;
        return None;
    };
    let request = UpgradeRequest::new(request, params, Some(addr));
    let route = match route {
        Route::Http(f) => {
            let r = f(&request);
            respond(
                &mut stream,
                &hs::http_response(r.status, &r.content_type, &r.body, &r.headers),
            )
            .await;
            return None;
        }
        Route::Socket(f) => f,
    };
    let (conn, protocol) = match upgrade(server, &mut stream, &request).await {
        Ok(accepted) => accepted,
        Err(Some(error)) => {
            respond(&mut stream, &hs::reject_response(&error)).await;
            return None;
        }
        Err(None) => return None,
    };
    let mut ws = WebSocket::from_parts(stream, conn, &leftover);
    ws.wake_per_frame();
    ws.set_protocol(protocol);
    ws.set_keepalive(server.keepalive);
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let control = ws.control();
    shared.registry().insert(id, Arc::downgrade(&control));
    if shared.shutting_down.load(Ordering::SeqCst) {
        control.start_close(CloseFrame::new(CloseCode::Away, "server shutting down"));
    }
    let ctx = ConnectionContext {
        id,
        stats: shared.stats.clone(),
        queue_limits: server.queue_limits,
        rooms: server.rooms.clone(),
    };
    Some(Upgraded {
        route,
        ws,
        request,
        ctx,
    })
}

async fn secure(server: &Server, tcp: TcpStream) -> std::io::Result<MaybeTlsStream> {
    #[cfg(feature = "tls")]
    if let Some(acceptor) = &server.tls {
        return Ok(MaybeTlsStream::ServerTls(Box::new(
            acceptor.accept(crate::ReadAhead::new(tcp)).await?,
        )));
    }
    let _ = server;
    Ok(MaybeTlsStream::Plain(tcp))
}

type ReadResult<S> = std::result::Result<Option<(S, Request, Bytes)>, (S, HandshakeError)>;

/// Reads the request head; returns it with the bytes read past it.
async fn read_request<S: AsyncRead + Unpin>(
    mut stream: S,
    limits: &HandshakeLimits,
) -> ReadResult<S> {
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        match hs::parse_request(&buf, limits) {
            Ok(Some((request, used))) => {
                let leftover = buf.split_off(used).freeze();
                return Ok(Some((stream, request, leftover)));
            }
            Ok(None) => {}
            Err(error) => return Err((stream, error)),
        }
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return Ok(None),
            Ok(_) => {}
        }
    }
}

/// Validates the request, asks the hook, negotiates extensions and writes
/// the 101 response. `Err(Some)` is answered with its status; `Err(None)`
/// means the socket failed.
async fn upgrade<S: AsyncWrite + Unpin>(
    server: &Server,
    stream: &mut S,
    request: &UpgradeRequest,
) -> std::result::Result<(Connection, Option<String>), Option<HandshakeError>> {
    hs::validate_request(request.http()).map_err(Some)?;
    let decision = match &server.upgrade_hook {
        Some(hook) => hook(request),
        None => UpgradeDecision::accept(),
    };
    let (protocol, headers) = match decision {
        UpgradeDecision::Accept { protocol, headers } => (protocol, headers),
        UpgradeDecision::Reject { status, reason } => {
            return Err(Some(HandshakeError::new(status, reason)))
        }
    };
    if let Some(p) = &protocol {
        if !request.protocols().contains(&p.as_str()) {
            return Err(Some(HandshakeError::new(
                500,
                "the server chose a subprotocol the client did not offer",
            )));
        }
    }
    #[allow(unused_mut)]
    let mut conn = Connection::with_shared_config(Role::Server, server.config.clone());
    #[allow(unused_mut)]
    let mut extensions: Option<String> = None;
    #[cfg(feature = "deflate")]
    if let Some(deflate) = &server.config.deflate {
        let values = request.headers().get_all("sec-websocket-extensions");
        let offers = duplex_proto::extensions::parse_extensions(values).map_err(|e| {
            Some(HandshakeError::new(
                400,
                format!("invalid Sec-WebSocket-Extensions: {e}"),
            ))
        })?;
        let params = deflate.server_negotiate(&offers).map_err(|e| {
            Some(HandshakeError::new(
                400,
                format!("invalid permessage-deflate offer: {e}"),
            ))
        })?;
        if let Some(params) = params {
            extensions = Some(params.to_header_value());
            conn.enable_deflate(params);
        }
    }
    let response = hs::accept_response(
        request.http(),
        protocol.as_deref(),
        extensions.as_deref(),
        &headers,
    );
    stream.write_all(&response).await.map_err(|_| None)?;
    Ok((conn, protocol))
}

/// Writes a response that ends the connection, then closes it.
async fn respond<S: AsyncWrite + Unpin>(stream: &mut S, response: &[u8]) {
    let _ = stream.write_all(response).await;
    let _ = stream.shutdown().await;
}

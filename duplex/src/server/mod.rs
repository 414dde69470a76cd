//! [`Server`]: accepts connections, routes them by path, performs the
//! handshake and runs each connection on its own task.
//!
//! The builder is here; `accept.rs` takes one connection from TCP to its
//! route, `running.rs` is the accept loop and its shutdown, and
//! `response.rs` the answers other than a WebSocket. `body.rs` reads the
//! request bodies of [`Server::http_with_body`] routes (`chunked.rs`
//! decodes chunked ones), which see them as an [`HttpRequest`].
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

mod accept;
mod body;
mod chunked;
mod fd_limit;
mod http_request;
mod respond;
mod response;
mod running;
mod state;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use duplex_proto::handshake::{AllowedOrigins, HandshakeLimits};
use duplex_proto::Config;
use tokio::net::{TcpListener, ToSocketAddrs};

use crate::budget::MemoryBudget;
use crate::drive::drive;
use crate::error::Result;
use crate::handler::Handler;
use crate::hub::Hub;
use crate::keepalive::KeepAlive;
use crate::queue::QueueLimits;
use crate::request::UpgradeRequest;
use crate::rooms::Rooms;
use crate::router::Pattern;
use crate::timeouts::Timeouts;
use crate::transport::MaybeTlsStream;
use crate::websocket::WebSocket;

pub use http_request::HttpRequest;
pub use response::{HttpResponse, UpgradeDecision};
pub use running::{BoundServer, ServerHandle};

/// A server-side connection.
pub type ServerSocket = WebSocket<MaybeTlsStream>;

type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;
/// A WebSocket route: the socket, its request, its hub and its id there.
type SocketRoute = Arc<dyn Fn(ServerSocket, UpgradeRequest, &Hub, u64) -> BoxFuture + Send + Sync>;
type HttpRoute = Arc<dyn Fn(&UpgradeRequest) -> HttpResponse + Send + Sync>;
type HttpBodyRoute = Arc<dyn Fn(&HttpRequest, &Hub) -> HttpResponse + Send + Sync>;
type HttpAsyncRoute = Arc<
    dyn Fn(&UpgradeRequest) -> Pin<Box<dyn Future<Output = HttpResponse> + Send>> + Send + Sync,
>;
type UpgradeHook = Arc<dyn Fn(&UpgradeRequest) -> UpgradeDecision + Send + Sync>;

#[derive(Clone)]
pub(crate) enum Route {
    Socket(SocketRoute),
    Http(HttpRoute),
    HttpWithBody(HttpBodyRoute),
    HttpAsync(HttpAsyncRoute),
}

/// The default of [`Server::max_request_body`]: 1 MiB.
pub const DEFAULT_MAX_REQUEST_BODY: usize = 1 << 20;

/// A WebSocket server under construction: routes, hooks and limits. Call
/// [`Server::bind`] to start listening, then [`BoundServer::serve`].
///
/// Routes are tried in order; `{name}` in a pattern matches one path
/// segment ([`UpgradeRequest::param`]). [`Server::route`] hands the socket
/// to a function (the stream API), [`Server::handler`] runs a [`Handler`]
/// per connection (the event API), [`Server::http`] answers plain HTTP,
/// [`Server::http_async`] answers plain HTTP with a future, and
/// [`Server::http_with_body`] answers plain HTTP requests with their
/// bodies read.
///
/// ```no_run
/// use duplex::{HttpResponse, Relay, Server, UpgradeDecision};
///
/// # async fn run() -> duplex::Result<()> {
/// let server = Server::new()
///     .on_upgrade(|req| match req.header("authorization") {
///         Some("Bearer secret") => UpgradeDecision::accept(),
///         _ => UpgradeDecision::reject(401, "missing token"),
///     })
///     .route("/echo", |mut ws, _req| async move {
///         while let Some(Ok(message)) = ws.recv().await {
///             if message.is_data() && ws.send(message).await.is_err() {
///                 break;
///             }
///         }
///     })
///     .handler("/chat/{room}", Relay::for_request)
///     .http("/healthz", |_req| HttpResponse::text(200, "ok"))
///     .bind("127.0.0.1:8080")
///     .await?;
/// println!("listening on ws://{}", server.local_addr());
/// server.serve().await
/// # }
/// ```
///
/// A whole round trip on a free port of 127.0.0.1, and a graceful stop:
///
/// ```
/// use duplex::{Message, Server};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> duplex::Result<()> {
/// let server = Server::new()
///     .route("/echo", |mut ws, _req| async move {
///         while let Some(Ok(message)) = ws.recv().await {
///             if message.is_data() && ws.send(message).await.is_err() {
///                 break;
///             }
///         }
///     })
///     .bind("127.0.0.1:0")
///     .await?;
/// let url = format!("ws://{}/echo", server.local_addr());
/// let handle = server.handle();
/// let serving = tokio::spawn(server.serve());
///
/// let mut ws = duplex::connect(&url).await?;
/// ws.send("hi").await?;
/// assert_eq!(ws.recv().await.unwrap()?, Message::text("hi"));
/// ws.close(None).await?;
///
/// handle.shutdown();
/// serving.await.expect("the server task")?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Server {
    pub(crate) routes: Vec<(Pattern, Route)>,
    config: Config,
    pub(crate) limits: HandshakeLimits,
    pub(crate) handshake_timeout: Duration,
    pub(crate) max_request_body: usize,
    /// `None`: derived from the descriptor limit when the server starts.
    max_connections: Option<usize>,
    queue_limits: QueueLimits,
    pub(crate) shutdown_grace: Duration,
    pub(crate) upgrade_hook: Option<UpgradeHook>,
    /// `None`: every origin may upgrade.
    pub(crate) allowed_origins: Option<AllowedOrigins>,
    /// The subprotocols chosen from when no hook chose one.
    pub(crate) protocols: Vec<String>,
    rooms: Arc<Rooms>,
    keepalive: Option<KeepAlive>,
    memory_budget: Option<Arc<MemoryBudget>>,
    timeouts: Timeouts,
    /// A hub given with [`Server::hub`], used instead of one made from the
    /// settings above.
    hub: Option<Arc<Hub>>,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<tokio_rustls::TlsAcceptor>,
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
            config: Config::default(),
            limits: HandshakeLimits::default(),
            handshake_timeout: Duration::from_secs(10),
            max_request_body: DEFAULT_MAX_REQUEST_BODY,
            max_connections: None,
            queue_limits: QueueLimits::default(),
            shutdown_grace: Duration::from_secs(3),
            upgrade_hook: None,
            allowed_origins: None,
            protocols: Vec::new(),
            rooms: Arc::new(Rooms::new()),
            keepalive: None,
            memory_budget: None,
            timeouts: Timeouts::default(),
            hub: None,
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
        let route: SocketRoute = Arc::new(move |ws, req, _hub, _id| Box::pin(f(ws, req)));
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
            move |ws: ServerSocket, req: UpgradeRequest, hub: &Hub, id: u64| {
                let handler = factory(&req);
                let session = hub.session(id, req, ws.protocol().map(str::to_string));
                Box::pin(drive(ws, handler, session))
            },
        );
        self.routes
            .push((Pattern::new(pattern), Route::Socket(route)));
        self
    }

    /// Serves a plain HTTP response on `pattern` (any method). The request
    /// body, if any, is not read: see [`Server::http_with_body`].
    pub fn http<F>(mut self, pattern: &str, f: F) -> Self
    where
        F: Fn(&UpgradeRequest) -> HttpResponse + Send + Sync + 'static,
    {
        self.routes
            .push((Pattern::new(pattern), Route::Http(Arc::new(f))));
        self
    }

    /// Serves a plain HTTP response on `pattern` (any method) that takes
    /// waiting for, e.g. on a database or Redis: `f` is called with the
    /// request and its future awaited on the connection's own task (other
    /// connections are not held up). The answer must come within the
    /// [handshake timeout](Server::handshake_timeout), counted from the
    /// request's arrival, or the client gets 503. The body, if any, is not
    /// read.
    ///
    /// ```no_run
    /// use std::sync::Arc;
    /// use duplex::{HttpResponse, Relay, Rooms, Server};
    ///
    /// # async fn run() -> duplex::Result<()> {
    /// let rooms = Arc::new(Rooms::new());
    /// let presence = rooms.clone();
    /// let server = Server::new()
    ///     .rooms(rooms)
    ///     .handler("/chat/{room}", Relay::for_request)
    ///     .http_async("/presence/{room}", move |req| {
    ///         let rooms = presence.clone();
    ///         let room = req.param("room").unwrap_or_default().to_string();
    ///         async move {
    ///             let everywhere = rooms.presence_everywhere(&room).await;
    ///             HttpResponse::json(200, everywhere.to_json(&room))
    ///         }
    ///     });
    /// server.bind("127.0.0.1:8080").await?.serve().await
    /// # }
    /// ```
    pub fn http_async<F, Fut>(mut self, pattern: &str, f: F) -> Self
    where
        F: Fn(&UpgradeRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HttpResponse> + Send + 'static,
    {
        let route: HttpAsyncRoute = Arc::new(move |req| Box::pin(f(req)));
        self.routes
            .push((Pattern::new(pattern), Route::HttpAsync(route)));
        self
    }

    /// Serves plain HTTP on `pattern` (any method; `f` decides what each
    /// gets, e.g. 405 with `Allow`), handing `f` the request with its body
    /// and the [`Hub`] the server's connections run in (its
    /// [`Rooms`](Hub::rooms), to publish into).
    ///
    /// The server reads the body before calling `f`:
    ///
    /// - framed by `Content-Length` or `Transfer-Encoding: chunked`
    ///   (decoded); a `GET`, `DELETE` and the like with neither has an
    ///   empty body, a `POST`, `PUT` or `PATCH` with neither gets 411;
    /// - at most [`Server::max_request_body`] bytes: a longer declared
    ///   length gets 413 before any of the body is read, a chunked body
    ///   413 as soon as its chunk sizes pass the limit; the buffer grows
    ///   with what arrives, counted in the [memory budget](Server::memory_budget)
    ///   (503 when it is exhausted);
    /// - head and body within the [handshake timeout](Server::handshake_timeout)
    ///   together, else 408;
    /// - malformed framing (both headers, conflicting lengths, a bad chunk)
    ///   gets 400, a transfer coding other than chunked 501, an `Expect`
    ///   other than `100-continue` 417 (`100 Continue` is answered).
    ///
    /// Every answer closes the connection (`Connection: close`). `f` runs
    /// on the connection's task: it must not block.
    ///
    /// ```no_run
    /// use duplex::{HttpResponse, Message, Server};
    ///
    /// # async fn run() -> duplex::Result<()> {
    /// let server = Server::new()
    ///     .max_request_body(64 * 1024)
    ///     .http_with_body("/notify/{room}", |req, hub| {
    ///         if req.method() != "POST" {
    ///             return HttpResponse::text(405, "use POST\n").with_header("Allow", "POST");
    ///         }
    ///         let room = req.param("room").unwrap_or_default();
    ///         let reached = hub.rooms().publish(room, &Message::binary(req.body().clone()));
    ///         HttpResponse::json(202, format!(r#"{{"recipients":{reached}}}"#))
    ///     });
    /// server.bind("127.0.0.1:8080").await?.serve().await
    /// # }
    /// ```
    pub fn http_with_body<F>(mut self, pattern: &str, f: F) -> Self
    where
        F: Fn(&HttpRequest, &Hub) -> HttpResponse + Send + Sync + 'static,
    {
        self.routes
            .push((Pattern::new(pattern), Route::HttpWithBody(Arc::new(f))));
        self
    }

    /// Lets only pages of these origins (`scheme://host[:port]`) open a
    /// WebSocket: a browser's upgrade with any other `Origin` is refused
    /// with `403 Forbidden` before the [`on_upgrade`](Self::on_upgrade)
    /// hook runs, so a foreign page cannot use the visitor's cookies
    /// (RFC 6455 §10.2). A request without `Origin` is not from a browser
    /// and passes. Scheme and host compare case-insensitively and the
    /// default port may be left out ([`AllowedOrigins`]).
    ///
    /// ```
    /// use duplex::Server;
    ///
    /// let server = Server::new().allowed_origins(["https://chat.example", "http://localhost:8080"]);
    /// # let _ = server;
    /// ```
    pub fn allowed_origins<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.allowed_origins = Some(AllowedOrigins::new(origins));
        self
    }

    /// The subprotocols the server speaks, most preferred first. When the
    /// [`on_upgrade`](Self::on_upgrade) hook (if any) chose none, the first
    /// of this list that the client offered is agreed (the server's order
    /// of preference); none when there is no common one, which is no error
    /// (RFC 6455 §4.2.2).
    ///
    /// ```
    /// use duplex::Server;
    ///
    /// let server = Server::new().protocols(["chat.v2", "chat.v1"]);
    /// # let _ = server;
    /// ```
    pub fn protocols<I, S>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.protocols = protocols.into_iter().map(Into::into).collect();
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
        self.config = config;
        self
    }

    /// Limits on the handshake request.
    pub fn handshake_limits(mut self, limits: HandshakeLimits) -> Self {
        self.limits = limits;
        self
    }

    /// How long a client has for TLS, and then again for its request: the
    /// upgrade request, or a plain request's head and body together
    /// (default 10 s).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The largest request body an [`http_with_body`](Server::http_with_body)
    /// route accepts, in bytes, after chunked decoding (default
    /// [`DEFAULT_MAX_REQUEST_BODY`], 1 MiB); a longer one is answered with
    /// 413.
    pub fn max_request_body(mut self, bytes: usize) -> Self {
        self.max_request_body = bytes;
        self
    }

    /// The most simultaneous connections (handshakes included); more are
    /// answered with 503. The default is the process's soft descriptor
    /// limit (`RLIMIT_NOFILE`) less a reserve of 5% (at least 16) for
    /// everything else the process opens, so that the limit itself is
    /// never reached by clients; 100,000 where the limit is unknown.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = Some(max);
        self
    }

    /// Limits of each connection's outbound queue (handler routes).
    pub fn queue_limits(mut self, limits: QueueLimits) -> Self {
        self.queue_limits = limits;
        self
    }

    /// How long a shutdown waits for clients to take what is queued for
    /// them and answer the close (default 3 s). What is still unsent then
    /// is counted and logged; see [`ServerHandle::shutdown`].
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Pings each client `interval` after it connected and after each
    /// answer, and drops it when the pong does not arrive within `timeout`
    /// (see [`WebSocket::set_keepalive`]). Off by default.
    pub fn keepalive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.keepalive = Some(KeepAlive { interval, timeout });
        self
    }

    /// The most payload all connections together may buffer (see
    /// [`MemoryBudget`]; default [`DEFAULT_MEMORY_BUDGET`](crate::DEFAULT_MEMORY_BUDGET), 512 MiB):
    /// beyond it an incoming message closes its connection with 1009 and
    /// an outgoing one is treated as a full queue.
    pub fn memory_budget(mut self, bytes: usize) -> Self {
        self.memory_budget = Some(MemoryBudget::new(bytes));
        self
    }

    /// The message, idle and write timeouts of every connection (see
    /// [`Timeouts`]; default [`Timeouts::default`]: a message must arrive
    /// within 30 s of its first byte, a write must make progress within
    /// 30 s, no idle timeout). Counted in
    /// [`ServerHandle::timeout_stats`].
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Uses this room registry (e.g. shared with other servers of the
    /// process) instead of the server's own.
    pub fn rooms(mut self, rooms: Arc<Rooms>) -> Self {
        self.rooms = rooms;
        self
    }

    /// Runs every connection in this [`Hub`] (e.g. one shared with an
    /// HTTP framework's routes in the same process). The hub's engine
    /// settings, rooms, queue limits, keepalive, timeouts and memory
    /// budget then apply, instead of this builder's
    /// [`config`](Self::config), [`rooms`](Self::rooms),
    /// [`queue_limits`](Self::queue_limits), [`keepalive`](Self::keepalive),
    /// [`timeouts`](Self::timeouts) and
    /// [`memory_budget`](Self::memory_budget). Stopping the server shuts the hub
    /// down for good ([`Hub::shutdown`]), closing every connection in it,
    /// also those other acceptors attach later.
    pub fn hub(mut self, hub: Arc<Hub>) -> Self {
        self.hub = Some(hub);
        self
    }

    /// The hub this server's connections run in: the one given with
    /// [`Server::hub`], or a new one from the builder's settings.
    fn make_hub(&self) -> Arc<Hub> {
        match &self.hub {
            Some(hub) => hub.clone(),
            None => {
                let mut hub = Hub::new()
                    .with_config(self.config.clone())
                    .with_rooms(self.rooms.clone())
                    .with_queue_limits(self.queue_limits)
                    .with_keepalive(self.keepalive)
                    .with_timeouts(self.timeouts);
                if let Some(budget) = &self.memory_budget {
                    hub = hub.with_memory_budget(budget.clone());
                }
                Arc::new(hub)
            }
        }
    }

    /// Serves `wss://` with this TLS configuration (see
    /// [`tls::server_config`](crate::tls::server_config)).
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
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
        let hub = self.make_hub();
        let max_connections = self
            .max_connections
            .unwrap_or_else(fd_limit::default_max_connections);
        BoundServer::new(listener, self, hub, max_connections)
    }
}

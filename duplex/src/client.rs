//! Opening connections: [`connect`] and [`ClientBuilder`].

use std::time::Duration;

use std::sync::Arc;

use bytes::BytesMut;
use duplex_proto::handshake::client::{parse_response, ClientRequest};
use duplex_proto::handshake::{HandshakeLimits, Headers};
use duplex_proto::{Config, HandshakeError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::{Error, Failure, Result};
use crate::handshake_trace::{HandshakeStep, Inspector};
use crate::keepalive::KeepAlive;
use crate::proxy::{self, Proxy, ProxyError};
use crate::timeouts::Timeouts;
use crate::transport::MaybeTlsStream;
use crate::websocket::WebSocket;

/// A client connection.
pub type ClientSocket = WebSocket<MaybeTlsStream>;

/// Connects to a `ws://` or `wss://` URL with default settings.
///
/// ```no_run
/// # async fn example() -> duplex::Result<()> {
/// let mut ws = duplex::connect("ws://127.0.0.1:8080/echo").await?;
/// ws.send("Hello, server!").await?;
/// if let Some(reply) = ws.recv().await {
///     println!("{:?}", reply?);
/// }
/// ws.close(None).await?;
/// # Ok(()) }
/// ```
pub async fn connect(url: &str) -> Result<ClientSocket> {
    ClientBuilder::new(url).connect().await
}

/// Where to connect, parsed from a URL.
#[derive(Debug, Clone)]
pub struct Target {
    /// `true` for `wss://`.
    pub tls: bool,
    /// The host name or address (IPv6 without brackets).
    pub host: String,
    /// The port (default 80 / 443).
    pub port: u16,
    /// The `Host` header value.
    pub host_header: String,
    /// Path and query.
    pub resource: String,
}

impl Target {
    /// Parses a `ws://` or `wss://` URL.
    pub fn parse(url: &str) -> Result<Target> {
        if !url.contains("://") {
            return Err(Error::Url(Failure::new(format!(
                "{url}: the URL needs a scheme, ws:// or wss:// (e.g. ws://{url})"
            ))));
        }
        let parsed = url::Url::parse(url).map_err(|e| Error::Url(Failure::caused_by(url, e)))?;
        let tls = match parsed.scheme() {
            "ws" => false,
            "wss" => true,
            other => {
                return Err(Error::Url(Failure::new(format!(
                    "{url}: scheme must be ws or wss, not {other}"
                ))))
            }
        };
        let host = match parsed.host() {
            Some(url::Host::Domain(d)) => d.to_string(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(Error::Url(Failure::new(format!("{url}: no host")))),
        };
        let port = parsed
            .port_or_known_default()
            .unwrap_or(if tls { 443 } else { 80 });
        let host_part = parsed.host_str().unwrap_or_default();
        let host_header = match parsed.port() {
            Some(port) => format!("{host_part}:{port}"),
            None => host_part.to_string(),
        };
        let mut resource = parsed.path().to_string();
        if let Some(query) = parsed.query() {
            resource.push('?');
            resource.push_str(query);
        }
        Ok(Target {
            tls,
            host,
            port,
            host_header,
            resource,
        })
    }
}

/// Settings for a client connection.
///
/// ```no_run
/// # async fn example() -> duplex::Result<()> {
/// use std::time::Duration;
/// let ws = duplex::ClientBuilder::new("ws://127.0.0.1:8080/chat/lobby")
///     .header("Authorization", "Bearer token")
///     .protocol("chat.v1")
///     .connect_timeout(Duration::from_secs(3))
///     .connect()
///     .await?;
/// println!("agreed subprotocol: {:?}", ws.protocol());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    url: String,
    headers: Headers,
    protocols: Vec<String>,
    connect_timeout: Duration,
    handshake_timeout: Duration,
    config: Config,
    limits: HandshakeLimits,
    keepalive: Option<KeepAlive>,
    timeouts: Timeouts,
    proxy: ProxyChoice,
    setup_timeout: Option<Duration>,
    max_redirects: usize,
    inspector: Option<Inspector>,
    #[cfg(feature = "tls")]
    tls: crate::tls::TlsOptions,
}

/// Whether and how a connection goes through a proxy.
#[derive(Debug, Clone)]
enum ProxyChoice {
    /// As the environment variables say ([`proxy::from_environment`]).
    Environment,
    /// Always direct.
    Never,
    /// Always through this proxy URL, loopback targets included.
    Url(String),
}

impl ClientBuilder {
    /// Starts a builder for `url`.
    pub fn new(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            url: url.into(),
            headers: Headers::default(),
            protocols: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            config: Config::default(),
            limits: HandshakeLimits::default(),
            keepalive: None,
            timeouts: Timeouts::default(),
            proxy: ProxyChoice::Environment,
            setup_timeout: None,
            max_redirects: 0,
            inspector: None,
            #[cfg(feature = "tls")]
            tls: crate::tls::TlsOptions::default(),
        }
    }

    /// Connects through this proxy: `http://[user:password@]host:port`
    /// (HTTP `CONNECT`, Basic credentials), `socks5://...` (the target's
    /// name is resolved here) or `socks5h://...` (the proxy resolves it).
    /// It applies to every target, loopback ones included, and replaces
    /// the environment's choice. A URL that cannot be used fails
    /// [`connect`](Self::connect) with [`Error::Proxy`].
    ///
    /// Without this call (or [`no_proxy`](Self::no_proxy)) the proxy
    /// comes from the environment as curl reads it: `no_proxy`, then
    /// `wss_proxy`/`ws_proxy`, then `https_proxy`/`http_proxy`, then
    /// `all_proxy`, never for a loopback target (see [`crate::proxy`]).
    ///
    /// ```no_run
    /// # async fn example() -> duplex::Result<()> {
    /// let ws = duplex::ClientBuilder::new("wss://chat.example.org/lobby")
    ///     .proxy("http://user:secret@proxy.internal:3128")
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn proxy(mut self, url: impl Into<String>) -> Self {
        self.proxy = ProxyChoice::Url(url.into());
        self
    }

    /// Always connects directly, whatever the environment's proxy
    /// variables say.
    pub fn no_proxy(mut self) -> Self {
        self.proxy = ProxyChoice::Never;
        self
    }

    /// Adds a request header (e.g. `Authorization`, `Origin`, `Cookie`).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push(name, value);
        self
    }

    /// Offers a subprotocol (call again to offer several, in preference
    /// order).
    pub fn protocol(mut self, protocol: impl Into<String>) -> Self {
        self.protocols.push(protocol.into());
        self
    }

    /// Limits the TCP (and TLS) connect, through the proxy when there is
    /// one (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Limits the HTTP upgrade exchange (default 10 s).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Limits the whole connection setup: TCP, TLS, the HTTP upgrade and
    /// any redirects together (default: none beyond
    /// [`connect_timeout`](Self::connect_timeout) and
    /// [`handshake_timeout`](Self::handshake_timeout), which bound their
    /// own parts). A user who asks for "at most 3 s" means all of it.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.setup_timeout = Some(timeout);
        self
    }

    /// Follows up to `max` redirects (301, 302, 307, 308) of the upgrade
    /// request; default 0: a redirect is an error
    /// ([`Error::Handshake`] with its status), because a library should
    /// not send its headers to another URL unasked. On a redirect to
    /// another host or port, `Authorization` and `Cookie` are not sent
    /// again. `http(s)://` in `Location` means `ws(s)://`.
    pub fn follow_redirects(mut self, max: usize) -> Self {
        self.max_redirects = max;
        self
    }

    /// Calls `inspect` with every step of the opening handshake: the
    /// request head as written, each response head, each redirect followed
    /// (see [`HandshakeStep`]), for refused handshakes too. For
    /// diagnostics, like `curl -v`; `duplex connect -v` prints them.
    ///
    /// ```no_run
    /// # async fn example() -> duplex::Result<()> {
    /// use duplex::HandshakeStep;
    /// let ws = duplex::ClientBuilder::new("ws://127.0.0.1:8080/echo")
    ///     .inspect_handshake(|step| {
    ///         if let HandshakeStep::Response { status, headers, .. } = step {
    ///             eprintln!("{status}, server {:?}", headers.get("server"));
    ///         }
    ///     })
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn inspect_handshake(
        mut self,
        inspect: impl Fn(HandshakeStep<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.inspector = Some(Inspector(Arc::new(inspect)));
        self
    }

    /// Pings the server `interval` after connecting and after each answer,
    /// and gives the connection up when the pong does not arrive within
    /// `timeout` (see [`WebSocket::set_keepalive`]). Off by default.
    pub fn keepalive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.keepalive = Some(KeepAlive { interval, timeout });
        self
    }

    /// The connection's message, idle and write timeouts (see
    /// [`Timeouts`]; default [`Timeouts::default`]: message 30 s, write
    /// 30 s, idle off).
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// The engine's settings (limits, compression offer).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Trusts an extra root certificate (PEM) for `wss://`.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn add_root_certificates_pem(mut self, pem: &[u8]) -> Result<Self> {
        self.tls.extra_roots.extend(crate::tls::load_certs(pem)?);
        Ok(self)
    }

    /// Accepts any server certificate. For testing only.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn danger_accept_invalid_certs(mut self, insecure: bool) -> Self {
        self.tls.insecure = insecure;
        self
    }

    /// The URL this builder connects to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Opens the TCP (and TLS) connection and performs the handshake,
    /// following redirects if asked ([`follow_redirects`](Self::follow_redirects)).
    pub async fn connect(&self) -> Result<ClientSocket> {
        match self.setup_timeout {
            Some(limit) => tokio::time::timeout(limit, self.connect_following())
                .await
                .map_err(|_| Error::Timeout("connecting (TCP, TLS and handshake)"))?,
            None => self.connect_following().await,
        }
    }

    /// [`connect`](Self::connect) without the overall timeout.
    async fn connect_following(&self) -> Result<ClientSocket> {
        let mut url = self.url.clone();
        let mut headers = self.headers.clone();
        let mut redirects = 0;
        loop {
            let target = Target::parse(&url)?;
            let stream = tokio::time::timeout(self.connect_timeout, self.open(&target))
                .await
                .map_err(|_| Error::Timeout("connecting"))??;
            #[cfg(unix)]
            let low_water = crate::transport::low_water_for(&stream);
            let exchange = tokio::time::timeout(
                self.handshake_timeout,
                self.exchange(stream, &target, &url, &headers),
            )
            .await
            .map_err(|_| Error::Timeout("waiting for the handshake response"))??;
            let (error, location) = match exchange {
                #[allow(unused_mut)]
                Exchange::Open(mut ws) => {
                    #[cfg(unix)]
                    ws.set_low_water(low_water);
                    return Ok(ws);
                }
                Exchange::Refused { error, location } => (error, location),
            };
            let location = match location {
                Some(location) if crate::redirect::is_redirect(error.status()) => location,
                _ => return Err(Error::Handshake(error)),
            };
            if redirects >= self.max_redirects {
                if self.max_redirects == 0 {
                    return Err(Error::Handshake(error));
                }
                let status = error.status().unwrap_or(0);
                return Err(Error::Handshake(HandshakeError::new(
                    status,
                    format!(
                        "more than {} redirects; the last to {location}",
                        self.max_redirects
                    ),
                )));
            }
            let next = crate::redirect::resolve(&url, &location)?;
            if let Some(inspector) = &self.inspector {
                inspector.see(HandshakeStep::Redirect {
                    status: error.status().unwrap_or(0),
                    to: &next,
                });
            }
            headers = crate::redirect::headers_for(&url, &next, &headers);
            url = next;
            redirects += 1;
        }
    }

    /// The proxy for `target`, if any: the explicit one, or the
    /// environment's.
    fn proxy_for(&self, target: &Target) -> Result<Option<Proxy>, ProxyError> {
        match &self.proxy {
            ProxyChoice::Never => Ok(None),
            ProxyChoice::Url(url) => Proxy::parse(url).map(Some),
            ProxyChoice::Environment => {
                let lookup = |name: &str| std::env::var(name).ok();
                let Some(found) =
                    proxy::from_environment(target.tls, &target.host, target.port, lookup)
                else {
                    return Ok(None);
                };
                Proxy::parse(&found.url).map(Some).map_err(|e| match e {
                    ProxyError::Url { proxy, why } => ProxyError::Url {
                        proxy,
                        why: format!("{why} (from the variable {})", found.variable),
                    },
                    other => other,
                })
            }
        }
    }

    /// A TCP connection to the target: direct, or a tunnel through the
    /// proxy.
    async fn tcp_to(&self, target: &Target) -> Result<TcpStream> {
        if let Some(proxy) = self.proxy_for(target)? {
            tracing::debug!(%proxy, host = %target.host, port = target.port, "connecting through a proxy");
            return Ok(proxy::tunnel(&proxy, &target.host, target.port).await?);
        }
        let tcp = TcpStream::connect((target.host.as_str(), target.port)).await?;
        tcp.set_nodelay(true)?;
        Ok(tcp)
    }

    async fn open(&self, target: &Target) -> Result<MaybeTlsStream> {
        let tcp = self.tcp_to(target).await?;
        if !target.tls {
            return Ok(MaybeTlsStream::Plain(tcp));
        }
        #[cfg(feature = "tls")]
        {
            let config = crate::tls::client_config(&self.tls)?;
            let name =
                rustls::pki_types::ServerName::try_from(target.host.clone()).map_err(|e| {
                    Error::Tls(Failure::caused_by(
                        format!("server name {}", target.host),
                        e,
                    ))
                })?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, crate::ReadAhead::new(tcp))
                .await
                .map_err(|e| crate::tls::handshake_error(&target.host, e))?;
            Ok(MaybeTlsStream::ClientTls(Box::new(tls)))
        }
        #[cfg(not(feature = "tls"))]
        Err(Error::Url(Failure::new("wss:// needs the `tls` feature")))
    }

    /// Performs the handshake over an already open stream (no redirects:
    /// a redirect is an [`Error::Handshake`] with its status).
    pub async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: S,
        target: &Target,
    ) -> Result<WebSocket<S>> {
        let exchange = tokio::time::timeout(
            self.handshake_timeout,
            self.exchange(stream, target, &self.url, &self.headers),
        )
        .await
        .map_err(|_| Error::Timeout("waiting for the handshake response"))??;
        match exchange {
            Exchange::Open(ws) => Ok(ws),
            Exchange::Refused { error, .. } => Err(Error::Handshake(error)),
        }
    }

    /// Writes the upgrade request for `url` with `headers` and reads the
    /// answer: the open socket, or the refusal with its body and
    /// `Location`.
    async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut stream: S,
        target: &Target,
        url: &str,
        headers: &Headers,
    ) -> Result<Exchange<S>> {
        let protocols: Vec<&str> = self.protocols.iter().map(String::as_str).collect();
        // Refuses, rather than cleans up, a header or subprotocol that
        // cannot be sent as given.
        let request = ClientRequest::try_new(
            &target.host_header,
            &target.resource,
            &protocols,
            headers,
            &self.config,
        )
        .map_err(Error::Handshake)?;
        if let Some(inspector) = &self.inspector {
            inspector.see(HandshakeStep::Request {
                url,
                head: &String::from_utf8_lossy(request.bytes()),
            });
        }
        stream.write_all(request.bytes()).await?;
        stream.flush().await?;
        let mut buf = BytesMut::with_capacity(1024);
        let (response, used) = loop {
            // A TLS record (alert or handshake) where HTTP was expected.
            if !target.tls && matches!(buf.first(), Some(0x15 | 0x16)) {
                return Err(Error::Handshake(HandshakeError::aborted(
                    "the server answered with TLS: use a wss:// URL",
                )));
            }
            if let Some(parsed) = parse_response(&buf, &self.limits)? {
                break parsed;
            }
            if stream.read_buf(&mut buf).await? == 0 {
                return Err(Error::Handshake(HandshakeError::aborted(
                    "connection closed during the handshake",
                )));
            }
        };
        if let Some(inspector) = &self.inspector {
            inspector.see(HandshakeStep::Response {
                status: response.status,
                reason: &response.reason,
                headers: &response.headers,
            });
        }
        if response.status != 101 {
            let error = match request.accept(&response, Arc::new(self.config.clone())) {
                Err(error) => error,
                Ok(_) => HandshakeError::new(response.status, "not 101 Switching Protocols"),
            };
            let error =
                match crate::rejection::read_body(&mut stream, &response.headers, &buf[used..])
                    .await
                {
                    Some(body) => error.with_body(body),
                    None => error,
                };
            return Ok(Exchange::Refused {
                error,
                location: response.headers.get("location").map(str::to_string),
            });
        }
        let established = request.accept(&response, Arc::new(self.config.clone()))?;
        let mut ws = WebSocket::from_parts(stream, established.connection, &buf[used..]);
        ws.set_protocol(established.protocol);
        ws.set_keepalive(self.keepalive);
        ws.set_timeouts(self.timeouts);
        Ok(Exchange::Open(ws))
    }
}

/// How an upgrade request was answered.
enum Exchange<S> {
    /// 101: the connection is open.
    Open(WebSocket<S>),
    /// Any other status (with the body read into the error), and the
    /// `Location` header if there was one.
    Refused {
        error: HandshakeError,
        location: Option<String>,
    },
}

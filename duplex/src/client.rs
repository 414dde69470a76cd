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

    /// Opens the TCP (and TLS) connection and performs the handshake.
    pub async fn connect(&self) -> Result<ClientSocket> {
        let target = Target::parse(&self.url)?;
        let stream = tokio::time::timeout(self.connect_timeout, self.open(&target))
            .await
            .map_err(|_| Error::Timeout("connecting"))??;
        #[cfg(unix)]
        let low_water = crate::transport::low_water_for(&stream);
        #[allow(unused_mut)]
        let mut ws = self.handshake(stream, &target).await?;
        #[cfg(unix)]
        ws.set_low_water(low_water);
        Ok(ws)
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
                .map_err(|e| Error::Tls(Failure::caused_by("handshake", e)))?;
            Ok(MaybeTlsStream::ClientTls(Box::new(tls)))
        }
        #[cfg(not(feature = "tls"))]
        Err(Error::Url(Failure::new("wss:// needs the `tls` feature")))
    }

    /// Performs the handshake over an already open stream.
    pub async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: S,
        target: &Target,
    ) -> Result<WebSocket<S>> {
        tokio::time::timeout(self.handshake_timeout, self.handshake_inner(stream, target))
            .await
            .map_err(|_| Error::Timeout("waiting for the handshake response"))?
    }

    async fn handshake_inner<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut stream: S,
        target: &Target,
    ) -> Result<WebSocket<S>> {
        let protocols: Vec<&str> = self.protocols.iter().map(String::as_str).collect();
        // Refuses, rather than cleans up, a header or subprotocol that
        // cannot be sent as given.
        let request = ClientRequest::try_new(
            &target.host_header,
            &target.resource,
            &protocols,
            &self.headers,
            &self.config,
        )
        .map_err(Error::Handshake)?;
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
        let established = request.accept(&response, Arc::new(self.config.clone()))?;
        let mut ws = WebSocket::from_parts(stream, established.connection, &buf[used..]);
        ws.set_protocol(established.protocol);
        ws.set_keepalive(self.keepalive);
        ws.set_timeouts(self.timeouts);
        Ok(ws)
    }
}

//! [`ProxyError`]: what went wrong with a proxy, naming it.

use super::url::Proxy;

/// A proxy could not be used or refused the tunnel. Every variant names
/// the proxy (as `scheme://host:port`, never with its credentials), so that
/// a user sees at once that the proxy, not the target, said no.
///
/// ```no_run
/// # async fn example() {
/// use duplex::{proxy::ProxyError, Error};
/// let result = duplex::ClientBuilder::new("ws://example.com/chat")
///     .proxy("http://127.0.0.1:3128")
///     .connect()
///     .await;
/// if let Err(Error::Proxy(e)) = result {
///     if e.status() == Some(407) {
///         println!("{} wants credentials: http://user:password@host:port", e.proxy());
///     }
/// }
/// # }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ProxyError {
    /// The proxy URL cannot be used (scheme, host, encoding).
    Url {
        /// The proxy URL, without credentials.
        proxy: String,
        /// Why not.
        why: String,
    },
    /// The TCP connection to the proxy failed (refused, unreachable).
    Unreachable {
        /// The proxy.
        proxy: String,
        /// The socket error.
        source: std::io::Error,
    },
    /// The HTTP proxy answered `CONNECT` with a status other than 2xx:
    /// `407` when credentials are missing or wrong (some proxies, such as
    /// older tinyproxy releases, say `401`: it gets the same hint), `403`
    /// when the target is not allowed, `502`/`504` when the proxy cannot
    /// reach it.
    Refused {
        /// The proxy.
        proxy: String,
        /// The HTTP status.
        status: u16,
        /// The reason phrase the proxy gave.
        reason: String,
        /// Whether credentials (from the proxy URL) were sent.
        credentials_sent: bool,
    },
    /// The SOCKS5 proxy refused the connection, the target or the
    /// credentials, or broke its protocol.
    Socks {
        /// The proxy.
        proxy: String,
        /// The SOCKS failure, as the SOCKS client reported it.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The HTTP proxy's reply was not one: not HTTP, larger than the
    /// limit, or the connection ended before it was complete.
    BadReply {
        /// The proxy.
        proxy: String,
        /// What was wrong.
        why: String,
    },
}

impl ProxyError {
    pub(crate) fn url(proxy: impl Into<String>, why: impl Into<String>) -> ProxyError {
        ProxyError::Url {
            proxy: proxy.into(),
            why: why.into(),
        }
    }

    pub(crate) fn unreachable(proxy: &Proxy, source: std::io::Error) -> ProxyError {
        ProxyError::Unreachable {
            proxy: proxy.to_string(),
            source,
        }
    }

    pub(crate) fn bad_reply(proxy: &Proxy, why: impl Into<String>) -> ProxyError {
        ProxyError::BadReply {
            proxy: proxy.to_string(),
            why: why.into(),
        }
    }

    /// The proxy this error is about (`scheme://host:port`).
    pub fn proxy(&self) -> &str {
        match self {
            ProxyError::Url { proxy, .. }
            | ProxyError::Unreachable { proxy, .. }
            | ProxyError::Refused { proxy, .. }
            | ProxyError::Socks { proxy, .. }
            | ProxyError::BadReply { proxy, .. } => proxy,
        }
    }

    /// The HTTP status of a refused `CONNECT` (e.g. 407), if that is what
    /// happened.
    pub fn status(&self) -> Option<u16> {
        match self {
            ProxyError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl std::fmt::Display for ProxyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProxyError::Url { proxy, why } => write!(f, "proxy {proxy}: {why}"),
            ProxyError::Unreachable { proxy, source } => {
                write!(f, "cannot reach the proxy {proxy}: {source}")
            }
            ProxyError::Refused {
                proxy,
                status,
                reason,
                credentials_sent,
            } => {
                write!(f, "proxy {proxy} refused the tunnel: HTTP {status}")?;
                if !reason.is_empty() {
                    write!(f, " {reason}")?;
                }
                match (status, credentials_sent) {
                    (401 | 407, false) => f.write_str(
                        " (the proxy wants credentials: give them in the proxy URL, \
                         http://USER:PASSWORD@HOST:PORT)",
                    ),
                    (401 | 407, true) => {
                        f.write_str(" (the credentials in the proxy URL were not accepted)")
                    }
                    _ => Ok(()),
                }
            }
            ProxyError::Socks { proxy, source } => write!(f, "SOCKS5 proxy {proxy}: {source}"),
            ProxyError::BadReply { proxy, why } => write!(f, "proxy {proxy}: {why}"),
        }
    }
}

impl std::error::Error for ProxyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ProxyError::Unreachable { source, .. } => Some(source),
            ProxyError::Socks { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}

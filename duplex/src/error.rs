//! The errors of the async layer.

use duplex_proto::{HandshakeError, ProtocolError, SendError};

use crate::proxy::ProxyError;

/// Anything that can go wrong on a WebSocket connection.
///
/// ```no_run
/// # async fn example() {
/// match duplex::connect("ws://127.0.0.1:8080/echo").await {
///     Ok(_ws) => println!("connected"),
///     Err(duplex::Error::Handshake(e)) if e.status() == Some(401) => println!("log in first"),
///     Err(duplex::Error::Io(e)) => println!("cannot reach the server: {e}"),
///     Err(other) => println!("failed: {other}"),
/// }
/// # }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The socket failed (refused, reset, ...).
    Io(std::io::Error),
    /// The opening handshake failed; on a client, [`HandshakeError::status`]
    /// is the server's HTTP status.
    Handshake(HandshakeError),
    /// The peer broke the protocol; a close frame with the matching code
    /// was sent.
    Protocol(ProtocolError),
    /// The connection is closing or closed: nothing more can be sent.
    Closed,
    /// The peer went away without a close frame (close code 1006).
    AbnormalClose,
    /// An operation took longer than its limit.
    Timeout(&'static str),
    /// A URL that cannot be connected to.
    Url(Failure),
    /// TLS setup or handshake failed; [`Failure::is_certificate`] tells a
    /// rejected server certificate apart.
    Tls(Failure),
    /// The outbound queue of a connection was full (slow consumer).
    QueueFull,
    /// The proxy could not be used or refused the tunnel (with the HTTP
    /// status of a refused `CONNECT`: [`ProxyError::status`]).
    Proxy(ProxyError),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Io(e) => write!(f, "{e}"),
            Error::Handshake(e) => write!(f, "handshake failed: {e}"),
            Error::Protocol(e) => write!(f, "protocol error: {e}"),
            Error::Closed => f.write_str("connection closed"),
            Error::AbnormalClose => f.write_str("connection closed abnormally (no close frame)"),
            Error::Timeout(what) => write!(f, "timed out: {what}"),
            Error::Url(why) => write!(f, "bad URL: {why}"),
            Error::Tls(why) => write!(f, "TLS: {why}"),
            Error::QueueFull => f.write_str("outbound queue full"),
            Error::Proxy(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            Error::Handshake(e) => Some(e),
            Error::Protocol(e) => Some(e),
            Error::Url(failure) | Error::Tls(failure) => failure.source(),
            Error::Proxy(e) => Some(e),
            _ => None,
        }
    }
}

impl Error {
    /// Whether trying again cannot help, so a reconnecting client should
    /// give up at once: a bad URL, a rejected certificate, or a refusal
    /// with a 3xx (a redirect not followed) or 4xx status other than 408
    /// (request timeout) and 429 (too many requests), which say to come
    /// back later. Everything else (refused, reset, timeouts, 5xx) may pass.
    ///
    /// ```
    /// use duplex::{proto::HandshakeError, Error};
    /// assert!(Error::Handshake(HandshakeError::new(403, "forbidden")).is_permanent());
    /// assert!(!Error::Handshake(HandshakeError::new(429, "slow down")).is_permanent());
    /// assert!(!Error::Handshake(HandshakeError::new(503, "busy")).is_permanent());
    /// assert!(!Error::Timeout("connecting").is_permanent());
    /// ```
    pub fn is_permanent(&self) -> bool {
        match self {
            Error::Url(_) => true,
            Error::Tls(failure) => failure.is_certificate(),
            Error::Handshake(e) => {
                matches!(e.status(), Some(s) if (300..500).contains(&s) && s != 408 && s != 429)
            }
            _ => false,
        }
    }
}

/// What failed, in words, and the error that caused it when there is one
/// ([`std::error::Error::source`]).
#[derive(Debug)]
pub struct Failure {
    what: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
    certificate: bool,
}

impl Failure {
    /// A failure with no underlying error.
    pub(crate) fn new(what: impl Into<String>) -> Failure {
        Failure {
            what: what.into(),
            source: None,
            certificate: false,
        }
    }

    /// A failure caused by `source`.
    pub(crate) fn caused_by(
        what: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Failure {
        Failure {
            what: what.into(),
            source: Some(source.into()),
            certificate: false,
        }
    }

    /// Marks the failure as a rejected server certificate.
    #[cfg(feature = "tls")]
    pub(crate) fn certificate(mut self) -> Failure {
        self.certificate = true;
        self
    }

    /// Whether this is a rejected server certificate (unknown issuer,
    /// wrong name, expired, ...): trying again cannot help; the user has
    /// to trust the issuer or skip the check.
    pub fn is_certificate(&self) -> bool {
        self.certificate
    }

    /// What failed, without the cause.
    pub fn what(&self) -> &str {
        &self.what
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            Some(source) => write!(f, "{}: {source}", self.what),
            None => f.write_str(&self.what),
        }
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<HandshakeError> for Error {
    fn from(e: HandshakeError) -> Self {
        Error::Handshake(e)
    }
}

impl From<ProxyError> for Error {
    fn from(e: ProxyError) -> Self {
        Error::Proxy(e)
    }
}

impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Self {
        Error::Protocol(e)
    }
}

impl From<SendError> for Error {
    fn from(e: SendError) -> Self {
        match e {
            SendError::Closed => Error::Closed,
            other => Error::Io(std::io::Error::new(std::io::ErrorKind::InvalidInput, other)),
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

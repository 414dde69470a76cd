//! The errors of the async layer.

use duplex_proto::{HandshakeError, ProtocolError, SendError};

/// Anything that can go wrong on a WebSocket connection.
#[derive(Debug)]
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
    Url(String),
    /// TLS setup or handshake failed.
    Tls(String),
    /// The outbound queue of a connection was full (slow consumer).
    QueueFull,
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
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            Error::Handshake(e) => Some(e),
            Error::Protocol(e) => Some(e),
            _ => None,
        }
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

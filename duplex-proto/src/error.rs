//! Errors of the protocol engine.
//!
//! A [`ProtocolError`] happens after the upgrade and maps to the close code
//! the engine sends ([`ProtocolError::close_code`]); a [`HandshakeError`]
//! happens before it and maps to an HTTP status ([`HandshakeError::status`]).

use crate::close::{CloseCode, InvalidClose};

/// The peer broke RFC 6455 (or a limit) after the handshake. The engine has
/// already queued a close frame with [`ProtocolError::close_code`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// An opcode reserved by RFC 6455 (3-7, 0xB-0xF).
    ReservedOpCode(u8),
    /// RSV1-3 set without an extension that defines them.
    ReservedBits,
    /// A 64-bit length with the most significant bit set.
    InvalidLength,
    /// A client sent an unmasked frame (servers require masking).
    UnmaskedFrame,
    /// A server sent a masked frame (clients forbid masking).
    MaskedFrame,
    /// A control frame longer than 125 bytes.
    ControlFrameTooLong,
    /// A control frame without FIN.
    FragmentedControlFrame,
    /// A continuation frame with no message in progress.
    UnexpectedContinuation,
    /// A new text/binary frame while a fragmented message is in progress.
    ExpectedContinuation,
    /// Text that is not UTF-8 (in a message or a close reason).
    InvalidUtf8,
    /// A close frame payload of exactly one byte.
    InvalidClosePayload,
    /// A close code that may not be sent on the wire.
    InvalidCloseCode(u16),
    /// A frame longer than the configured maximum.
    FrameTooBig {
        /// The frame's claimed length.
        len: u64,
        /// The configured maximum.
        max: usize,
    },
    /// A message longer than the configured maximum.
    MessageTooBig {
        /// The configured maximum.
        max: usize,
    },
    /// Compressed data that does not inflate.
    CompressionError(String),
    /// The message does not fit in what the server may buffer for all
    /// its connections together (its memory budget), though it is within
    /// the per-message limit. Raised by the I/O layer through
    /// [`Connection::fail`](crate::Connection::fail).
    OverMemoryBudget,
}

impl ProtocolError {
    /// The close code that answers this error (RFC 6455 §7.4.1).
    pub fn close_code(&self) -> CloseCode {
        match self {
            ProtocolError::InvalidUtf8 => CloseCode::InvalidData,
            ProtocolError::FrameTooBig { .. }
            | ProtocolError::MessageTooBig { .. }
            | ProtocolError::OverMemoryBudget => CloseCode::TooBig,
            _ => CloseCode::Protocol,
        }
    }
}

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProtocolError::ReservedOpCode(op) => write!(f, "reserved opcode {op:#x}"),
            ProtocolError::ReservedBits => f.write_str("reserved bits set"),
            ProtocolError::InvalidLength => f.write_str("invalid 64-bit payload length"),
            ProtocolError::UnmaskedFrame => f.write_str("client frame is not masked"),
            ProtocolError::MaskedFrame => f.write_str("server frame is masked"),
            ProtocolError::ControlFrameTooLong => {
                f.write_str("control frame longer than 125 bytes")
            }
            ProtocolError::FragmentedControlFrame => f.write_str("fragmented control frame"),
            ProtocolError::UnexpectedContinuation => {
                f.write_str("continuation frame without a message in progress")
            }
            ProtocolError::ExpectedContinuation => {
                f.write_str("new message while a fragmented message is in progress")
            }
            ProtocolError::InvalidUtf8 => f.write_str("invalid UTF-8 in text"),
            ProtocolError::InvalidClosePayload => f.write_str("close payload of one byte"),
            ProtocolError::InvalidCloseCode(code) => write!(f, "invalid close code {code}"),
            ProtocolError::FrameTooBig { len, max } => {
                write!(f, "frame of {len} bytes exceeds the limit of {max}")
            }
            ProtocolError::MessageTooBig { max } => {
                write!(f, "message exceeds the limit of {max} bytes")
            }
            ProtocolError::CompressionError(why) => write!(f, "compressed data is invalid: {why}"),
            ProtocolError::OverMemoryBudget => {
                f.write_str("message does not fit in the server's memory budget")
            }
        }
    }
}

impl std::error::Error for ProtocolError {}

impl From<InvalidClose> for ProtocolError {
    fn from(invalid: InvalidClose) -> Self {
        match invalid {
            InvalidClose::OneByte => ProtocolError::InvalidClosePayload,
            InvalidClose::Code(code) => ProtocolError::InvalidCloseCode(code),
            InvalidClose::Reason => ProtocolError::InvalidUtf8,
        }
    }
}

/// The opening handshake failed.
///
/// On the server side it carries the HTTP status to answer with
/// ([`HandshakeError::status`]); on the client side, either the status the
/// server refused with, or no status when the server's answer was not a
/// valid WebSocket response at all.
///
/// ```
/// use duplex_proto::HandshakeError;
/// let refused = HandshakeError::new(403, "origin not allowed");
/// assert_eq!(refused.status(), Some(403));
/// assert_eq!(refused.to_string(), "origin not allowed (HTTP 403)");
/// let broken = HandshakeError::invalid_response("wrong Sec-WebSocket-Accept");
/// assert_eq!(broken.status(), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeError {
    status: Option<u16>,
    message: String,
    body: Option<String>,
}

impl HandshakeError {
    /// An error with an HTTP status and a short explanation.
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        HandshakeError {
            status: Some(status),
            message: message.into(),
            body: None,
        }
    }

    /// A server response that is not a valid answer to the upgrade (client
    /// side): malformed, a wrong accept key, a subprotocol or extension
    /// that was not offered.
    pub fn invalid_response(message: impl Into<String>) -> Self {
        HandshakeError {
            status: None,
            message: format!("invalid handshake response: {}", message.into()),
            body: None,
        }
    }

    /// A request this client cannot send (client side): a header, host,
    /// target or subprotocol that would not survive being written into the
    /// request head.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        HandshakeError {
            status: None,
            message: format!("invalid handshake request: {}", message.into()),
            body: None,
        }
    }

    /// A handshake that ended before it completed (the connection closed,
    /// TLS where HTTP was expected), without any status.
    pub fn aborted(message: impl Into<String>) -> Self {
        HandshakeError {
            status: None,
            message: message.into(),
            body: None,
        }
    }

    /// The HTTP status: 400 for a malformed request, 426 for a wrong
    /// version, 431 for oversized headers; on the client side, the status
    /// the server refused with. `None` when there is no status: the
    /// server's answer was not a valid response.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// What went wrong, in a few words.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The same error with the body of the server's refusal (client side),
    /// because servers often say there why they refused (a login page, a
    /// JSON error). The caller bounds its size; it is not part of
    /// [`Display`](std::fmt::Display).
    ///
    /// ```
    /// use duplex_proto::HandshakeError;
    /// let refused = HandshakeError::new(403, "forbidden").with_body("token expired");
    /// assert_eq!(refused.body(), Some("token expired"));
    /// ```
    pub fn with_body(mut self, body: impl Into<String>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// The body of the server's refusal, if it sent one (see
    /// [`HandshakeError::with_body`]).
    pub fn body(&self) -> Option<&str> {
        self.body.as_deref()
    }
}

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            None => f.write_str(&self.message),
            Some(status) => write!(f, "{} (HTTP {status})", self.message),
        }
    }
}

impl std::error::Error for HandshakeError {}

/// A message could not be queued for sending.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The close handshake has started (or the connection failed): no more
    /// messages may be sent.
    Closed,
    /// A ping, pong or close payload longer than 125 bytes.
    ControlFrameTooLong,
    /// A close code that may not be sent on the wire (1005, 1006, 1015, ...).
    InvalidCloseCode(u16),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Closed => f.write_str("the connection is closing or closed"),
            SendError::ControlFrameTooLong => {
                f.write_str("control frame payload longer than 125 bytes")
            }
            SendError::InvalidCloseCode(code) => write!(f, "close code {code} may not be sent"),
        }
    }
}

impl std::error::Error for SendError {}

//! The messages an application sends and receives.

use bytes::Bytes;

use crate::close::CloseFrame;

/// UTF-8 text backed by [`Bytes`], so that a received text message can be
/// sliced out of the read buffer and a message sent to many peers shared,
/// without copying.
///
/// ```
/// use duplex_proto::Utf8Bytes;
/// let text = Utf8Bytes::from("héllo");
/// assert_eq!(text.as_str(), "héllo");
/// assert_eq!(&*text, "héllo"); // derefs to str
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Utf8Bytes(Bytes);

impl Utf8Bytes {
    /// Wraps bytes already known to be UTF-8, checking them.
    pub fn try_from_bytes(bytes: Bytes) -> Result<Self, std::str::Utf8Error> {
        std::str::from_utf8(&bytes)?;
        Ok(Utf8Bytes(bytes))
    }

    /// Wraps bytes the engine has validated itself.
    pub(crate) fn from_validated(bytes: Bytes) -> Self {
        debug_assert!(std::str::from_utf8(&bytes).is_ok());
        Utf8Bytes(bytes)
    }

    /// A static string, without allocating.
    pub const fn from_static(text: &'static str) -> Self {
        Utf8Bytes(Bytes::from_static(text.as_bytes()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Every constructor validates, so this cannot fail; fall back to an
        // empty string rather than use unsafe code.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The underlying bytes (cheap: reference counted).
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// Unwraps the underlying bytes.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

impl std::ops::Deref for Utf8Bytes {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Debug for Utf8Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

impl std::fmt::Display for Utf8Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

impl From<String> for Utf8Bytes {
    fn from(s: String) -> Self {
        Utf8Bytes(Bytes::from(s))
    }
}

impl From<&str> for Utf8Bytes {
    fn from(s: &str) -> Self {
        Utf8Bytes(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<Utf8Bytes> for Bytes {
    fn from(t: Utf8Bytes) -> Bytes {
        t.0
    }
}

impl PartialEq<str> for Utf8Bytes {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Utf8Bytes {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// A WebSocket message, as sent and received.
///
/// `Ping`, `Pong` and `Close` are control messages: the engine answers
/// pings and closes by itself, and hands them out so the application can
/// see them.
///
/// ```
/// use duplex_proto::{CloseCode, CloseFrame, Message};
///
/// let hello = Message::text("hello");           // from &str or String
/// let data = Message::binary(vec![1u8, 2, 3]); // from Vec<u8>, Bytes, &'static [u8]
/// assert!(hello.is_data() && data.is_data());
/// assert_eq!(data.len(), 3);
///
/// match hello {
///     Message::Text(text) => assert_eq!(text.as_str(), "hello"),
///     Message::Binary(bytes) => println!("{} bytes", bytes.len()),
///     Message::Ping(_) | Message::Pong(_) => {} // answered by the engine
///     Message::Close(frame) => println!("closed: {frame:?}"),
/// }
/// let bye = Message::Close(Some(CloseFrame::new(CloseCode::Normal, "bye")));
/// assert!(!bye.is_data());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message (always valid UTF-8).
    Text(Utf8Bytes),
    /// A binary message.
    Binary(Bytes),
    /// A ping (at most 125 bytes of payload).
    Ping(Bytes),
    /// A pong (at most 125 bytes of payload).
    Pong(Bytes),
    /// A close frame; `None` when it carried no status code.
    Close(Option<CloseFrame>),
}

impl Message {
    /// A text message.
    pub fn text(text: impl Into<Utf8Bytes>) -> Message {
        Message::Text(text.into())
    }

    /// A binary message.
    pub fn binary(data: impl Into<Bytes>) -> Message {
        Message::Binary(data.into())
    }

    /// Whether this is a text or binary message (not a control message).
    pub fn is_data(&self) -> bool {
        matches!(self, Message::Text(_) | Message::Binary(_))
    }

    /// The payload length in bytes (for a close, the reason's length).
    pub fn len(&self) -> usize {
        match self {
            Message::Text(t) => t.len(),
            Message::Binary(b) | Message::Ping(b) | Message::Pong(b) => b.len(),
            Message::Close(c) => c.as_ref().map_or(0, |c| c.reason.len()),
        }
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<String> for Message {
    fn from(s: String) -> Self {
        Message::text(s)
    }
}

impl From<&str> for Message {
    fn from(s: &str) -> Self {
        Message::text(s)
    }
}

impl From<Vec<u8>> for Message {
    fn from(v: Vec<u8>) -> Self {
        Message::binary(v)
    }
}

impl From<Bytes> for Message {
    fn from(b: Bytes) -> Self {
        Message::Binary(b)
    }
}

/// A text or binary message lent from the read buffer, without an
/// allocation or a copy (see
/// [`Connection::lend_buffered`](crate::Connection::lend_buffered)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageRef<'a> {
    /// A text message (always valid UTF-8).
    Text(&'a str),
    /// A binary message.
    Binary(&'a [u8]),
}

impl<'a> MessageRef<'a> {
    /// Whether this is a text message.
    pub fn is_text(&self) -> bool {
        matches!(self, MessageRef::Text(_))
    }

    /// The payload.
    pub fn as_bytes(&self) -> &'a [u8] {
        match self {
            MessageRef::Text(text) => text.as_bytes(),
            MessageRef::Binary(data) => data,
        }
    }

    /// An owned copy, to keep beyond the lending call.
    pub fn to_message(&self) -> Message {
        match self {
            MessageRef::Text(text) => Message::text(*text),
            MessageRef::Binary(data) => Message::binary(data.to_vec()),
        }
    }
}

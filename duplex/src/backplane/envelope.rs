//! [`Envelope`]: a room message as it travels between nodes.
//!
//! A fixed 26-byte header, then the payload unchanged:
//!
//! | bytes | field |
//! | --- | --- |
//! | 0 | format version, [`ENVELOPE_VERSION`] (1) |
//! | 1 | flags: bit 0 set = binary message, clear = text (other bits 0) |
//! | 2..10 | the sending node's instance id (random per process), big-endian |
//! | 10..18 | sequence number per (instance, room), from 1; 0 = not sequenced |
//! | 18..26 | send time, microseconds since the Unix epoch, big-endian |
//! | 26.. | the payload (UTF-8 for text) |
//!
//! The instance id is what lets a node recognise its own messages: a
//! random 64-bit number drawn at start, not a configured name, so two nodes
//! given the same `--node-id` can never filter out each other's messages.
//! A service that publishes straight into Redis writes the same header with
//! its own instance id and sequence 0 (no gap tracking).

use bytes::{Bytes, BytesMut};
use duplex_proto::{Message, Utf8Bytes};

/// The envelope format this build writes and reads.
pub const ENVELOPE_VERSION: u8 = 1;

/// Header length in bytes.
const HEADER: usize = 26;

/// Flag bit: the message is binary.
const BINARY: u8 = 1;

/// One room message with what the receiving node needs to check it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The sending node's instance id.
    pub instance: u64,
    /// The sender's sequence number in this room (0: not sequenced).
    pub seq: u64,
    /// When the sender published it, in microseconds since the Unix epoch.
    pub sent_us: u64,
    /// The message, text or binary.
    pub message: Message,
}

/// Why bytes from the backplane are not an [`Envelope`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// Shorter than the header.
    Truncated,
    /// A format version this build does not read.
    Version(u8),
    /// Flag bits this build does not know.
    Flags(u8),
    /// A text message whose payload is not UTF-8.
    NotUtf8,
}

impl std::fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EnvelopeError::Truncated => write!(f, "shorter than the {HEADER}-byte envelope header"),
            EnvelopeError::Version(v) => write!(f, "envelope version {v}, not {ENVELOPE_VERSION}"),
            EnvelopeError::Flags(b) => write!(f, "unknown envelope flags {b:#04x}"),
            EnvelopeError::NotUtf8 => write!(f, "a text message that is not UTF-8"),
        }
    }
}

impl std::error::Error for EnvelopeError {}

impl Envelope {
    /// The envelope's bytes: header, then the payload.
    pub fn encode(&self) -> Bytes {
        let (flags, payload): (u8, &[u8]) = match &self.message {
            Message::Binary(b) => (BINARY, b),
            Message::Text(t) => (0, t.as_bytes()),
            // Control frames never enter rooms; carry them as empty binary.
            _ => (BINARY, &[]),
        };
        let mut out = BytesMut::with_capacity(HEADER + payload.len());
        out.extend_from_slice(&[ENVELOPE_VERSION, flags]);
        out.extend_from_slice(&self.instance.to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.sent_us.to_be_bytes());
        out.extend_from_slice(payload);
        out.freeze()
    }

    /// Reads an envelope; the payload is sliced out of `bytes`, not copied.
    pub fn decode(bytes: Bytes) -> Result<Envelope, EnvelopeError> {
        if bytes.len() < HEADER {
            return Err(EnvelopeError::Truncated);
        }
        if bytes[0] != ENVELOPE_VERSION {
            return Err(EnvelopeError::Version(bytes[0]));
        }
        let flags = bytes[1];
        if flags & !BINARY != 0 {
            return Err(EnvelopeError::Flags(flags));
        }
        let word = |at: usize| u64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        let (instance, seq, sent_us) = (word(2), word(10), word(18));
        let payload = bytes.slice(HEADER..);
        let message = if flags & BINARY != 0 {
            Message::Binary(payload)
        } else {
            Message::Text(Utf8Bytes::try_from_bytes(payload).map_err(|_| EnvelopeError::NotUtf8)?)
        };
        Ok(Envelope {
            instance,
            seq,
            sent_us,
            message,
        })
    }
}

/// Microseconds since the Unix epoch, now.
pub(crate) fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_binary_round_trip() {
        for message in [Message::text("héllo"), Message::binary(vec![0u8, 255, 7])] {
            let envelope = Envelope {
                instance: 0x0102_0304_0506_0708,
                seq: 42,
                sent_us: 1_700_000_000_000_000,
                message,
            };
            let bytes = envelope.encode();
            let binary = matches!(envelope.message, Message::Binary(_));
            assert_eq!(&bytes[..2], &[1, binary as u8]);
            assert_eq!(&bytes[2..10], &[1, 2, 3, 4, 5, 6, 7, 8]);
            assert_eq!(Envelope::decode(bytes), Ok(envelope));
        }
    }

    #[test]
    fn bad_envelopes_are_refused() {
        let good = Envelope {
            instance: 1,
            seq: 1,
            sent_us: 1,
            message: Message::text("x"),
        }
        .encode();
        assert_eq!(
            Envelope::decode(good.slice(..25)),
            Err(EnvelopeError::Truncated)
        );
        let mut v = good.to_vec();
        v[0] = 2;
        assert_eq!(
            Envelope::decode(v.clone().into()),
            Err(EnvelopeError::Version(2))
        );
        v[0] = 1;
        v[1] = 0x80;
        assert_eq!(
            Envelope::decode(v.clone().into()),
            Err(EnvelopeError::Flags(0x80))
        );
        v[1] = 0;
        v[26] = 0xff;
        assert_eq!(Envelope::decode(v.into()), Err(EnvelopeError::NotUtf8));
    }
}

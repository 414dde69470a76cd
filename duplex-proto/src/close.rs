//! Close codes and the close frame payload (RFC 6455 §5.5.1, §7.4).

use crate::utf8::Utf8Validator;

/// A close status code (RFC 6455 §7.4.1 and the IANA registry).
///
/// ```
/// use duplex_proto::CloseCode;
/// assert_eq!(u16::from(CloseCode::Normal), 1000);
/// assert_eq!(CloseCode::from(1002), CloseCode::Protocol);
/// assert_eq!(CloseCode::from(4000), CloseCode::Other(4000));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseCode {
    /// 1000: the purpose of the connection was fulfilled.
    Normal,
    /// 1001: the endpoint is going away (server shutdown, page navigation).
    Away,
    /// 1002: the peer broke the protocol.
    Protocol,
    /// 1003: a kind of data the endpoint cannot accept.
    Unsupported,
    /// 1005: no status code was present (never sent on the wire).
    NoStatus,
    /// 1006: the connection closed without a close frame (never sent).
    Abnormal,
    /// 1007: the data of a message was inconsistent with its type (bad UTF-8).
    InvalidData,
    /// 1008: a message violated the endpoint's policy.
    Policy,
    /// 1009: a message was too big to process.
    TooBig,
    /// 1010: the client expected an extension the server did not negotiate.
    MandatoryExtension,
    /// 1011: the server met an unexpected condition.
    Internal,
    /// 1012: the service is restarting.
    Restart,
    /// 1013: try again later (overload).
    TryAgainLater,
    /// 1014: a gateway received an invalid response.
    BadGateway,
    /// 1015: the TLS handshake failed (never sent).
    Tls,
    /// Any other code, including the 3000-4999 application range.
    Other(u16),
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        match code {
            1000 => Self::Normal,
            1001 => Self::Away,
            1002 => Self::Protocol,
            1003 => Self::Unsupported,
            1005 => Self::NoStatus,
            1006 => Self::Abnormal,
            1007 => Self::InvalidData,
            1008 => Self::Policy,
            1009 => Self::TooBig,
            1010 => Self::MandatoryExtension,
            1011 => Self::Internal,
            1012 => Self::Restart,
            1013 => Self::TryAgainLater,
            1014 => Self::BadGateway,
            1015 => Self::Tls,
            other => Self::Other(other),
        }
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> u16 {
        match code {
            CloseCode::Normal => 1000,
            CloseCode::Away => 1001,
            CloseCode::Protocol => 1002,
            CloseCode::Unsupported => 1003,
            CloseCode::NoStatus => 1005,
            CloseCode::Abnormal => 1006,
            CloseCode::InvalidData => 1007,
            CloseCode::Policy => 1008,
            CloseCode::TooBig => 1009,
            CloseCode::MandatoryExtension => 1010,
            CloseCode::Internal => 1011,
            CloseCode::Restart => 1012,
            CloseCode::TryAgainLater => 1013,
            CloseCode::BadGateway => 1014,
            CloseCode::Tls => 1015,
            CloseCode::Other(code) => code,
        }
    }
}

impl std::fmt::Display for CloseCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", u16::from(*self))
    }
}

impl CloseCode {
    /// Whether this code may appear in a close frame on the wire: 1000-1003,
    /// 1007-1014 and 3000-4999. 1004-1006 and 1015 are reserved for local
    /// use, everything else is unassigned.
    pub fn is_sendable(self) -> bool {
        matches!(u16::from(self), 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

/// A close frame's payload: a code and a UTF-8 reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// Why the connection is closing.
    pub code: CloseCode,
    /// A human-readable reason; at most 123 bytes of UTF-8 on the wire.
    pub reason: String,
}

/// Why a received close payload is invalid (RFC 6455 §5.5.1, §7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidClose {
    /// A payload of exactly one byte: half a status code.
    OneByte,
    /// A status code that may not be sent on the wire.
    Code(u16),
    /// A reason that is not UTF-8.
    Reason,
}

impl CloseFrame {
    /// A close frame with a code and a reason.
    pub fn new(code: impl Into<CloseCode>, reason: impl Into<String>) -> Self {
        CloseFrame {
            code: code.into(),
            reason: reason.into(),
        }
    }

    /// Parses a received close payload: empty (no status), or a valid code
    /// followed by a UTF-8 reason. Anything else fails the connection
    /// (with the [`ProtocolError`](crate::ProtocolError) it converts to).
    pub fn parse(payload: &[u8]) -> Result<Option<CloseFrame>, InvalidClose> {
        match payload.len() {
            0 => Ok(None),
            1 => Err(InvalidClose::OneByte),
            _ => {
                let code = CloseCode::from(u16::from_be_bytes([payload[0], payload[1]]));
                if !code.is_sendable() {
                    return Err(InvalidClose::Code(code.into()));
                }
                let reason = &payload[2..];
                let mut utf8 = Utf8Validator::default();
                if utf8.feed(reason).is_err() || !utf8.is_complete() {
                    return Err(InvalidClose::Reason);
                }
                // Validated above.
                let reason = String::from_utf8_lossy(reason).into_owned();
                Ok(Some(CloseFrame { code, reason }))
            }
        }
    }

    /// Encodes the payload, cutting the reason at a character boundary so
    /// that the whole payload fits the 125-byte control frame limit.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&u16::from(self.code).to_be_bytes());
        let mut end = self.reason.len().min(123);
        while !self.reason.is_char_boundary(end) {
            end -= 1;
        }
        out.extend_from_slice(&self.reason.as_bytes()[..end]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_and_invalid_codes() {
        for code in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999,
            4000, 4999,
        ] {
            let payload = u16::to_be_bytes(code);
            assert!(CloseFrame::parse(&payload).unwrap().is_some(), "{code}");
        }
        for code in [
            0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            let payload = u16::to_be_bytes(code);
            assert_eq!(
                CloseFrame::parse(&payload),
                Err(InvalidClose::Code(code)),
                "{code}"
            );
        }
    }

    #[test]
    fn one_byte_payload_is_an_error() {
        assert_eq!(CloseFrame::parse(&[3]), Err(InvalidClose::OneByte));
    }

    #[test]
    fn reason_must_be_utf8() {
        assert_eq!(
            CloseFrame::parse(&[0x03, 0xe8, 0xce, 0xba, 0xe1]),
            Err(InvalidClose::Reason)
        );
        let ok = CloseFrame::parse(&[0x03, 0xe8, b'o', b'k'])
            .unwrap()
            .unwrap();
        assert_eq!(ok, CloseFrame::new(CloseCode::Normal, "ok"));
    }

    #[test]
    fn long_reason_is_cut_at_a_char_boundary() {
        let frame = CloseFrame::new(1000, "é".repeat(100));
        let mut out = Vec::new();
        frame.encode(&mut out);
        assert!(out.len() <= 125);
        assert!(std::str::from_utf8(&out[2..]).is_ok());
    }
}

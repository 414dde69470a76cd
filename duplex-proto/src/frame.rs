//! The frame header codec (RFC 6455 §5.2).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-------+-+-------------+-------------------------------+
//! |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//! |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//! |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//! +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//! ```
//!
//! This module only reads and writes headers. What a header *means* for the
//! connection (masking rules, fragmentation, limits) is checked in
//! [`crate::connection`].

use bytes::BufMut;

use crate::error::ProtocolError;

/// A frame's opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    /// 0x0: continues a fragmented message.
    Continuation,
    /// 0x1: a text message (or its first fragment).
    Text,
    /// 0x2: a binary message (or its first fragment).
    Binary,
    /// 0x8: the close handshake.
    Close,
    /// 0x9: a ping.
    Ping,
    /// 0xA: a pong.
    Pong,
}

impl OpCode {
    /// Decodes the 4-bit opcode; reserved values are a protocol error.
    pub fn from_u8(bits: u8) -> Result<OpCode, ProtocolError> {
        match bits {
            0x0 => Ok(OpCode::Continuation),
            0x1 => Ok(OpCode::Text),
            0x2 => Ok(OpCode::Binary),
            0x8 => Ok(OpCode::Close),
            0x9 => Ok(OpCode::Ping),
            0xA => Ok(OpCode::Pong),
            other => Err(ProtocolError::ReservedOpCode(other)),
        }
    }

    /// The 4-bit wire value.
    pub fn as_u8(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// Close, ping and pong are control frames (§5.5).
    pub fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The final fragment of a message.
    pub fin: bool,
    /// RSV1 (used by permessage-deflate to mark a compressed message).
    pub rsv1: bool,
    /// RSV2, reserved.
    pub rsv2: bool,
    /// RSV3, reserved.
    pub rsv3: bool,
    /// What the frame carries.
    pub opcode: OpCode,
    /// The masking key, present exactly on client-to-server frames.
    pub mask: Option<[u8; 4]>,
    /// The payload length in bytes.
    pub payload_len: u64,
}

/// The longest possible header: 2 + 8 (length) + 4 (mask).
pub const MAX_HEADER_LEN: usize = 14;

impl FrameHeader {
    /// Decodes a header from the start of `buf`. Returns the header and its
    /// length in bytes, or `Ok(None)` when `buf` does not hold a whole
    /// header yet.
    ///
    /// ```
    /// use duplex_proto::bench::{FrameHeader, OpCode};
    /// // RFC 6455 §5.7: a single-frame unmasked text message "Hello".
    /// let (header, len) = FrameHeader::parse(&[0x81, 0x05, b'H']).unwrap().unwrap();
    /// assert_eq!((header.opcode, header.fin, header.payload_len, len), (OpCode::Text, true, 5, 2));
    /// ```
    pub fn parse(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
        if buf.len() < 2 {
            return Ok(None);
        }
        let (b0, b1) = (buf[0], buf[1]);
        let masked = b1 & 0x80 != 0;
        let (payload_len, mut pos) = match b1 & 0x7f {
            126 => {
                if buf.len() < 4 {
                    return Ok(None);
                }
                (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4)
            }
            127 => {
                if buf.len() < 10 {
                    return Ok(None);
                }
                let mut len = [0u8; 8];
                len.copy_from_slice(&buf[2..10]);
                let len = u64::from_be_bytes(len);
                if len >> 63 != 0 {
                    return Err(ProtocolError::InvalidLength);
                }
                (len, 10)
            }
            short => (u64::from(short), 2),
        };
        let mask = if masked {
            if buf.len() < pos + 4 {
                return Ok(None);
            }
            let key = [buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]];
            pos += 4;
            Some(key)
        } else {
            None
        };
        let header = FrameHeader {
            fin: b0 & 0x80 != 0,
            rsv1: b0 & 0x40 != 0,
            rsv2: b0 & 0x20 != 0,
            rsv3: b0 & 0x10 != 0,
            opcode: OpCode::from_u8(b0 & 0x0f)?,
            mask,
            payload_len,
        };
        Ok(Some((header, pos)))
    }

    /// Encodes the header into `out` (which must have room for
    /// [`MAX_HEADER_LEN`] bytes) and returns its length. Lengths use the
    /// shortest form, as §5.2 requires.
    pub fn encode(&self, out: &mut [u8; MAX_HEADER_LEN]) -> usize {
        let mut rest = &mut out[..];
        self.write(&mut rest);
        MAX_HEADER_LEN - rest.len()
    }

    /// Appends the encoded header to `out`. Each field is put with a
    /// fixed-size store, so appending to a write buffer costs no call to
    /// `memcpy` (measurable on small frames).
    pub fn write(&self, out: &mut impl BufMut) {
        out.put_u8(
            (u8::from(self.fin) << 7)
                | (u8::from(self.rsv1) << 6)
                | (u8::from(self.rsv2) << 5)
                | (u8::from(self.rsv3) << 4)
                | self.opcode.as_u8(),
        );
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        match self.payload_len {
            len @ 0..=125 => out.put_u8(mask_bit | len as u8),
            len @ 126..=0xffff => {
                out.put_u8(mask_bit | 126);
                out.put_u16(len as u16);
            }
            len => {
                out.put_u8(mask_bit | 127);
                out.put_u64(len);
            }
        }
        if let Some(key) = self.mask {
            out.put_slice(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(opcode: OpCode, len: u64, mask: Option<[u8; 4]>) -> FrameHeader {
        FrameHeader {
            fin: true,
            rsv1: false,
            rsv2: false,
            rsv3: false,
            opcode,
            mask,
            payload_len: len,
        }
    }

    #[test]
    fn rfc_5_7_headers() {
        // Unmasked "Hello".
        assert_eq!(
            FrameHeader::parse(&[0x81, 0x05]).unwrap(),
            Some((header(OpCode::Text, 5, None), 2))
        );
        // Masked "Hello".
        assert_eq!(
            FrameHeader::parse(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d]).unwrap(),
            Some((header(OpCode::Text, 5, Some([0x37, 0xfa, 0x21, 0x3d])), 6))
        );
        // First fragment of an unmasked text message "Hel".
        let (h, _) = FrameHeader::parse(&[0x01, 0x03]).unwrap().unwrap();
        assert!(!h.fin);
        assert_eq!(h.opcode, OpCode::Text);
        // Unmasked ping "Hello".
        assert_eq!(
            FrameHeader::parse(&[0x89, 0x05]).unwrap().unwrap().0.opcode,
            OpCode::Ping
        );
        // 256 bytes binary message in a single unmasked frame.
        assert_eq!(
            FrameHeader::parse(&[0x82, 0x7E, 0x01, 0x00]).unwrap(),
            Some((header(OpCode::Binary, 256, None), 4))
        );
        // 64KiB binary message in a single unmasked frame.
        assert_eq!(
            FrameHeader::parse(&[0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]).unwrap(),
            Some((header(OpCode::Binary, 65536, None), 10))
        );
    }

    #[test]
    fn encode_round_trips_with_shortest_length() {
        for (len, header_len) in [
            (0, 2),
            (125, 2),
            (126, 4),
            (65535, 4),
            (65536, 10),
            (1 << 40, 10),
        ] {
            for mask in [None, Some([1, 2, 3, 4])] {
                let h = header(OpCode::Binary, len, mask);
                let mut buf = [0u8; MAX_HEADER_LEN];
                let n = h.encode(&mut buf);
                assert_eq!(n, header_len + if mask.is_some() { 4 } else { 0 });
                assert_eq!(FrameHeader::parse(&buf[..n]).unwrap(), Some((h, n)));
                for cut in 0..n {
                    assert_eq!(FrameHeader::parse(&buf[..cut]).unwrap(), None);
                }
            }
        }
    }

    #[test]
    fn top_bit_of_64_bit_length_is_an_error() {
        assert_eq!(
            FrameHeader::parse(&[0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0]),
            Err(ProtocolError::InvalidLength)
        );
    }

    #[test]
    fn reserved_opcodes_are_errors() {
        for op in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
            assert_eq!(
                FrameHeader::parse(&[0x80 | op, 0]),
                Err(ProtocolError::ReservedOpCode(op))
            );
        }
    }
}

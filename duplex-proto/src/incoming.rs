//! What the engine keeps of a frame or message while it arrives, and the
//! rules a received frame header must follow before its payload is read
//! (RFC 6455 §5.1-§5.5, and the size limits).

use bytes::BytesMut;

use crate::config::Config;
use crate::error::ProtocolError;
use crate::frame::{FrameHeader, OpCode};
use crate::role::Role;

/// The header of the frame being received, while its payload arrives.
#[derive(Debug)]
pub(crate) struct IncomingFrame {
    pub(crate) header: FrameHeader,
    pub(crate) len: usize,
    /// How much of the payload is already unmasked (and, for uncompressed
    /// text, validated).
    pub(crate) seen: usize,
    /// Whether to validate the payload as UTF-8 while it arrives.
    pub(crate) validate_text: bool,
}

/// A fragmented message being reassembled.
#[derive(Debug)]
pub(crate) struct IncomingMessage {
    pub(crate) text: bool,
    pub(crate) compressed: bool,
    pub(crate) data: BytesMut,
}

/// Checks a header against the connection's state before its payload
/// is read (RFC 6455 §5.1-§5.5, and the size limits).
pub(crate) fn check_header(
    header: FrameHeader,
    role: Role,
    compressed_on: bool,
    message: Option<&IncomingMessage>,
    config: &Config,
) -> Result<IncomingFrame, ProtocolError> {
    if header.rsv2 || header.rsv3 {
        return Err(ProtocolError::ReservedBits);
    }
    if header.rsv1 && !(compressed_on && matches!(header.opcode, OpCode::Text | OpCode::Binary)) {
        return Err(ProtocolError::ReservedBits);
    }
    match (role, header.mask.is_some()) {
        (Role::Server, false) => return Err(ProtocolError::UnmaskedFrame),
        (Role::Client, true) => return Err(ProtocolError::MaskedFrame),
        _ => {}
    }
    if header.opcode.is_control() {
        if header.payload_len > 125 {
            return Err(ProtocolError::ControlFrameTooLong);
        }
        if !header.fin {
            return Err(ProtocolError::FragmentedControlFrame);
        }
    } else {
        match (header.opcode, message) {
            (OpCode::Continuation, None) => return Err(ProtocolError::UnexpectedContinuation),
            (OpCode::Text | OpCode::Binary, Some(_)) => {
                return Err(ProtocolError::ExpectedContinuation)
            }
            _ => {}
        }
    }
    let max_frame = config.max_frame_size;
    if header.payload_len > max_frame as u64 {
        return Err(ProtocolError::FrameTooBig {
            len: header.payload_len,
            max: max_frame,
        });
    }
    let len = header.payload_len as usize;
    let (text, compressed, so_far) = match (message, header.opcode) {
        (Some(m), OpCode::Continuation) => (m.text, m.compressed, m.data.len()),
        (_, opcode) => (opcode == OpCode::Text, header.rsv1, 0),
    };
    // Compressed payloads are checked after inflating.
    if !header.opcode.is_control()
        && !compressed
        && so_far.saturating_add(len) > config.max_message_size
    {
        return Err(ProtocolError::MessageTooBig {
            max: config.max_message_size,
        });
    }
    Ok(IncomingFrame {
        header,
        len,
        seen: 0,
        validate_text: text && !compressed && !header.opcode.is_control(),
    })
}

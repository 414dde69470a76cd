//! [`Outbox`]: the sending side of a connection, borrowed on its own.
//!
//! Outgoing frames are encoded here: headers, client masking, compression
//! and fragmentation. A [`Connection`](crate::Connection) sends through an
//! `Outbox`, and lends one to the application in
//! [`Connection::lend_buffered`](crate::Connection::lend_buffered), so that
//! replies can be queued while a received payload is still borrowed from
//! the read buffer.

use std::ops::Range;

use bytes::Bytes;

use crate::error::SendError;
use crate::frame::{FrameHeader, OpCode};
use crate::mask::apply_mask;
use crate::message::MessageRef;
use crate::role::Role;
use crate::write_queue::WriteQueue;

/// How many masking keys are drawn from the OS at once (one syscall per
/// this many client frames instead of one per frame).
const MASK_POOL_KEYS: usize = 64;

/// Masking keys drawn from the OS in bulk.
pub(crate) struct MaskPool {
    keys: [u8; MASK_POOL_KEYS * 4],
    next: usize,
}

/// Queues outgoing messages of one connection.
///
/// Handed out by [`Connection::lend_buffered`](crate::Connection::lend_buffered)
/// next to each lent message; see there for an example.
pub struct Outbox<'a> {
    pub(crate) output: &'a mut WriteQueue,
    pub(crate) mask_pool: &'a mut Option<Box<MaskPool>>,
    #[cfg(feature = "deflate")]
    pub(crate) deflate: &'a mut Option<Box<crate::deflate::PerMessageDeflate>>,
    pub(crate) role: Role,
    pub(crate) frame_size: Option<usize>,
    /// Whether a close was sent or the connection failed: no more data.
    pub(crate) closed: bool,
}

impl std::fmt::Debug for Outbox<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("role", &self.role)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

/// A payload to queue: shared with the application (a large one is then
/// queued by reference, not copied), or lent (copied into the output).
pub(crate) enum Payload<'p> {
    Shared(Bytes),
    Lent(&'p [u8]),
}

impl Payload<'_> {
    fn as_slice(&self) -> &[u8] {
        match self {
            Payload::Shared(bytes) => bytes,
            Payload::Lent(slice) => slice,
        }
    }

    fn part(&self, range: Range<usize>) -> Payload<'_> {
        match self {
            Payload::Shared(bytes) => Payload::Shared(bytes.slice(range)),
            Payload::Lent(slice) => Payload::Lent(&slice[range]),
        }
    }
}

impl Outbox<'_> {
    /// Queues a text or binary message, copying its payload into the
    /// output (compressed when `permessage-deflate` is on, split into
    /// frames of `max_send_frame_size` if set). It goes out with the
    /// connection's other output. Fails with [`SendError::Closed`] once a
    /// close was sent or the connection failed.
    #[inline]
    pub fn send(&mut self, message: MessageRef<'_>) -> Result<(), SendError> {
        let opcode = if message.is_text() {
            OpCode::Text
        } else {
            OpCode::Binary
        };
        self.send_data(opcode, Payload::Lent(message.as_bytes()), self.frame_size)
    }

    /// Queues a data message, in frames of at most `frame_size` payload
    /// bytes (`None`: one frame).
    #[inline]
    pub(crate) fn send_data(
        &mut self,
        opcode: OpCode,
        payload: Payload<'_>,
        frame_size: Option<usize>,
    ) -> Result<(), SendError> {
        if self.closed {
            return Err(SendError::Closed);
        }
        let (payload, compressed) = match self.compress(payload.as_slice()) {
            Some(deflated) => (Payload::Shared(deflated), true),
            None => (payload, false),
        };
        let len = payload.as_slice().len();
        let frame_size = frame_size.unwrap_or(usize::MAX).max(1);
        if len <= frame_size {
            self.queue_frame(opcode, true, compressed, payload);
            return Ok(());
        }
        let mut offset = 0;
        while offset < len {
            let end = (offset + frame_size).min(len);
            let (op, rsv1) = if offset == 0 {
                (opcode, compressed)
            } else {
                (OpCode::Continuation, false)
            };
            self.queue_frame(op, end == len, rsv1, payload.part(offset..end));
            offset = end;
        }
        Ok(())
    }

    /// The payload compressed, if `permessage-deflate` is on and the
    /// payload is large enough to be worth it.
    #[cfg(feature = "deflate")]
    #[inline]
    fn compress(&mut self, payload: &[u8]) -> Option<Bytes> {
        let deflate = self.deflate.as_mut()?;
        if !deflate.should_compress(payload.len()) {
            return None;
        }
        let mut out = bytes::BytesMut::with_capacity(payload.len() / 2 + 16);
        deflate.compress(payload, &mut out);
        Some(out.freeze())
    }

    #[cfg(not(feature = "deflate"))]
    #[inline]
    fn compress(&mut self, _: &[u8]) -> Option<Bytes> {
        None
    }

    /// Encodes one frame into the output queue, masking it as a client.
    #[inline]
    pub(crate) fn queue_frame(
        &mut self,
        opcode: OpCode,
        fin: bool,
        rsv1: bool,
        payload: Payload<'_>,
    ) {
        let mask = match self.role {
            Role::Client => Some(self.next_mask_key()),
            Role::Server => None,
        };
        let header = FrameHeader {
            fin,
            rsv1,
            rsv2: false,
            rsv3: false,
            opcode,
            mask,
            payload_len: payload.as_slice().len() as u64,
        };
        let tail = self.output.tail();
        header.write(tail);
        match (mask, payload) {
            (Some(key), payload) => {
                // Masking needs a copy of the payload anyway.
                let start = tail.len();
                tail.extend_from_slice(payload.as_slice());
                apply_mask(&mut tail[start..], key, 0);
            }
            (None, Payload::Shared(bytes)) => self.output.push_payload(&bytes),
            (None, Payload::Lent(slice)) => tail.extend_from_slice(slice),
        }
    }

    fn next_mask_key(&mut self) -> [u8; 4] {
        let pool = self.mask_pool.get_or_insert_with(|| {
            Box::new(MaskPool {
                keys: [0; MASK_POOL_KEYS * 4],
                next: MASK_POOL_KEYS * 4,
            })
        });
        if pool.next >= pool.keys.len() {
            getrandom::fill(&mut pool.keys).expect("the operating system's random source failed");
            pool.next = 0;
        }
        let k = &pool.keys[pool.next..pool.next + 4];
        pool.next += 4;
        [k[0], k[1], k[2], k[3]]
    }
}

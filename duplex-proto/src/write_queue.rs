//! [`WriteQueue`]: the bytes of encoded frames waiting to be written.
//!
//! Small frames are appended to one contiguous tail, so many queued
//! messages go out in one write; a large payload that needs no masking is
//! kept as its own shared chunk (no copy) and written with a vectored write.
//!
//! The queue holds whole frames only, and knows where the frame being
//! written ends: a close that must overtake queued data
//! ([`Connection::close_now`](crate::Connection::close_now)) drops the
//! frames not yet started and never cuts the one under way.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};

use crate::frame::FrameHeader;

/// Payloads at least this long are queued by reference instead of copied.
const SHARE_THRESHOLD: usize = 4096;

#[derive(Debug, Default)]
/// Frames waiting to be written; implements [`bytes::Buf`] (use
/// `chunks_vectored` for one vectored write of everything queued).
pub struct WriteQueue {
    /// Chunks before `tail`, oldest first.
    chunks: VecDeque<Bytes>,
    /// The bytes in `chunks`, so that `remaining` costs no walk.
    chunks_len: usize,
    /// Bytes still being appended to.
    tail: BytesMut,
    /// How much of `tail` has been written already.
    tail_pos: usize,
    /// Bytes of the frame at the front still to write once part of it was
    /// written; 0 when the front is the start of a frame. Kept by
    /// `advance` from the frame headers it passes, and only on partial
    /// writes: a write of everything queued ends on a frame boundary.
    front_left: usize,
    /// Whether that frame ends a data message.
    front_ends_message: bool,
}

impl WriteQueue {
    pub(crate) fn tail(&mut self) -> &mut BytesMut {
        &mut self.tail
    }

    /// Queues a payload after whatever is in the tail.
    pub(crate) fn push_payload(&mut self, payload: &Bytes) {
        if payload.len() < SHARE_THRESHOLD {
            self.tail.extend_from_slice(payload);
        } else {
            self.seal_tail();
            self.chunks_len += payload.len();
            self.chunks.push_back(payload.clone());
        }
    }

    fn seal_tail(&mut self) {
        if self.tail.len() > self.tail_pos {
            let mut sealed = self.tail.split().freeze();
            sealed.advance(self.tail_pos);
            self.chunks_len += sealed.len();
            self.chunks.push_back(sealed);
        } else {
            self.tail.clear();
        }
        self.tail_pos = 0;
    }

    /// Whether everything queued has been written.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Drops every frame not started yet, keeping the rest of the one
    /// being written (a frame is never cut); returns how many data
    /// messages were dropped (their final frames).
    pub(crate) fn discard_unstarted(&mut self) -> usize {
        let keep = self.front_left;
        let dropped = self.count_messages_from(keep);
        self.truncate(keep);
        dropped
    }

    /// How many data messages have not been written whole: the frame under
    /// way if it ends one, and every later one.
    pub(crate) fn unsent_messages(&self) -> usize {
        let front = self.front_left > 0 && self.front_ends_message;
        usize::from(front) + self.count_messages_from(self.front_left)
    }

    /// The unwritten bytes, oldest first.
    fn segments(&self) -> impl Iterator<Item = &[u8]> {
        let tail = &self.tail[self.tail_pos..];
        self.chunks.iter().map(|chunk| &chunk[..]).chain([tail])
    }

    /// Counts the frames that end a data message, from the frame starting
    /// `skip` bytes after the write position to the end. (A header never
    /// spans two segments: it is encoded into the tail with, or just
    /// before sealing it for, its payload.)
    fn count_messages_from(&self, mut skip: usize) -> usize {
        let mut count = 0;
        for segment in self.segments() {
            let mut pos = 0;
            loop {
                let step = skip.min(segment.len() - pos);
                pos += step;
                skip -= step;
                if skip > 0 || pos == segment.len() {
                    break;
                }
                let Some((len, ends_message)) = frame_at(&segment[pos..]) else {
                    return count;
                };
                count += usize::from(ends_message);
                skip = len;
            }
        }
        count
    }

    /// Keeps the first `keep` unwritten bytes and drops the rest.
    fn truncate(&mut self, keep: usize) {
        let mut left = keep;
        let mut kept = 0;
        for chunk in &mut self.chunks {
            if left == 0 {
                break;
            }
            chunk.truncate(left);
            left -= chunk.len();
            kept += 1;
        }
        self.chunks.truncate(kept);
        self.chunks_len = keep - left;
        // With chunks queued, nothing of the tail was written (tail_pos 0).
        self.tail.truncate(self.tail_pos + left);
        if self.chunks.is_empty() && self.tail_pos == self.tail.len() {
            self.tail.clear();
            self.tail_pos = 0;
        }
    }

    /// Hands over the (empty) write buffer when nothing is pending, so an
    /// idle connection holds none; `None` while output is pending or when
    /// there is no buffer.
    pub(crate) fn take_idle_buffer(&mut self) -> Option<BytesMut> {
        if self.is_empty() && self.tail.capacity() > 0 {
            self.tail_pos = 0;
            Some(std::mem::take(&mut self.tail))
        } else {
            None
        }
    }

    /// Gives the queue an empty buffer to write into, if it has none.
    pub(crate) fn provide_buffer(&mut self, buf: BytesMut) -> Option<BytesMut> {
        if self.tail.capacity() == 0 && self.tail.is_empty() && buf.is_empty() {
            self.tail = buf;
            self.tail_pos = 0;
            None
        } else {
            Some(buf)
        }
    }

    /// Whether the queue has a write buffer at all.
    pub(crate) fn has_buffer(&self) -> bool {
        self.tail.capacity() > 0
    }

    /// Releases the tail's memory when nothing is pending (after a large
    /// message), so idle connections stay small.
    pub(crate) fn shrink(&mut self, keep: usize) {
        if self.is_empty() && self.tail.capacity() > keep {
            self.tail = BytesMut::new();
            self.tail_pos = 0;
        }
    }

    /// Everything was written: reuse the tail's memory from the start.
    fn clear(&mut self) {
        self.chunks.clear();
        self.chunks_len = 0;
        self.tail.clear();
        self.tail_pos = 0;
    }

    /// Advances over `cnt` bytes, within one frame or across frames.
    fn advance_bytes(&mut self, mut cnt: usize) {
        while cnt > 0 {
            match self.chunks.front_mut() {
                Some(front) => {
                    if cnt >= front.len() {
                        cnt -= front.len();
                        self.chunks_len -= front.len();
                        self.chunks.pop_front();
                    } else {
                        front.advance(cnt);
                        self.chunks_len -= cnt;
                        return;
                    }
                }
                None => {
                    self.tail_pos += cnt;
                    assert!(self.tail_pos <= self.tail.len(), "advanced past the end");
                    break;
                }
            }
        }
        if self.chunks.is_empty() && self.tail_pos == self.tail.len() {
            self.clear();
        }
    }
}

/// The length (header included) of the frame at the start of `bytes`, and
/// whether it ends a data message; `None` if no whole header is there.
fn frame_at(bytes: &[u8]) -> Option<(usize, bool)> {
    let (header, header_len) = FrameHeader::parse(bytes).ok()??;
    let len = header_len.saturating_add(usize::try_from(header.payload_len).ok()?);
    Some((len, header.fin && !header.opcode.is_control()))
}

impl Buf for WriteQueue {
    fn remaining(&self) -> usize {
        self.chunks_len + self.tail.len() - self.tail_pos
    }

    fn chunk(&self) -> &[u8] {
        match self.chunks.front() {
            Some(chunk) => chunk,
            None => &self.tail[self.tail_pos..],
        }
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for chunk in &self.chunks {
            if n == dst.len() {
                return n;
            }
            dst[n] = IoSlice::new(chunk);
            n += 1;
        }
        if n < dst.len() && self.tail.len() > self.tail_pos {
            dst[n] = IoSlice::new(&self.tail[self.tail_pos..]);
            n += 1;
        }
        n
    }

    fn advance(&mut self, cnt: usize) {
        let remaining = self.remaining();
        assert!(cnt <= remaining, "advanced past the end");
        if cnt == remaining {
            // Everything written (the usual case): on a frame boundary.
            self.clear();
            self.front_left = 0;
            return;
        }
        // A partial write: follow the frames it ends in.
        let mut left = cnt;
        while left > 0 {
            if self.front_left == 0 {
                // (Never `None`: the queue holds whole frames.)
                let (len, ends_message) =
                    frame_at(self.chunk()).unwrap_or((self.remaining(), false));
                self.front_left = len;
                self.front_ends_message = ends_message;
            }
            let step = left.min(self.front_left);
            self.advance_bytes(step);
            self.front_left -= step;
            left -= step;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::OpCode;

    /// Queues one unmasked frame, as the outbox does.
    fn frame(q: &mut WriteQueue, opcode: OpCode, fin: bool, payload: &Bytes) {
        let header = FrameHeader {
            fin,
            rsv1: false,
            rsv2: false,
            rsv3: false,
            opcode,
            mask: None,
            payload_len: payload.len() as u64,
        };
        header.write(q.tail());
        q.push_payload(payload);
    }

    #[test]
    fn coalesces_small_and_shares_large() {
        let mut q = WriteQueue::default();
        frame(&mut q, OpCode::Text, true, &Bytes::from_static(b"ab"));
        let big = Bytes::from(vec![7u8; SHARE_THRESHOLD]);
        frame(&mut q, OpCode::Binary, true, &big);
        frame(&mut q, OpCode::Text, true, &Bytes::from_static(b"z"));
        assert_eq!(q.remaining(), 4 + 4 + SHARE_THRESHOLD + 3);
        let mut slices = [IoSlice::new(&[]); 8];
        assert_eq!(q.chunks_vectored(&mut slices), 3);
        // Both small headers and the first payload in one buffer.
        assert_eq!(&*slices[0], [0x81, 2, b'a', b'b', 0x82, 126, 0x10, 0x00]);
        q.advance(3);
        assert_eq!(q.chunk(), [b'b', 0x82, 126, 0x10, 0x00]);
        q.advance(5 + SHARE_THRESHOLD);
        assert_eq!(q.chunk(), [0x81, 1, b'z']);
        q.advance(3);
        assert!(q.is_empty());
    }

    #[test]
    fn discarding_keeps_the_frame_under_way_and_counts_the_messages_dropped() {
        let mut q = WriteQueue::default();
        let big = Bytes::from(vec![7u8; SHARE_THRESHOLD]);
        frame(&mut q, OpCode::Binary, true, &big);
        // A message in two fragments with a pong between them.
        frame(&mut q, OpCode::Text, false, &Bytes::from_static(b"he"));
        frame(&mut q, OpCode::Pong, true, &Bytes::new());
        frame(
            &mut q,
            OpCode::Continuation,
            true,
            &Bytes::from_static(b"llo"),
        );
        assert_eq!(q.unsent_messages(), 2);
        // Part of the large frame is written: it must be finished.
        q.advance(100);
        assert_eq!(q.unsent_messages(), 2);
        assert_eq!(q.discard_unstarted(), 1);
        assert_eq!(q.remaining(), 4 + SHARE_THRESHOLD - 100);
        assert_eq!(q.unsent_messages(), 1);
        q.advance(q.remaining());
        assert!(q.is_empty());
        assert_eq!(q.unsent_messages(), 0);

        // On a frame boundary everything goes, and the queue is reusable.
        frame(&mut q, OpCode::Text, true, &Bytes::from_static(b"a"));
        frame(&mut q, OpCode::Text, true, &Bytes::from_static(b"b"));
        q.advance(3);
        assert_eq!(q.discard_unstarted(), 1);
        assert!(q.is_empty());
        frame(&mut q, OpCode::Text, true, &Bytes::from_static(b"c"));
        assert_eq!(q.chunk(), [0x81, 1, b'c']);
    }

    #[test]
    fn partial_writes_of_any_size_keep_track_of_the_frames() {
        // Frames of 804 bytes (800-byte payloads) and 4100 (shared), with
        // writes of sizes coprime to both, queued while writing.
        let small = Bytes::from(vec![b'.'; 800]);
        let large = Bytes::from(vec![b'.'; SHARE_THRESHOLD]);
        let mut q = WriteQueue::default();
        let mut queued = 0;
        let mut written = 0;
        let mut ends = Vec::new();
        let mut end = 0;
        for round in 0..200 {
            for i in 0..3 {
                let payload = if (round + i) % 7 == 0 { &large } else { &small };
                frame(&mut q, OpCode::Binary, true, payload);
                end += if payload.len() == 800 {
                    804
                } else {
                    4 + SHARE_THRESHOLD
                };
                ends.push(end);
                queued += 1;
            }
            let n = (1 + round * 997) % (q.remaining() + 1);
            q.advance(n);
            written += n;
            let whole = ends.iter().filter(|&&e| e <= written).count();
            assert_eq!(q.unsent_messages(), queued - whole, "after {written} bytes");
        }
        // The frame under way, if the writes stopped inside one, is kept.
        let whole = ends.iter().filter(|&&e| e <= written).count();
        let under_way = usize::from(written > 0 && !ends.contains(&written));
        assert_eq!(q.discard_unstarted(), queued - whole - under_way);
    }
}

//! [`WriteQueue`]: the bytes of encoded frames waiting to be written.
//!
//! Small frames are appended to one contiguous tail, so many queued
//! messages go out in one write; a large payload that needs no masking is
//! kept as its own shared chunk (no copy) and written with a vectored write.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};

/// Payloads at least this long are queued by reference instead of copied.
const SHARE_THRESHOLD: usize = 4096;

#[derive(Debug, Default)]
/// Frames waiting to be written; implements [`bytes::Buf`] (use
/// `chunks_vectored` for one vectored write of everything queued).
pub struct WriteQueue {
    /// Chunks before `tail`, oldest first.
    chunks: VecDeque<Bytes>,
    /// Bytes still being appended to.
    tail: BytesMut,
    /// How much of `tail` has been written already.
    tail_pos: usize,
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
            self.chunks.push_back(payload.clone());
        }
    }

    fn seal_tail(&mut self) {
        if self.tail.len() > self.tail_pos {
            let mut sealed = self.tail.split().freeze();
            sealed.advance(self.tail_pos);
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
}

impl Buf for WriteQueue {
    fn remaining(&self) -> usize {
        self.chunks.iter().map(Bytes::len).sum::<usize>() + self.tail.len() - self.tail_pos
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

    fn advance(&mut self, mut cnt: usize) {
        while cnt > 0 {
            match self.chunks.front_mut() {
                Some(front) => {
                    if cnt >= front.len() {
                        cnt -= front.len();
                        self.chunks.pop_front();
                    } else {
                        front.advance(cnt);
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
            // Everything written: reuse the tail's memory from the start.
            self.tail.clear();
            self.tail_pos = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalesces_small_and_shares_large() {
        let mut q = WriteQueue::default();
        q.tail().extend_from_slice(b"ab");
        q.push_payload(&Bytes::from_static(b"cd"));
        let big = Bytes::from(vec![7u8; SHARE_THRESHOLD]);
        q.tail().extend_from_slice(b"H");
        q.push_payload(&big);
        q.tail().extend_from_slice(b"z");
        assert_eq!(q.remaining(), 5 + SHARE_THRESHOLD + 1);
        let mut slices = [IoSlice::new(&[]); 8];
        assert_eq!(q.chunks_vectored(&mut slices), 3);
        assert_eq!(&*slices[0], b"abcdH");
        q.advance(3);
        assert_eq!(q.chunk(), b"dH");
        q.advance(2 + SHARE_THRESHOLD);
        assert_eq!(q.chunk(), b"z");
        q.advance(1);
        assert!(q.is_empty());
    }
}

//! A per-thread pool of I/O buffers.
//!
//! An idle connection should cost almost nothing, yet a busy one should not
//! allocate per message. So a connection borrows its read buffer and its
//! write buffer from this pool when data moves, and gives them back when it
//! goes idle (nothing buffered, waiting for the socket). Buffers are plain
//! `BytesMut`s of at least [`BUFFER_SIZE`] bytes; the pool is bounded.

use std::cell::RefCell;

use bytes::BytesMut;

/// The size of a pooled buffer: one read's worth for small messages.
pub(crate) const BUFFER_SIZE: usize = 4096;

/// Buffers larger than this go back to the allocator instead of the pool,
/// so one large message does not pin memory forever.
pub(crate) const MAX_POOLED_CAPACITY: usize = 64 * 1024;

/// Buffers kept per thread at most.
const MAX_POOLED: usize = 256;

thread_local! {
    static POOL: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// A buffer with at least [`BUFFER_SIZE`] bytes of capacity.
pub(crate) fn take() -> BytesMut {
    POOL.with(|pool| pool.borrow_mut().pop())
        .unwrap_or_else(|| BytesMut::with_capacity(BUFFER_SIZE))
}

/// Gives an empty buffer back (a non-empty one is kept by the caller).
pub(crate) fn give(mut buf: BytesMut) {
    if !buf.is_empty() {
        return;
    }
    // Reading slices messages off the front (zero-copy), which shrinks
    // the capacity; once those slices are dropped the whole allocation can
    // be reclaimed without allocating.
    if buf.capacity() < BUFFER_SIZE && !buf.try_reclaim(BUFFER_SIZE) {
        return;
    }
    if buf.capacity() > MAX_POOLED_CAPACITY {
        return;
    }
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < MAX_POOLED {
            pool.push(buf);
        }
    });
}

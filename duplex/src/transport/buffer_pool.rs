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

type Pool = std::thread::LocalKey<RefCell<Vec<BytesMut>>>;

/// A buffer from `pool`, or a new one of `size` bytes.
fn pop(pool: &'static Pool, size: usize) -> BytesMut {
    pool.with(|pool| pool.borrow_mut().pop())
        .unwrap_or_else(|| BytesMut::with_capacity(size))
}

/// Keeps `buf` in `pool` unless it holds `max` buffers already.
fn push(pool: &'static Pool, buf: BytesMut, max: usize) {
    pool.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < max {
            pool.push(buf);
        }
    });
}

/// A buffer with at least [`BUFFER_SIZE`] bytes of capacity.
pub(crate) fn take() -> BytesMut {
    pop(&POOL, BUFFER_SIZE)
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
    push(&POOL, buf, MAX_POOLED);
}

/// The size of a read-ahead buffer (see `ReadAhead`).
#[cfg(feature = "tls")]
pub(crate) const READ_AHEAD_SIZE: usize = 64 * 1024;

/// Read-ahead buffers kept per thread at most: enough for the connections
/// one thread serves at the same moment, not one per connection.
#[cfg(feature = "tls")]
const MAX_READ_AHEAD_POOLED: usize = 32;

#[cfg(feature = "tls")]
thread_local! {
    static READ_AHEAD_POOL: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// A buffer with at least [`READ_AHEAD_SIZE`] bytes of capacity.
#[cfg(feature = "tls")]
pub(crate) fn take_read_ahead() -> BytesMut {
    pop(&READ_AHEAD_POOL, READ_AHEAD_SIZE)
}

/// Gives a drained read-ahead buffer back.
#[cfg(feature = "tls")]
pub(crate) fn give_read_ahead(mut buf: BytesMut) {
    buf.clear();
    if buf.try_reclaim(READ_AHEAD_SIZE) {
        push(&READ_AHEAD_POOL, buf, MAX_READ_AHEAD_POOLED);
    }
}

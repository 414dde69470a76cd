//! [`ReadBuffer`]: how the engine's read buffer grows, is reused, and is
//! given back.
//!
//! An idle connection should hold no read buffer at all, a busy one should
//! not allocate per message, and a large frame should be read into room
//! that fits it without over-reserving what its length field merely
//! claims. The buffer itself lives in the engine
//! ([`Connection::input_buffer`](duplex_proto::Connection::input_buffer));
//! this decides its size before each read and releases it when the socket
//! goes quiet.

use std::future::Future;
use std::pin::Pin;
use std::task::Context;
use std::time::Duration;

use bytes::BytesMut;
use tokio::time::{Instant, Sleep};

use crate::transport::buffer_pool;

/// The smallest free space kept in the read buffer before a read. Small, so
/// that idle connections stay cheap; the buffer grows with what arrives.
const READ_RESERVE: usize = 4096;

/// How long an idle connection keeps a read buffer larger than the pooled
/// size: long enough that a stream of large messages reuses it, short
/// enough that an idle connection soon holds nothing.
const LARGE_BUFFER_IDLE: Duration = Duration::from_secs(1);

/// The read buffer's policy, with the timer that releases a large buffer.
#[derive(Default)]
pub(crate) struct ReadBuffer {
    /// Releases a large read buffer once the connection has been idle for
    /// [`LARGE_BUFFER_IDLE`]; armed only while such a buffer is held.
    release_timer: Option<Pin<Box<Sleep>>>,
}

impl ReadBuffer {
    /// Makes room in `buf` for the next read: for the `remaining` bytes of
    /// the frame in progress, or for a usual read between frames.
    pub(crate) fn prepare(&self, buf: &mut BytesMut, remaining: usize) {
        let wanted = if remaining > 0 {
            remaining.min(READ_RESERVE)
        } else {
            READ_RESERVE
        };
        if buf.is_empty() && buf.capacity() > 0 {
            // After a message was split off, the buffer is a view of the
            // rest of its allocation: start again at the front when nothing
            // else holds it, so the next message of that size fits again.
            let _ = buf.try_reclaim(buf.capacity() + 1);
        }
        if buf.capacity() - buf.len() >= wanted {
            return;
        }
        if buf.capacity() == 0 {
            *buf = buffer_pool::take();
            return;
        }
        // Grow by doubling, with what has arrived rather than what a header
        // claims, but no further than the frame needs (plus a usual read,
        // so that the next frame of that size fits too instead of forcing
        // a shift of the whole buffer to the front, a copy on every
        // message).
        let double = READ_RESERVE.max(buf.len());
        let needed = remaining.saturating_add(READ_RESERVE);
        buf.reserve(if remaining > 0 {
            needed.min(double)
        } else {
            double
        });
    }

    /// The socket has nothing to read: hold no buffer while waiting (a
    /// large one only for a moment, in case another large message
    /// follows; `cx` is woken to release it).
    pub(crate) fn on_idle(&mut self, buf: &mut BytesMut, cx: &mut Context<'_>) {
        if !buf.is_empty() {
            return;
        }
        // (An empty buffer was reclaimed to its whole allocation before the
        // read.)
        if buf.capacity() <= buffer_pool::MAX_POOLED_CAPACITY {
            buffer_pool::give(std::mem::take(buf));
            return;
        }
        let timer = self
            .release_timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(LARGE_BUFFER_IDLE)));
        if timer.as_mut().poll(cx).is_ready() {
            *buf = BytesMut::new();
            self.release_timer = None;
        }
    }

    /// Bytes arrived: a large buffer is in use again.
    pub(crate) fn on_data(&mut self) {
        if let Some(timer) = &mut self.release_timer {
            timer.as_mut().reset(Instant::now() + LARGE_BUFFER_IDLE);
        }
    }
}

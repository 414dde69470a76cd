//! The I/O loop of a connection: what `recv`, `flush` and closing do with
//! the stream, for [`WebSocket`](crate::WebSocket) and its split halves
//! alike.
//!
//! Everything here executes what the engine decides: it feeds received
//! bytes to the [`Connection`], writes out what it queued, and carries out
//! its [`TransportStep`]s when the connection closes. It also owns the
//! run-time parts that need a clock or a socket: keepalive, the close
//! timeout, the read buffer's size, the socket's low-water mark.
//!
//! Wakers are registered only on the paths that can wait, and always
//! before the wait is set up (a split connection's lock is held
//! throughout, so nothing can wake us in between).

use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use duplex_proto::{
    CloseCode, CloseFrame, Connection, Eof, Message, ProtocolError, State, TransportStep,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, Sleep};

use crate::budget::{Direction, Reservation};
use crate::error::{Error, Result};
use crate::keepalive::{KeepAliveAction, KeepAliveTimer, KEEPALIVE_PAYLOAD};
use crate::read_buffer::ReadBuffer;
use crate::signals::Link;
use crate::transport::buffer_pool;
use crate::warn_limit::RateLimited;

/// Output above this many bytes makes `poll_ready` flush first
/// (backpressure for `Sink` users and `feed`).
const OUTPUT_HIGH_WATER: usize = 256 * 1024;

/// One connection: the stream, the engine, and the run-time state around
/// them.
pub(crate) struct Inner<S> {
    pub(crate) stream: S,
    pub(crate) conn: Connection,
    /// A protocol error, reported once the failing close is complete (so
    /// that an application that stops reading on the error cannot drop
    /// the close frame unsent).
    pub(crate) pending_error: Option<Box<Error>>,
    pub(crate) close_timeout: Duration,
    /// When the closing connection stops waiting for the peer.
    deadline: Option<Pin<Box<Sleep>>>,
    /// Boxed: most connections run without keepalive, and idle ones
    /// should stay small.
    pub(crate) keepalive: Option<Box<KeepAliveTimer>>,
    read_buffer: ReadBuffer,
    /// What this connection holds of its hub's memory budget (boxed: none
    /// on clients, and idle connections should stay small).
    pub(crate) budget: Option<Box<Reservation>>,
    /// Sizes socket wake-ups by the frame being received (plain TCP).
    #[cfg(unix)]
    pub(crate) low_water: Option<crate::transport::low_water::LowWater>,
}

impl<S> Inner<S> {
    pub(crate) fn new(stream: S, conn: Connection, close_timeout: Duration) -> Inner<S> {
        Inner {
            stream,
            conn,
            pending_error: None,
            close_timeout,
            deadline: None,
            keepalive: None,
            read_buffer: ReadBuffer::default(),
            budget: None,
            #[cfg(unix)]
            low_water: None,
        }
    }

    /// Counts what the engine holds for incoming messages against the
    /// memory budget; a message that does not fit fails the connection
    /// with 1009 before any of it reaches the application.
    #[inline]
    pub(crate) fn account_incoming(&mut self) {
        let Some(budget) = &mut self.budget else {
            return;
        };
        if budget.hold(Direction::Incoming, self.conn.buffered_incoming()) {
            return;
        }
        let error = ProtocolError::OverMemoryBudget;
        self.conn.fail(&error);
        budget.clear(Direction::Incoming);
        BUDGET_WARNING.warn(|more| {
            tracing::warn!(
                "closing a connection with 1009: its incoming message does not fit in the memory budget{}",
                suppressed(more)
            )
        });
        self.pending_error = Some(Box::new(Error::Protocol(error)));
    }

    /// Starts the close someone asked for through
    /// [`Signals::start_close`](crate::signals::Signals::start_close).
    #[inline]
    fn take_close_request(&mut self, link: &Link) {
        if let Some(frame) = link.signals.take_close_request() {
            let _ = self.conn.close(Some(frame));
        }
    }
}

/// Budget refusals are logged at most once per interval, with a count.
static BUDGET_WARNING: RateLimited = RateLimited::new();

fn suppressed(more: u64) -> String {
    if more == 0 {
        String::new()
    } else {
        format!(" ({more} more since the last warning)")
    }
}

/// Queues a message. (A close the server asked for is started by the
/// next `recv` or `flush`, after what was fed before it.)
pub(crate) fn feed<S>(inner: &mut Inner<S>, message: Message) -> Result<()> {
    provide_write_buffer(&mut inner.conn);
    inner.conn.send(message).map_err(Error::from)
}

/// Lends the engine a pooled write buffer if it has none.
#[inline]
pub(crate) fn provide_write_buffer(conn: &mut Connection) {
    if conn.has_write_buffer() {
        return;
    }
    if let Some(unused) = conn.provide_write_buffer(buffer_pool::take()) {
        buffer_pool::give(unused);
    }
}

/// Gives the engine's write buffer back to the pool once nothing is
/// waiting to be written.
pub(crate) fn return_idle_write_buffer(conn: &mut Connection) {
    if let Some(buf) = conn.take_idle_write_buffer() {
        buffer_pool::give(buf);
    }
}

/// Writes queued output for the writer. The socket gets the shared write
/// waker, which wakes both halves.
pub(crate) fn poll_flush<S: AsyncWrite + Unpin>(
    inner: &mut Inner<S>,
    link: &Link,
    cx: &mut Context<'_>,
) -> Poll<Result<()>> {
    inner.take_close_request(link);
    link.signals.writer_write.register(cx.waker());
    let mut write_cx = Context::from_waker(&link.write_waker);
    flush_inner(inner, &mut write_cx).map_err(io_error)
}

/// Why a stalled connection was dropped: its unsent data does not fit in
/// the memory budget. Travels inside an `io::Error` out of the write loop.
#[derive(Debug)]
struct OverBudget;

impl std::fmt::Display for OverBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("unsent data does not fit in the memory budget")
    }
}

impl std::error::Error for OverBudget {}

/// An I/O error as the API reports it: a connection dropped for the
/// memory budget is a full queue, not a socket failure.
fn io_error(error: std::io::Error) -> Error {
    if error
        .get_ref()
        .is_some_and(|inner| inner.is::<OverBudget>())
    {
        Error::QueueFull
    } else {
        Error::Io(error)
    }
}

fn flush_inner<S: AsyncWrite + Unpin>(
    inner: &mut Inner<S>,
    cx: &mut Context<'_>,
) -> Poll<std::io::Result<()>> {
    let Inner {
        stream,
        conn,
        budget,
        ..
    } = inner;
    while conn.has_output() {
        let mut slices = [IoSlice::new(&[]); 64];
        let count = conn.pending_output().chunks_vectored(&mut slices);
        // One buffer: a plain write is a little cheaper than writev.
        let written = if count == 1 {
            Pin::new(&mut *stream).poll_write(cx, &slices[0])
        } else {
            Pin::new(&mut *stream).poll_write_vectored(cx, &slices[..count])
        };
        let written = match written {
            Poll::Ready(result) => result?,
            Poll::Pending => {
                // The peer is not keeping up: what waits for it counts
                // against the budget.
                if let Some(budget) = budget {
                    if !budget.hold(Direction::Outgoing, conn.pending_output().remaining()) {
                        conn.abort();
                        budget.clear(Direction::Outgoing);
                        BUDGET_WARNING.warn(|more| {
                            tracing::warn!(
                                "dropping a connection that is not reading: its unsent data does not fit in the memory budget{}",
                                suppressed(more)
                            )
                        });
                        return Poll::Ready(Err(std::io::Error::other(OverBudget)));
                    }
                }
                return Poll::Pending;
            }
        };
        if written == 0 {
            return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
        }
        conn.output().advance(written);
    }
    ready!(Pin::new(&mut *stream).poll_flush(cx))?;
    if let Some(budget) = budget {
        budget.clear(Direction::Outgoing);
    }
    conn.shrink_buffers();
    return_idle_write_buffer(conn);
    Poll::Ready(Ok(()))
}

/// The next message, reading as needed; `None` once the connection is
/// over.
pub(crate) fn poll_recv<S: AsyncRead + AsyncWrite + Unpin>(
    inner: &mut Inner<S>,
    link: &Link,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Message>>> {
    inner.take_close_request(link);
    let signals = &link.signals;
    let mut write_cx = Context::from_waker(&link.write_waker);
    loop {
        match inner.conn.next_message() {
            Ok(Some(message)) => {
                // The message is the application's now.
                inner.account_incoming();
                // Send pongs and close replies right away when the socket
                // allows; otherwise they go out with the next flush.
                if inner.conn.has_output() {
                    signals.reader_write.register(cx.waker());
                    let _ = flush_inner(inner, &mut write_cx);
                }
                return Poll::Ready(Some(Ok(message)));
            }
            Ok(None) => {}
            Err(error) => inner.pending_error = Some(Box::new(Error::Protocol(error))),
        }
        match inner.conn.transport_step() {
            TransportStep::Read => {}
            TransportStep::Done => return Poll::Ready(inner.pending_error.take().map(|e| Err(*e))),
            TransportStep::ShutDown | TransportStep::Drain => {
                signals.reader_write.register(cx.waker());
                ready!(poll_finish(inner, cx, &mut write_cx));
                return Poll::Ready(inner.pending_error.take().map(|e| Err(*e)));
            }
        }
        if inner.conn.has_output() {
            // Pending is fine: the shared write waker wakes us.
            signals.reader_write.register(cx.waker());
            if let Poll::Ready(Err(e)) = flush_inner(inner, &mut write_cx) {
                inner.conn.abort();
                return Poll::Ready(Some(Err(io_error(e))));
            }
        }
        if let Some(timer) = &mut inner.keepalive {
            signals.reader_write.register(cx.waker());
            match timer.poll(cx) {
                Poll::Pending => {}
                Poll::Ready(KeepAliveAction::Ping) => {
                    let _ = inner
                        .conn
                        .send(Message::Ping(Bytes::from_static(KEEPALIVE_PAYLOAD)));
                    let _ = flush_inner(inner, &mut write_cx);
                    // Poll the timer once more, so that it is armed (with
                    // our waker) for the answer's deadline.
                    continue;
                }
                Poll::Ready(KeepAliveAction::GiveUp) => {
                    inner.keepalive = None;
                    let _ = inner
                        .conn
                        .close(Some(CloseFrame::new(CloseCode::Away, "keepalive timeout")));
                    let _ = flush_inner(inner, &mut write_cx);
                    inner.conn.abort();
                    return Poll::Ready(Some(Err(Error::Timeout(
                        "the peer did not answer keepalive pings",
                    ))));
                }
            }
        }
        let remaining = inner.conn.frame_remaining();
        #[cfg(unix)]
        if let Some(low_water) = &mut inner.low_water {
            // Keepalive must see every byte as it arrives: no mark then.
            low_water.expect(if inner.keepalive.is_some() {
                0
            } else {
                remaining
            });
        }
        let Inner {
            stream,
            conn,
            read_buffer,
            ..
        } = inner;
        let buf = conn.input_buffer();
        read_buffer.prepare(buf, remaining);
        match tokio_util::io::poll_read_buf(Pin::new(stream), cx, buf) {
            Poll::Pending => {
                read_buffer.on_idle(buf, cx);
                // A large buffer released while idle is no longer counted
                // (no shared counter touched when nothing changed).
                inner.account_incoming();
                // For a server shutdown's close (`start_close`).
                signals.read.register(cx.waker());
                // A close requested before that registration would be
                // missed: look once more.
                if signals.close_pending() {
                    cx.waker().wake_by_ref();
                }
                return Poll::Pending;
            }
            Poll::Ready(Ok(0)) => {
                if inner.conn.receive_eof() == Eof::Abnormal {
                    return Poll::Ready(Some(Err(Error::AbnormalClose)));
                }
            }
            Poll::Ready(Ok(_)) => {
                read_buffer.on_data();
                inner.account_incoming();
                if let Some(timer) = &mut inner.keepalive {
                    timer.saw_data();
                }
            }
            Poll::Ready(Err(e)) => {
                inner.conn.abort();
                return Poll::Ready(Some(Err(Error::Io(e))));
            }
        }
    }
}

/// The end of a connection after the close handshake (or a failure):
/// flush the close frame, then carry out the engine's transport steps
/// (shut down our side, drain the peer's), at most until the close
/// timeout.
fn poll_finish<S: AsyncRead + AsyncWrite + Unpin>(
    inner: &mut Inner<S>,
    cx: &mut Context<'_>,
    write_cx: &mut Context<'_>,
) -> Poll<()> {
    let timeout = inner.close_timeout;
    let deadline = inner
        .deadline
        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(Instant::now() + timeout)));
    if deadline.as_mut().poll(cx).is_ready() {
        inner.conn.abort();
        return Poll::Ready(());
    }
    match flush_inner(inner, write_cx) {
        Poll::Pending => return Poll::Pending,
        Poll::Ready(Err(_)) => {
            inner.conn.abort();
            return Poll::Ready(());
        }
        Poll::Ready(Ok(())) => {}
    }
    let mut scratch = [0u8; 4096];
    loop {
        match inner.conn.transport_step() {
            TransportStep::Read | TransportStep::Done => return Poll::Ready(()),
            TransportStep::ShutDown => {
                // An error means the socket is gone already: as good as shut.
                let _ = ready!(Pin::new(&mut inner.stream).poll_shutdown(write_cx));
                inner.conn.transport_shut_down();
            }
            TransportStep::Drain => {
                let mut buf = tokio::io::ReadBuf::new(&mut scratch);
                match ready!(Pin::new(&mut inner.stream).poll_read(cx, &mut buf)) {
                    Ok(()) if !buf.filled().is_empty() => {}
                    Ok(()) | Err(_) => {
                        inner.conn.receive_eof();
                    }
                }
            }
        }
    }
}

/// Flushes first when too much output is queued (backpressure).
pub(crate) fn poll_ready<S: AsyncWrite + Unpin>(
    inner: &mut Inner<S>,
    link: &Link,
    cx: &mut Context<'_>,
) -> Poll<Result<()>> {
    if inner.conn.pending_output().remaining() > OUTPUT_HIGH_WATER {
        ready!(poll_flush(inner, link, cx))?;
    }
    Poll::Ready(Ok(()))
}

/// Starts a normal close (unless one was started) and flushes it.
pub(crate) fn poll_close<S: AsyncWrite + Unpin>(
    inner: &mut Inner<S>,
    link: &Link,
    cx: &mut Context<'_>,
) -> Poll<Result<()>> {
    if inner.conn.state() == State::Open {
        let _ = inner
            .conn
            .close(Some(CloseFrame::new(CloseCode::Normal, "")));
    }
    poll_flush(inner, link, cx)
}

//! The I/O loop of a connection: what `recv`, `flush` and closing do with
//! the stream, for [`WebSocket`](crate::WebSocket) and its split halves
//! alike.
//!
//! Everything here executes what the engine decides: it feeds received
//! bytes to the [`Connection`], writes out what it queued, and carries out
//! its [`TransportStep`]s when the connection closes. It also owns the
//! run-time parts that need a clock or a socket: keepalive, the timeouts
//! (`timeouts.rs`), the close timeout, the read buffer's size, the
//! socket's low-water mark.
//!
//! Wakers are registered only on the paths that can wait, and always
//! before the wait is set up (a split connection's lock is held
//! throughout, so nothing can wake us in between). The clocks are looked
//! at only there too: when a read or a write is about to wait.

use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Buf;
use duplex_proto::{
    CloseCode, CloseFrame, Connection, Eof, Message, ProtocolError, State, TransportStep,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, Sleep};

use crate::budget::{Direction, Reservation};
use crate::error::{Error, Result};
use crate::keepalive::{KeepAliveAction, KeepAliveTimer};
use crate::read_buffer::ReadBuffer;
use crate::signals::{Link, Signals};
use crate::timeouts::{Clocks, Expired};
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
    /// When the closing connection stops waiting for the peer: set once
    /// our close frame is out and we wait for the peer's, or once the
    /// transport is being wound down.
    deadline: Option<Pin<Box<Sleep>>>,
    /// Boxed: most connections run without keepalive, and idle ones
    /// should stay small.
    pub(crate) keepalive: Option<Box<KeepAliveTimer>>,
    pub(crate) clocks: Clocks,
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
            clocks: Clocks::standalone(),
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
        let _ = self
            .conn
            .fail(CloseFrame::new(error.close_code(), error.to_string()));
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

/// The error of a write that made no progress for the write timeout.
const PEER_STOPPED_READING: &str = "the peer stopped reading";

/// Queues a message. (A close the server asked for is started by the
/// next `recv` or `flush`, after what was fed before it.)
pub(crate) fn feed<S>(inner: &mut Inner<S>, message: Message) -> Result<()> {
    let data = message.is_data();
    provide_write_buffer(&mut inner.conn);
    inner.conn.send(message).map_err(Error::from)?;
    if data {
        inner.clocks.saw_data();
    }
    Ok(())
}

/// The next message already received, if any; keepalive sees the pongs
/// and the idle clock the data messages.
pub(crate) fn next_message<S>(inner: &mut Inner<S>) -> Result<Option<Message>> {
    let message = inner.conn.next_message().map_err(Error::Protocol)?;
    match &message {
        Some(Message::Text(_) | Message::Binary(_)) => inner.clocks.saw_data(),
        Some(Message::Pong(payload)) => {
            if let Some(timer) = &mut inner.keepalive {
                timer.saw_pong(payload);
            }
        }
        _ => {}
    }
    Ok(message)
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
    let flushed = ready!(flush_inner(inner, &mut write_cx));
    if flushed.is_err() && inner.conn.state() == State::Finished {
        // Given up: a reader waiting for the socket would wait for ever.
        link.signals.read.wake();
    }
    Poll::Ready(flushed)
}

/// Writes out everything queued, giving the connection up when writing
/// makes no progress for the write timeout.
fn flush_inner<S: AsyncWrite + Unpin>(
    inner: &mut Inner<S>,
    cx: &mut Context<'_>,
) -> Poll<Result<()>> {
    let Inner {
        stream,
        conn,
        clocks,
        budget,
        ..
    } = inner;
    match write_out(stream, conn, clocks, cx) {
        Poll::Ready(Ok(())) => {
            clocks.written_out();
            if let Some(budget) = budget {
                budget.clear(Direction::Outgoing);
            }
            Poll::Ready(Ok(()))
        }
        Poll::Ready(Err(e)) => Poll::Ready(Err(Error::Io(e))),
        Poll::Pending if clocks.poll_write_blocked(cx) => {
            // The other half may see the same expired clock: count once.
            if conn.state() != State::Finished {
                clocks.count(|stats| &stats.write);
                conn.abort();
            }
            Poll::Ready(Err(Error::Timeout(PEER_STOPPED_READING)))
        }
        Poll::Pending => {
            // The peer is not keeping up: what waits for it counts against
            // the memory budget.
            let Some(budget) = budget else {
                return Poll::Pending;
            };
            if budget.hold(Direction::Outgoing, conn.pending_output().remaining()) {
                return Poll::Pending;
            }
            conn.abort();
            budget.clear(Direction::Outgoing);
            BUDGET_WARNING.warn(|more| {
                tracing::warn!(
                    "dropping a connection that is not reading: its unsent data does not fit in the memory budget{}",
                    suppressed(more)
                )
            });
            Poll::Ready(Err(Error::QueueFull))
        }
    }
}

fn write_out<S: AsyncWrite + Unpin>(
    stream: &mut S,
    conn: &mut Connection,
    clocks: &mut Clocks,
    cx: &mut Context<'_>,
) -> Poll<std::io::Result<()>> {
    while conn.has_output() {
        let mut slices = [IoSlice::new(&[]); 64];
        let count = conn.pending_output().chunks_vectored(&mut slices);
        // One buffer: a plain write is a little cheaper than writev.
        let written = if count == 1 {
            ready!(Pin::new(&mut *stream).poll_write(cx, &slices[0]))?
        } else {
            ready!(Pin::new(&mut *stream).poll_write_vectored(cx, &slices[..count]))?
        };
        if written == 0 {
            return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
        }
        conn.output().advance(written);
        clocks.wrote();
    }
    ready!(Pin::new(&mut *stream).poll_flush(cx))?;
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
        match next_message(inner) {
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
            Err(error) => inner.pending_error = Some(Box::new(error)),
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
                return Poll::Ready(Some(Err(e)));
            }
        }
        let remaining = inner.conn.frame_remaining();
        #[cfg(unix)]
        if let Some(low_water) = &mut inner.low_water {
            low_water.expect(remaining);
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
                match on_wait(inner, signals, cx, &mut write_cx) {
                    Waited::Nothing => {}
                    Waited::Again => continue,
                    Waited::End(item) => return Poll::Ready(item),
                }
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
            }
            Poll::Ready(Err(e)) => {
                inner.conn.abort();
                return Poll::Ready(Some(Err(Error::Io(e))));
            }
        }
    }
}

/// What the clocks made of a wait for the socket.
enum Waited {
    /// Nothing is due: wait.
    Nothing,
    /// Something was queued or the connection failed: go round again.
    Again,
    /// The connection is over, with this last item.
    End(Option<Result<Message>>),
}

/// The reader is about to wait for the socket: keepalive, the message and
/// idle timeouts, and the end of a close handshake we started.
fn on_wait<S: AsyncRead + AsyncWrite + Unpin>(
    inner: &mut Inner<S>,
    signals: &Signals,
    cx: &mut Context<'_>,
    write_cx: &mut Context<'_>,
) -> Waited {
    match inner.conn.state() {
        State::Open => {}
        State::CloseSent => {
            // The close we sent (or the application fed) must be answered
            // within the close timeout, whoever is waiting for it.
            if close_deadline_passed(inner, cx) {
                inner.conn.abort();
                return Waited::End(Some(Err(Error::Timeout("waiting for the peer's close"))));
            }
            return Waited::Nothing;
        }
        _ => return Waited::Nothing,
    }
    if let Some(timer) = &mut inner.keepalive {
        signals.reader_write.register(cx.waker());
        match timer.poll(cx) {
            Poll::Pending => {}
            Poll::Ready(KeepAliveAction::Ping(payload)) => {
                let _ = inner.conn.send(Message::Ping(payload));
                // The loop writes it; the next wait arms the timer for
                // the pong's deadline.
                return Waited::Again;
            }
            Poll::Ready(KeepAliveAction::GiveUp) => {
                inner.keepalive = None;
                inner.clocks.count(|stats| &stats.keepalive);
                let _ = inner
                    .conn
                    .close(Some(CloseFrame::new(CloseCode::Away, "keepalive timeout")));
                let _ = flush_inner(inner, write_cx);
                inner.conn.abort();
                return Waited::End(Some(Err(Error::Timeout(
                    "the peer did not answer keepalive pings",
                ))));
            }
        }
    }
    match inner.clocks.poll_read(&inner.conn, cx) {
        None => Waited::Nothing,
        Some(Expired::Message) => {
            inner.clocks.count(|stats| &stats.message);
            // Its close frame would be stuck behind the rest of the
            // message: fail rather than wait for it.
            let _ = inner
                .conn
                .fail(CloseFrame::new(CloseCode::Policy, "message timeout"));
            inner.pending_error = Some(Box::new(Error::Timeout(
                "a message did not arrive within the message timeout",
            )));
            Waited::Again
        }
        Some(Expired::Idle) => {
            inner.clocks.count(|stats| &stats.idle);
            let _ = inner
                .conn
                .close(Some(CloseFrame::new(CloseCode::Away, "idle timeout")));
            Waited::Again
        }
    }
}

/// Whether the close timeout, counted from the first time this is asked,
/// has passed; `cx` is woken when it does.
fn close_deadline_passed<S>(inner: &mut Inner<S>, cx: &mut Context<'_>) -> bool {
    let timeout = inner.close_timeout;
    let deadline = inner
        .deadline
        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(Instant::now() + timeout)));
    deadline.as_mut().poll(cx).is_ready()
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
    if close_deadline_passed(inner, cx) {
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

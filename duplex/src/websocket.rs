//! [`WebSocket`]: the engine from `duplex-proto` on an async byte stream.
//!
//! All I/O is poll-based and every method keeps the connection's state
//! consistent at each `.await`, so:
//!
//! - [`WebSocket::recv`] is **cancellation-safe**: use it in
//!   `tokio::select!`; a message is never lost or half-read when the other
//!   branch wins (bytes already read stay in the engine's buffer).
//! - [`WebSocket::send`] and [`WebSocket::flush`] are cancellation-safe in
//!   the sense that a message, once queued, stays queued: if the future is
//!   dropped mid-write, the rest goes out with the next `send`/`flush`.
//!
//! A [`WebSocket`] owns its engine outright, so its calls take no lock.
//! [`WebSocket::split`] gives a reader and a writer that can live in
//! different tasks. Both share the engine behind one short-held lock, and
//! both are woken when the socket becomes writable, so the pongs and close
//! replies the reader queues never steal the writer's wake-up.

use std::future::poll_fn;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll, Wake, Waker};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use duplex_proto::{CloseCode, CloseFrame, Config, Connection, Message, MessageRef, Outbox, Role};
use futures_util::task::AtomicWaker;
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, Sleep};

use crate::buffer_pool;
use crate::error::{Error, Result};

/// How long a closing connection waits for the peer by default: for its
/// close frame, and then (a client) for the server to close the TCP
/// connection.
pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The smallest free space kept in the read buffer before a read. Small, so
/// that idle connections stay cheap; the buffer grows with what arrives.
const READ_RESERVE: usize = 4096;

/// Output above this many bytes makes `poll_ready` flush first
/// (backpressure for `Sink` users and `feed`).
const OUTPUT_HIGH_WATER: usize = 256 * 1024;

/// What a connection shares beyond its engine: the wakers of its two
/// halves, and a close that someone else (the server, shutting down)
/// asks for. The socket only keeps one write waker, so the one it is
/// given wakes both halves.
#[derive(Default)]
pub(crate) struct Control {
    read: AtomicWaker,
    reader_write: AtomicWaker,
    writer_write: AtomicWaker,
    /// Set while a close was asked for and not yet started; checked (one
    /// load) by every `recv` and `flush`.
    close_requested: AtomicBool,
    close_request: Mutex<Option<Box<CloseFrame>>>,
}

impl Wake for Control {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.wake_writers();
    }
}

impl Control {
    /// Asks the connection's task to start the close handshake with
    /// `frame` (unless it started one already) and wakes it.
    pub(crate) fn start_close(&self, frame: CloseFrame) {
        *self.close_request.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(frame));
        self.close_requested.store(true, Ordering::Release);
        self.read.wake();
        self.wake_writers();
    }

    /// Wakes both halves' writers (the socket's one write waker).
    fn wake_writers(&self) {
        self.reader_write.wake();
        self.writer_write.wake();
    }
}

/// The control block and the waker made from it, beside the engine.
struct Link {
    control: Arc<Control>,
    write_waker: Waker,
}

impl Link {
    fn new() -> Link {
        let control = Arc::new(Control::default());
        Link {
            write_waker: Waker::from(control.clone()),
            control,
        }
    }
}

struct Inner<S> {
    stream: S,
    conn: Connection,
    /// The socket reported end of stream.
    eof: bool,
    /// Our side of the transport was shut down.
    shut_down: bool,
    /// Reading is over: `recv` returns `None` from now on.
    done: bool,
    /// An abnormal end (EOF without close) was already reported.
    reported_abnormal: bool,
    /// A protocol error, reported once the failing close is complete (so
    /// that an application that stops reading on the error cannot drop
    /// the close frame unsent).
    pending_error: Option<Box<Error>>,
    close_timeout: Duration,
    /// When the closing connection stops waiting for the peer.
    deadline: Option<Pin<Box<Sleep>>>,
    /// Boxed: most connections run without keepalive, and idle ones
    /// should stay small.
    keepalive: Option<Box<KeepAliveState>>,
    /// Releases a large read buffer once the connection has been idle for
    /// [`LARGE_BUFFER_IDLE`]; armed only while such a buffer is held.
    release_timer: Option<Pin<Box<Sleep>>>,
    /// Sizes socket wake-ups by the frame being received (plain TCP).
    #[cfg(unix)]
    low_water: Option<crate::low_water::LowWater>,
}

/// How long an idle connection keeps a read buffer larger than the pooled
/// size: long enough that a stream of large messages reuses it, short
/// enough that an idle connection soon holds nothing.
const LARGE_BUFFER_IDLE: Duration = Duration::from_secs(1);

/// Keepalive settings: ping after `interval` of silence, give up when
/// nothing at all arrived for `interval + timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepAlive {
    /// Silence after which a ping is sent.
    pub interval: Duration,
    /// How long to wait for any answer after that ping.
    pub timeout: Duration,
}

struct KeepAliveState {
    settings: KeepAlive,
    last_seen: Instant,
    /// When the outstanding keepalive ping's answer is due.
    ping_deadline: Option<Instant>,
    timer: Pin<Box<Sleep>>,
}

/// The ping payload keepalive sends (so it can be told from the
/// application's pings).
const KEEPALIVE_PAYLOAD: &[u8] = b"duplex-keepalive";

/// The engine of a split connection, shared by its two halves.
struct Shared<S> {
    inner: Mutex<Inner<S>>,
    link: Link,
    protocol: Option<String>,
}

impl<S> Shared<S> {
    /// Runs `f` on the engine under the lock.
    fn with<T>(&self, f: impl FnOnce(&mut Inner<S>, &Link) -> T) -> T {
        // A panic while holding the lock leaves the engine in a consistent
        // state between calls, so a poisoned lock is still usable.
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut inner, &self.link)
    }
}

impl<S> Inner<S> {
    /// Starts the close someone asked for through [`Control::start_close`].
    #[inline]
    fn take_close_request(&mut self, link: &Link) {
        let requested = &link.control.close_requested;
        if requested.load(Ordering::Relaxed) && requested.swap(false, Ordering::Acquire) {
            let request = link.control.close_request.lock().map(|mut r| r.take());
            if let Ok(Some(frame)) = request {
                let _ = self.conn.close(Some(*frame));
            }
        }
    }
}

/// A WebSocket connection over any async byte stream `S` (a `TcpStream`, a
/// TLS stream, an in-memory duplex...), after the handshake.
///
/// ```no_run
/// # async fn example() -> duplex::Result<()> {
/// let mut ws = duplex::connect("ws://127.0.0.1:8080/echo").await?;
/// ws.send(duplex::Message::text("hello")).await?;
/// while let Some(message) = ws.recv().await {
///     println!("{:?}", message?);
/// }
/// # Ok(()) }
/// ```
pub struct WebSocket<S> {
    /// Boxed: the socket is moved into and kept by handler futures, which
    /// should stay small; one allocation, no lock.
    inner: Box<Inner<S>>,
    link: Link,
    protocol: Option<String>,
}

impl<S> std::fmt::Debug for WebSocket<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocket")
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Wraps a stream whose handshake is done. `leftover` holds bytes read
    /// past the handshake (the start of the frame stream).
    pub fn from_parts(stream: S, conn: Connection, leftover: &[u8]) -> WebSocket<S> {
        let mut conn = conn;
        conn.receive(leftover);
        WebSocket {
            inner: Box::new(Inner {
                stream,
                conn,
                eof: false,
                shut_down: false,
                done: false,
                reported_abnormal: false,
                pending_error: None,
                close_timeout: DEFAULT_CLOSE_TIMEOUT,
                deadline: None,
                keepalive: None,
                release_timer: None,
                #[cfg(unix)]
                low_water: None,
            }),
            link: Link::new(),
            protocol: None,
        }
    }

    /// Wraps a stream whose handshake is done, with a fresh engine.
    pub fn from_raw(stream: S, role: Role, config: Config) -> WebSocket<S> {
        Self::from_parts(stream, Connection::new(role, config), &[])
    }

    pub(crate) fn set_protocol(&mut self, protocol: Option<String>) {
        self.protocol = protocol;
    }

    /// The connection's control block, for the server to close it on
    /// shutdown.
    pub(crate) fn control(&self) -> Arc<Control> {
        self.link.control.clone()
    }

    /// The subprotocol agreed in the handshake.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// Whether `permessage-deflate` was negotiated.
    pub fn is_compressed(&self) -> bool {
        self.inner.conn.is_compressed()
    }

    /// Sets how long [`WebSocket::close`] waits for the peer (default 5 s).
    pub fn set_close_timeout(&mut self, timeout: Duration) {
        self.inner.close_timeout = timeout;
    }

    /// Turns keepalive on (or off with `None`): while [`WebSocket::recv`]
    /// is being awaited, a ping goes out after `interval` without any
    /// incoming data, and if nothing arrives within `timeout` after it, the
    /// connection is given up: `recv` returns [`Error::Timeout`], the peer
    /// gets a close 1001 if the socket still takes it, and the close code
    /// reported is 1006.
    pub fn set_keepalive(&mut self, keepalive: Option<KeepAlive>) {
        self.inner.keepalive = keepalive.map(|settings| {
            Box::new(KeepAliveState {
                settings,
                last_seen: Instant::now(),
                ping_deadline: None,
                timer: Box::pin(tokio::time::sleep(settings.interval)),
            })
        });
    }

    /// Receives the next message; `None` once the connection is over.
    ///
    /// Pings are answered and close frames echoed by the engine; both are
    /// also returned so the application can see them. After a
    /// [`Message::Close`] the next call returns `None` (once the transport
    /// has been closed properly). Cancellation-safe.
    pub async fn recv(&mut self) -> Option<Result<Message>> {
        poll_fn(|cx| poll_recv(&mut self.inner, &self.link, cx)).await
    }

    /// The next message if it is already buffered, without reading or
    /// waiting: after a `recv`, call this until `None` to handle a whole
    /// batch of pipelined messages before one `flush`.
    pub fn try_recv_buffered(&mut self) -> Option<Result<Message>> {
        let inner = &mut self.inner;
        if inner.done {
            return None;
        }
        match inner.conn.next_message() {
            Ok(Some(message)) => Some(Ok(message)),
            Ok(None) => None,
            Err(error) => Some(Err(Error::Protocol(error))),
        }
    }

    /// Lends every message already buffered whole in one uncompressed
    /// frame to `f`, straight from the read buffer (no allocation or copy
    /// per message), with an [`Outbox`] to queue replies; returns how many
    /// were lent. It stops at anything else (control frames, fragmented or
    /// compressed messages), which the next `recv` or `try_recv_buffered`
    /// returns, so mixing the calls sees every message once, in order.
    /// Queued replies go out at the next [`WebSocket::flush`] or `send`.
    /// Invalid UTF-8 is returned as by `try_recv_buffered`: the 1007
    /// close frame is queued, the next `flush` sends it, and the next
    /// `recv` ends the connection.
    ///
    /// The fastest way to handle a burst of small messages:
    ///
    /// ```no_run
    /// # async fn run(mut ws: duplex::ServerSocket) -> duplex::Result<()> {
    /// while let Some(message) = ws.recv().await {
    ///     let message = message?;
    ///     if message.is_data() {
    ///         ws.feed(message)?; // echo the first message of a batch
    ///     }
    ///     // ...and the rest of it, lent from the read buffer.
    ///     let lent = ws.lend_buffered(|message, outbox| {
    ///         let _ = outbox.send(message);
    ///     });
    ///     ws.flush().await?;
    ///     lent?; // invalid UTF-8: the flush has sent the 1007 close
    /// }
    /// # Ok(()) }
    /// ```
    pub fn lend_buffered(
        &mut self,
        f: impl FnMut(MessageRef<'_>, &mut Outbox<'_>),
    ) -> Result<usize> {
        let inner = &mut self.inner;
        if inner.done {
            return Ok(0);
        }
        provide_write_buffer(inner);
        let lent = inner.conn.lend_buffered(f).map_err(Error::Protocol);
        // If nothing was queued, an idle connection keeps no buffer.
        return_idle_write_buffer(&mut inner.conn);
        lent
    }

    /// Queues a message and writes everything queued.
    pub async fn send(&mut self, message: impl Into<Message>) -> Result<()> {
        self.feed(message)?;
        self.flush().await
    }

    /// Queues a message without writing it: several fed messages go out in
    /// one write at the next [`WebSocket::flush`] or `send`.
    pub fn feed(&mut self, message: impl Into<Message>) -> Result<()> {
        feed(&mut self.inner, message.into())
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> Result<()> {
        poll_fn(|cx| poll_flush(&mut self.inner, &self.link, cx)).await
    }

    /// Closes the connection: sends a close frame (1000 if `frame` is
    /// `None`), then reads until the peer's close arrives and the transport
    /// ends, discarding data, for at most the close timeout.
    pub async fn close(&mut self, frame: Option<CloseFrame>) -> Result<()> {
        let frame = frame.unwrap_or_else(|| CloseFrame::new(CloseCode::Normal, ""));
        match feed(&mut self.inner, Message::Close(Some(frame))) {
            Ok(()) | Err(Error::Closed) => {}
            Err(e) => return Err(e),
        }
        self.flush().await?;
        let timeout = self.inner.close_timeout;
        let drain = async {
            while let Some(item) = self.recv().await {
                item?;
            }
            Ok(())
        };
        match tokio::time::timeout(timeout, drain).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout("waiting for the peer's close")),
        }
    }

    /// The peer's close code once the connection is over: the code it sent,
    /// 1005 if its close frame had none, 1006 if it never sent one.
    pub fn close_code(&self) -> CloseCode {
        self.inner.conn.close_code()
    }

    /// The peer's close frame, if one arrived with a status code.
    pub fn close_frame(&self) -> Option<CloseFrame> {
        self.inner.conn.peer_close_frame().cloned()
    }

    /// Splits into a reader and a writer that can be used from different
    /// tasks.
    pub fn split(self) -> (WsReader<S>, WsWriter<S>) {
        let shared = Arc::new(Shared {
            inner: Mutex::new(*self.inner),
            link: self.link,
            protocol: self.protocol,
        });
        (
            WsReader {
                shared: shared.clone(),
            },
            WsWriter { shared },
        )
    }

    /// Puts a split connection back together; `None` if the halves are of
    /// different connections.
    pub fn reunite(reader: WsReader<S>, writer: WsWriter<S>) -> Option<WebSocket<S>> {
        if !Arc::ptr_eq(&reader.shared, &writer.shared) {
            return None;
        }
        drop(reader);
        let shared = Arc::try_unwrap(writer.shared).ok()?;
        Some(WebSocket {
            inner: Box::new(shared.inner.into_inner().unwrap_or_else(|p| p.into_inner())),
            link: shared.link,
            protocol: shared.protocol,
        })
    }
}

impl WebSocket<crate::MaybeTlsStream> {
    /// Lets the socket wake this connection once a large frame is all
    /// there rather than piece by piece (plain TCP only; see `low_water`).
    pub(crate) fn wake_per_frame(&mut self) {
        #[cfg(unix)]
        if let crate::MaybeTlsStream::Plain(tcp) = &self.inner.stream {
            use std::os::fd::AsRawFd;
            self.inner.low_water = Some(crate::low_water::LowWater::new(tcp.as_raw_fd()));
        }
    }
}

/// Queues a message. (A close the server asked for is started by the
/// next `recv` or `flush`, after what was fed before it.)
fn feed<S>(inner: &mut Inner<S>, message: Message) -> Result<()> {
    provide_write_buffer(inner);
    inner.conn.send(message).map_err(Error::from)
}

/// Lends the engine a pooled write buffer if it has none.
fn provide_write_buffer<S>(inner: &mut Inner<S>) {
    if !inner.conn.pending_output().has_buffer() {
        if let Some(unused) = inner.conn.output().provide_buffer(buffer_pool::take()) {
            buffer_pool::give(unused);
        }
    }
}

/// Gives the engine's write buffer back to the pool once nothing is
/// waiting to be written.
fn return_idle_write_buffer(conn: &mut Connection) {
    if let Some(buf) = conn.output().take_idle_buffer() {
        buffer_pool::give(buf);
    }
}

/// Writes queued output for the writer. The socket gets the shared write
/// waker, which wakes both halves.
fn poll_flush<S: AsyncWrite + Unpin>(
    inner: &mut Inner<S>,
    link: &Link,
    cx: &mut Context<'_>,
) -> Poll<Result<()>> {
    inner.take_close_request(link);
    link.control.writer_write.register(cx.waker());
    let mut write_cx = Context::from_waker(&link.write_waker);
    flush_inner(inner, &mut write_cx).map_err(Error::Io)
}

fn flush_inner<S: AsyncWrite + Unpin>(
    inner: &mut Inner<S>,
    cx: &mut Context<'_>,
) -> Poll<std::io::Result<()>> {
    let Inner { stream, conn, .. } = inner;
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
    }
    ready!(Pin::new(&mut *stream).poll_flush(cx))?;
    conn.shrink_buffers();
    return_idle_write_buffer(conn);
    Poll::Ready(Ok(()))
}

fn poll_recv<S: AsyncRead + AsyncWrite + Unpin>(
    inner: &mut Inner<S>,
    link: &Link,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Message>>> {
    inner.take_close_request(link);
    // Wakers are registered only on the paths that can wait, and always
    // before the wait is set up (a split connection's lock is held
    // throughout, so nothing can wake us in between).
    let wakers = &link.control;
    let mut write_cx = Context::from_waker(&link.write_waker);
    loop {
        if inner.done {
            return Poll::Ready(None);
        }
        match inner.conn.next_message() {
            Ok(Some(message)) => {
                // Send pongs and close replies right away when the socket
                // allows; otherwise they go out with the next flush.
                if inner.conn.has_output() {
                    wakers.reader_write.register(cx.waker());
                    let _ = flush_inner(inner, &mut write_cx);
                }
                return Poll::Ready(Some(Ok(message)));
            }
            Ok(None) => {}
            Err(error) => inner.pending_error = Some(Box::new(Error::Protocol(error))),
        }
        if inner.conn.is_closed() {
            wakers.reader_write.register(cx.waker());
            let finished = ready!(poll_finish(inner, cx, &mut write_cx));
            return match inner.pending_error.take() {
                Some(error) => Poll::Ready(Some(Err(*error))),
                None => Poll::Ready(finished),
            };
        }
        if inner.conn.has_output() {
            // Pending is fine: the shared write waker wakes us.
            wakers.reader_write.register(cx.waker());
            if let Poll::Ready(Err(e)) = flush_inner(inner, &mut write_cx) {
                inner.done = true;
                return Poll::Ready(Some(Err(Error::Io(e))));
            }
        }
        if inner.eof {
            inner.done = true;
            if inner.reported_abnormal {
                return Poll::Ready(None);
            }
            inner.reported_abnormal = true;
            return Poll::Ready(Some(Err(Error::AbnormalClose)));
        }
        if inner.keepalive.is_some() {
            wakers.reader_write.register(cx.waker());
        }
        if let Some(timed_out) = poll_keepalive(inner, cx, &mut write_cx) {
            return Poll::Ready(Some(Err(timed_out)));
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
        let Inner { stream, conn, .. } = inner;
        let buf = conn.input_buffer();
        // Room for the rest of the frame in progress, or for a usual read.
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
        if buf.capacity() - buf.len() < wanted {
            if buf.capacity() == 0 {
                *buf = buffer_pool::take();
            } else {
                // Grow by doubling, with what has arrived rather than what
                // a header claims, but no further than the frame needs
                // (plus a usual read, so that the next frame of that size
                // fits too instead of forcing a shift of the whole buffer
                // to the front, a copy on every message).
                let double = READ_RESERVE.max(buf.len());
                let needed = remaining.saturating_add(READ_RESERVE);
                buf.reserve(if remaining > 0 {
                    needed.min(double)
                } else {
                    double
                });
            }
        }
        match tokio_util::io::poll_read_buf(Pin::new(stream), cx, buf) {
            Poll::Pending => {
                // Idle: hold no buffer while waiting (a large one only for
                // a moment, in case another large message follows).
                if buf.is_empty() {
                    // (An empty buffer was reclaimed to its whole
                    // allocation before the read.)
                    if buf.capacity() <= buffer_pool::MAX_POOLED_CAPACITY {
                        buffer_pool::give(std::mem::take(buf));
                    } else {
                        let timer = inner
                            .release_timer
                            .get_or_insert_with(|| Box::pin(tokio::time::sleep(LARGE_BUFFER_IDLE)));
                        if timer.as_mut().poll(cx).is_ready() {
                            *inner.conn.input_buffer() = BytesMut::new();
                            inner.release_timer = None;
                        }
                    }
                }
                // For a server shutdown's close (`start_close`).
                wakers.read.register(cx.waker());
                // A close requested before that registration would be
                // missed: look once more.
                if wakers.close_requested.load(Ordering::Acquire) {
                    cx.waker().wake_by_ref();
                }
                return Poll::Pending;
            }
            Poll::Ready(Ok(0)) => inner.eof = true,
            Poll::Ready(Ok(_)) => {
                if let Some(timer) = &mut inner.release_timer {
                    timer.as_mut().reset(Instant::now() + LARGE_BUFFER_IDLE);
                }
                if let Some(keepalive) = &mut inner.keepalive {
                    keepalive.last_seen = Instant::now();
                    keepalive.ping_deadline = None;
                }
            }
            Poll::Ready(Err(e)) => {
                inner.done = true;
                return Poll::Ready(Some(Err(Error::Io(e))));
            }
        }
    }
}

/// Sends a keepalive ping when the peer has been silent for the interval,
/// and gives the connection up when nothing arrives within the timeout
/// after that ping.
fn poll_keepalive<S: AsyncRead + AsyncWrite + Unpin>(
    inner: &mut Inner<S>,
    cx: &mut Context<'_>,
    write_cx: &mut Context<'_>,
) -> Option<Error> {
    loop {
        let keepalive = inner.keepalive.as_mut()?;
        if keepalive.timer.as_mut().poll(cx).is_pending() {
            return None;
        }
        let now = Instant::now();
        let KeepAlive { interval, timeout } = keepalive.settings;
        match keepalive.ping_deadline {
            Some(deadline) if now >= deadline => {
                inner.keepalive = None;
                inner.done = true;
                inner.reported_abnormal = true;
                let _ = inner
                    .conn
                    .close(Some(CloseFrame::new(CloseCode::Away, "keepalive timeout")));
                let _ = flush_inner(inner, write_cx);
                return Some(Error::Timeout("the peer did not answer keepalive pings"));
            }
            Some(deadline) => keepalive.timer.as_mut().reset(deadline),
            None if now >= keepalive.last_seen + interval => {
                keepalive.ping_deadline = Some(now + timeout);
                keepalive.timer.as_mut().reset(now + timeout);
                let _ = inner
                    .conn
                    .send(Message::Ping(bytes::Bytes::from_static(KEEPALIVE_PAYLOAD)));
                let _ = flush_inner(inner, write_cx);
            }
            None => {
                let due = keepalive.last_seen + interval;
                keepalive.timer.as_mut().reset(due);
            }
        }
    }
}

/// The end of a connection after the close handshake (or a failure):
/// flush the close frame, shut down our side where RFC 6455 §7.1.1 says we
/// close first (the server, or anyone failing the connection), then read
/// and discard until the peer closes too, at most until the close timeout.
/// Draining instead of closing at once keeps the kernel from resetting the
/// connection while our close frame is still in flight.
fn poll_finish<S: AsyncRead + AsyncWrite + Unpin>(
    inner: &mut Inner<S>,
    cx: &mut Context<'_>,
    write_cx: &mut Context<'_>,
) -> Poll<Option<Result<Message>>> {
    if inner.deadline.is_none() {
        inner.deadline = Some(Box::pin(tokio::time::sleep_until(
            Instant::now() + inner.close_timeout,
        )));
    }
    let timed_out = inner
        .deadline
        .as_mut()
        .is_some_and(|d| d.as_mut().poll(cx).is_ready());
    if timed_out {
        inner.done = true;
        return Poll::Ready(None);
    }
    match flush_inner(inner, write_cx) {
        Poll::Pending => return Poll::Pending,
        Poll::Ready(Err(_)) => {
            inner.done = true;
            return Poll::Ready(None);
        }
        Poll::Ready(Ok(())) => {}
    }
    let closes_first = inner.conn.role() == Role::Server || inner.conn.failed();
    if closes_first && !inner.shut_down {
        match Pin::new(&mut inner.stream).poll_shutdown(write_cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(_) => inner.shut_down = true,
        }
    }
    if closes_first && !inner.conn.failed() {
        // A clean close handshake is over and our FIN is out: nothing more
        // is expected from the peer, so the server need not wait for its
        // FIN. After a failure we do drain, because the peer may still be
        // sending and closing on unread data would reset the connection
        // before it reads our close frame.
        inner.done = true;
        return Poll::Ready(None);
    }
    let mut scratch = [0u8; 4096];
    while !inner.eof {
        let mut buf = tokio::io::ReadBuf::new(&mut scratch);
        match Pin::new(&mut inner.stream).poll_read(cx, &mut buf) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(())) if buf.filled().is_empty() => inner.eof = true,
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(_)) => inner.eof = true,
        }
    }
    if !inner.shut_down {
        // The peer closed first (we are the client): answer its FIN.
        let _ = Pin::new(&mut inner.stream).poll_shutdown(write_cx);
        inner.shut_down = true;
    }
    inner.done = true;
    Poll::Ready(None)
}

use std::future::Future as _;

fn poll_ready<S: AsyncWrite + Unpin>(
    inner: &mut Inner<S>,
    link: &Link,
    cx: &mut Context<'_>,
) -> Poll<Result<()>> {
    if inner.conn.pending_output().remaining() > OUTPUT_HIGH_WATER {
        ready!(poll_flush(inner, link, cx))?;
    }
    Poll::Ready(Ok(()))
}

fn poll_close<S: AsyncWrite + Unpin>(
    inner: &mut Inner<S>,
    link: &Link,
    cx: &mut Context<'_>,
) -> Poll<Result<()>> {
    if !inner.conn.close_sent() && !inner.conn.failed() {
        let _ = inner
            .conn
            .close(Some(CloseFrame::new(CloseCode::Normal, "")));
    }
    poll_flush(inner, link, cx)
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for WebSocket<S> {
    type Item = Result<Message>;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        poll_recv(&mut this.inner, &this.link, cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WebSocket<S> {
    type Error = Error;
    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        poll_ready(&mut this.inner, &this.link, cx)
    }
    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<()> {
        let this = self.get_mut();
        feed(&mut this.inner, item)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        poll_flush(&mut this.inner, &this.link, cx)
    }
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        poll_close(&mut this.inner, &this.link, cx)
    }
}

/// The receiving half of a split [`WebSocket`].
pub struct WsReader<S> {
    shared: Arc<Shared<S>>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsReader<S> {
    /// Receives the next message, like [`WebSocket::recv`]. Cancellation-safe.
    pub async fn recv(&mut self) -> Option<Result<Message>> {
        poll_fn(|cx| self.shared.with(|inner, link| poll_recv(inner, link, cx))).await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for WsReader<S> {
    type Item = Result<Message>;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.shared.with(|inner, link| poll_recv(inner, link, cx))
    }
}

/// The sending half of a split [`WebSocket`].
pub struct WsWriter<S> {
    shared: Arc<Shared<S>>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsWriter<S> {
    /// Queues a message and writes everything queued.
    pub async fn send(&mut self, message: impl Into<Message>) -> Result<()> {
        self.feed(message)?;
        self.flush().await
    }

    /// Queues a message without writing it.
    pub fn feed(&mut self, message: impl Into<Message>) -> Result<()> {
        let message = message.into();
        self.shared.with(|inner, _| feed(inner, message))
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> Result<()> {
        poll_fn(|cx| self.shared.with(|inner, link| poll_flush(inner, link, cx))).await
    }

    /// Sends a close frame (1000 if `None`); the reader sees the peer's
    /// answer and then the end of the stream.
    pub async fn close(&mut self, frame: Option<CloseFrame>) -> Result<()> {
        let frame = frame.unwrap_or_else(|| CloseFrame::new(CloseCode::Normal, ""));
        self.feed(Message::Close(Some(frame)))?;
        self.flush().await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WsWriter<S> {
    type Error = Error;
    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.shared.with(|inner, link| poll_ready(inner, link, cx))
    }
    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<()> {
        self.shared.with(|inner, _| feed(inner, item))
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.shared.with(|inner, link| poll_flush(inner, link, cx))
    }
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.shared.with(|inner, link| poll_close(inner, link, cx))
    }
}

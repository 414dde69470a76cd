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
//! different tasks (see `split.rs`). The I/O loop both run is in
//! `io.rs`.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use duplex_proto::{
    CloseCode, CloseFrame, Config, Connection, Message, MessageRef, Outbox, Role, State,
};
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::budget::{MemoryBudget, Reservation};
use crate::error::{Error, Result};
use crate::io::{
    feed, next_message, poll_close, poll_flush, poll_ready, poll_recv, provide_write_buffer,
    return_idle_write_buffer, Inner,
};
use crate::keepalive::{KeepAlive, KeepAliveTimer};
use crate::signals::{Link, Signals};
use crate::timeouts::{Shared as SharedTimeouts, Timeouts};

/// How long a closing connection waits for the peer by default: for its
/// close frame, and then (a client) for the server to close the TCP
/// connection. Counted from when the connection first waits for the
/// peer's close (after a close it sent, whoever sent it: the application,
/// a server shutdown, the idle timeout) or for the end of the transport
/// (after a failure, such as the message timeout).
pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// A WebSocket connection over any async byte stream `S` (a `TcpStream`, a
/// TLS stream, an in-memory duplex, hyper's upgraded connection...), after
/// the handshake.
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
///
/// Over an in-memory pipe, with the engine made by hand:
///
/// ```
/// use duplex::{Config, Message, Role, WebSocket};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> duplex::Result<()> {
/// let (a, b) = tokio::io::duplex(4096);
/// let mut client = WebSocket::from_raw(a, Role::Client, Config::default());
/// let mut server = WebSocket::from_raw(b, Role::Server, Config::default());
/// client.send("ping?").await?;
/// let message = server.recv().await.expect("a message")?;
/// assert_eq!(message, Message::text("ping?"));
/// # Ok(()) }
/// ```
pub struct WebSocket<S> {
    /// Boxed: the socket is moved into and kept by handler futures, which
    /// should stay small; one allocation, no lock.
    pub(crate) inner: Box<Inner<S>>,
    pub(crate) link: Link,
    pub(crate) protocol: Option<String>,
}

impl<S> std::fmt::Debug for WebSocket<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocket")
            .field("protocol", &self.protocol)
            .field("state", &self.inner.conn.state())
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
            inner: Box::new(Inner::new(stream, conn, DEFAULT_CLOSE_TIMEOUT)),
            link: Link::new(),
            protocol: None,
        }
    }

    /// Wraps a stream whose handshake is done, with a fresh engine (no
    /// extension).
    pub fn from_raw(stream: S, role: Role, config: Config) -> WebSocket<S> {
        Self::from_parts(stream, Connection::new(role, config), &[])
    }

    /// Records the subprotocol the handshake agreed on (what
    /// [`handshake::server::accept`](duplex_proto::handshake::server::accept)
    /// returned), for [`WebSocket::protocol`] and a handler's
    /// [`Session::protocol`](crate::Session::protocol). duplex's own server
    /// and client do this themselves.
    pub fn set_protocol(&mut self, protocol: Option<String>) {
        self.protocol = protocol;
    }

    /// Counts what this connection buffers against a shared memory budget
    /// (see [`MemoryBudget`]); `None`, the default, leaves it unbounded
    /// except by the per-message limits. A [`Hub`](crate::Hub) sets its
    /// budget on every connection it attaches.
    pub fn set_memory_budget(&mut self, budget: Option<Arc<MemoryBudget>>) {
        self.inner.budget = budget.map(|budget| Box::new(Reservation::new(budget)));
    }

    /// Where the connection is in its life: open, closing, closed, failed
    /// or finished.
    pub fn state(&self) -> State {
        self.inner.conn.state()
    }

    /// Lets the socket wake this connection once a large frame is all
    /// there rather than piece by piece (see `transport::low_water`).
    #[cfg(unix)]
    pub(crate) fn set_low_water(
        &mut self,
        low_water: Option<crate::transport::low_water::LowWater>,
    ) {
        self.inner.low_water = low_water;
    }

    /// The connection's signals, for a server or hub to close it on
    /// shutdown.
    pub(crate) fn signals(&self) -> Arc<Signals> {
        self.link.signals.clone()
    }

    /// The subprotocol agreed in the handshake.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// Whether `permessage-deflate` was negotiated.
    pub fn is_compressed(&self) -> bool {
        self.inner.conn.is_compressed()
    }

    /// Sets how long a closing connection waits for the peer (default 5 s,
    /// see [`DEFAULT_CLOSE_TIMEOUT`]); then the socket is dropped.
    pub fn set_close_timeout(&mut self, timeout: Duration) {
        self.inner.close_timeout = timeout;
    }

    /// Turns keepalive on (or off with `None`, the default): while
    /// [`WebSocket::recv`] is being awaited, a ping goes out `interval`
    /// after the connection opened and after each answered ping, and if no
    /// pong with the ping's payload arrives within `timeout` after it, the
    /// connection is given up: `recv` returns [`Error::Timeout`], the peer
    /// gets a close 1001 if the socket still takes it, and the close code
    /// reported is 1006. Data does not count as an answer (see
    /// [`KeepAlive`]).
    pub fn set_keepalive(&mut self, keepalive: Option<KeepAlive>) {
        self.inner.keepalive = keepalive.map(|settings| Box::new(KeepAliveTimer::new(settings)));
    }

    /// Sets the connection's [`Timeouts`]: by default a message must
    /// arrive within 30 s of its first byte and a write must make progress
    /// within 30 s, and there is no idle timeout ([`Timeouts::default`]).
    /// The idle clock starts again from now.
    pub fn set_timeouts(&mut self, timeouts: Timeouts) {
        self.inner.clocks.set(timeouts);
    }

    /// The connection's timeouts.
    pub fn timeouts(&self) -> Timeouts {
        self.inner.clocks.settings()
    }

    /// Takes timeouts and their counters shared with other connections
    /// (a hub's).
    pub(crate) fn share_timeouts(&mut self, shared: Arc<SharedTimeouts>) {
        self.inner.clocks.share(shared);
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
        next_message(&mut self.inner).transpose()
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
        provide_write_buffer(&mut inner.conn);
        let lent = inner.conn.lend_buffered(f).map_err(Error::Protocol);
        inner.account_incoming();
        if matches!(lent, Ok(n) if n > 0) {
            inner.clocks.saw_data();
        }
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

    /// Starts the close ahead of the output not yet written (the frame
    /// being written is finished first); returns how many data messages
    /// it dropped. See [`Connection::close_now`](duplex_proto::Connection::close_now).
    pub(crate) fn close_now(&mut self, frame: CloseFrame) -> usize {
        provide_write_buffer(&mut self.inner.conn);
        self.inner.conn.close_now(Some(frame)).unwrap_or(0)
    }

    /// How many data messages fed have not been written whole.
    pub(crate) fn unsent_messages(&self) -> usize {
        self.inner.conn.unsent_messages()
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

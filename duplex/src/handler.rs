//! The event-handler API: [`Handler`] with `on_open`, `on_message`,
//! `on_close` and `on_error`, like Java-WebSocket, `javax.websocket` and
//! Node `ws`, and a cloneable [`Session`] to send from anywhere.
//!
//! ```no_run
//! use duplex::{Handler, Message, Server, Session};
//!
//! struct Echo;
//!
//! impl Handler for Echo {
//!     async fn on_open(&mut self, session: &Session) {
//!         let _ = session.send("Welcome!");
//!     }
//!     async fn on_message(&mut self, session: &Session, message: Message) {
//!         if let Message::Text(text) = message {
//!             let _ = session.send(format!("Echo: {text}"));
//!         }
//!     }
//! }
//!
//! # async fn run() -> duplex::Result<()> {
//! Server::new().handler("/", |_req| Echo).bind("127.0.0.1:8080").await?.serve().await
//! # }
//! ```

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use duplex_proto::{CloseCode, CloseFrame, Message};

use crate::error::{Error, Result};
use crate::queue::{OutboundQueue, QueueStats, Refused};
use crate::request::UpgradeRequest;
use crate::rooms::Rooms;
use crate::stream::MaybeTlsStream;
use crate::websocket::{WebSocket, DEFAULT_CLOSE_TIMEOUT};

/// Callbacks for one connection. A new handler is made for each
/// connection (by the factory given to
/// [`Server::handler`](crate::Server::handler)), so it can keep
/// per-connection state in `self`.
///
/// Callbacks run one at a time, in order, on the connection's task. Only
/// text and binary messages reach `on_message`: pings are answered and
/// closes completed by the engine.
pub trait Handler: Send + 'static {
    /// The connection is open.
    fn on_open(&mut self, session: &Session) -> impl Future<Output = ()> + Send {
        let _ = session;
        async {}
    }

    /// A text or binary message arrived.
    fn on_message(
        &mut self,
        session: &Session,
        message: Message,
    ) -> impl Future<Output = ()> + Send;

    /// The connection is over: `code` is the peer's close code (1006 when
    /// it vanished without a close frame). Called exactly once.
    fn on_close(
        &mut self,
        session: &Session,
        code: CloseCode,
        reason: &str,
    ) -> impl Future<Output = ()> + Send {
        let _ = (session, code, reason);
        async {}
    }

    /// Something went wrong (a protocol error by the peer, a socket
    /// error); `on_close` follows.
    fn on_error(&mut self, session: &Session, error: &Error) -> impl Future<Output = ()> + Send {
        let _ = (session, error);
        async {}
    }
}

struct SessionInner {
    id: u64,
    rooms: Arc<Rooms>,
    /// The rooms this session is in, so it can leave them all at the end.
    joined: Mutex<Vec<String>>,
    request: UpgradeRequest,
    queue: OutboundQueue,
    stats: Arc<QueueStats>,
    protocol: Option<String>,
}

/// A handle to one server-side connection: cheap to clone, usable from any
/// task. Sending never waits: messages go to the connection's bounded
/// outbound queue (see [`QueueLimits`](crate::QueueLimits)).
#[derive(Clone)]
pub struct Session {
    inner: Arc<SessionInner>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.inner.id)
            .finish_non_exhaustive()
    }
}

impl PartialEq for Session {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for Session {}

impl Session {
    pub(crate) fn new(
        id: u64,
        rooms: Arc<Rooms>,
        request: UpgradeRequest,
        queue: OutboundQueue,
        stats: Arc<QueueStats>,
        protocol: Option<String>,
    ) -> Session {
        Session {
            inner: Arc::new(SessionInner {
                id,
                rooms,
                joined: Mutex::new(Vec::new()),
                request,
                queue,
                stats,
                protocol,
            }),
        }
    }

    /// A number unique among this server's connections.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// The request that opened the connection (path, parameters, query,
    /// headers).
    pub fn request(&self) -> &UpgradeRequest {
        &self.inner.request
    }

    /// The server's room registry.
    pub fn rooms(&self) -> &Rooms {
        &self.inner.rooms
    }

    pub(crate) fn joined(&self, room: &str) {
        let mut joined = self.inner.joined.lock().unwrap_or_else(|p| p.into_inner());
        if !joined.iter().any(|r| r == room) {
            joined.push(room.to_string());
        }
    }

    pub(crate) fn left(&self, room: &str) {
        self.inner
            .joined
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|r| r != room);
    }

    /// Leaves every room (when the connection ends).
    fn leave_all_rooms(&self) {
        let joined =
            std::mem::take(&mut *self.inner.joined.lock().unwrap_or_else(|p| p.into_inner()));
        for room in joined {
            self.inner.rooms.leave_id(&room, self.inner.id);
        }
    }

    /// The agreed subprotocol.
    pub fn protocol(&self) -> Option<&str> {
        self.inner.protocol.as_deref()
    }

    /// Queues a message. Fails with [`Error::Closed`] once the connection
    /// is closing, and with [`Error::QueueFull`] when the queue overflowed
    /// under the close policy (the connection is then closed with 1013).
    pub fn send(&self, message: impl Into<Message>) -> Result<()> {
        match self.inner.queue.push(message.into(), &self.inner.stats) {
            Ok(()) => Ok(()),
            Err(Refused::Closed) => Err(Error::Closed),
            Err(Refused::Overflow) => Err(Error::QueueFull),
        }
    }

    /// Closes the connection after the messages already queued.
    pub fn close(&self, code: CloseCode, reason: &str) {
        self.inner.queue.close(CloseFrame::new(code, reason));
    }
}

/// How long a write may stall before the peer is given up: it stopped
/// reading, so its socket and our queue would otherwise be held forever.
const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Writes what is queued, giving up when the write stalls for
/// [`WRITE_STALL_TIMEOUT`] or, once a close is decided (before or during the
/// write), at the close deadline.
async fn write(
    ws: &mut WebSocket<MaybeTlsStream>,
    queue: &OutboundQueue,
    close_deadline: &mut Option<Instant>,
) -> Result<()> {
    let mut deadline = close_deadline.unwrap_or_else(|| Instant::now() + WRITE_STALL_TIMEOUT);
    loop {
        tokio::select! {
            biased;
            written = ws.flush() => return written,
            _ = tokio::time::sleep_until(deadline) => return Err(Error::Timeout("the peer stopped reading")),
            _ = queue.close_notified(), if close_deadline.is_none() => {
                let decided = Instant::now() + DEFAULT_CLOSE_TIMEOUT;
                *close_deadline = Some(decided);
                deadline = deadline.min(decided);
            }
        }
    }
}

/// Runs a handler over a connection until it is over.
///
/// The outbound queue is served first (`biased`), and the task yields to
/// the scheduler as it handles incoming messages, so that a burst relayed
/// by one connection cannot starve the others' writers. Writes are
/// time-bounded; once a close is queued (by the application or the slow
/// consumer policy), the peer has the close timeout to answer.
pub(crate) async fn drive<H: Handler>(
    mut ws: WebSocket<MaybeTlsStream>,
    mut handler: H,
    session: Session,
) {
    handler.on_open(&session).await;
    let queue = &session.inner.queue;
    let mut batch = Vec::new();
    // Set when a close is decided; the peer must be done by then.
    let mut close_deadline: Option<Instant> = None;
    let mut close_fed = false;
    loop {
        let deadline = close_deadline.unwrap_or_else(Instant::now);
        tokio::select! {
            biased;
            _ = queue.notified(), if !close_fed => {
                let close = queue.drain(&mut batch);
                for message in batch.drain(..) {
                    if ws.feed(message).is_err() {
                        break;
                    }
                }
                if let Some(frame) = close {
                    close_deadline.get_or_insert_with(|| Instant::now() + DEFAULT_CLOSE_TIMEOUT);
                    close_fed = true;
                    let _ = ws.feed(Message::Close(Some(frame)));
                }
                if let Err(error) = write(&mut ws, queue, &mut close_deadline).await {
                    handler.on_error(&session, &error).await;
                    break;
                }
            }
            _ = tokio::time::sleep_until(deadline), if close_deadline.is_some() => break,
            item = ws.recv() => match item {
                Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => {
                    handler.on_message(&session, message).await;
                    tokio::task::consume_budget().await;
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => handler.on_error(&session, &error).await,
                None => break,
            },
        }
    }
    // Nothing more will be sent: refuse further messages.
    session
        .inner
        .queue
        .close(CloseFrame::new(CloseCode::Normal, ""));
    let frame = ws.close_frame();
    let reason = frame.as_ref().map_or("", |f| f.reason.as_str());
    handler.on_close(&session, ws.close_code(), reason).await;
    session.leave_all_rooms();
}

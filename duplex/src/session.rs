//! [`Session`]: a handle to one server-side connection run by a
//! [`Handler`](crate::Handler).

use std::sync::{Arc, Mutex};

use duplex_proto::{CloseCode, CloseFrame, Message};

use crate::error::{Error, Result};
use crate::queue::{Refused, SendQueue};
use crate::request::UpgradeRequest;
use crate::rooms::Rooms;

struct SessionInner {
    id: u64,
    rooms: Arc<Rooms>,
    /// The rooms this session is in, so it can leave them all at the end.
    joined: Mutex<Vec<String>>,
    request: UpgradeRequest,
    queue: Arc<SendQueue>,
    protocol: Option<String>,
}

/// A handle to one server-side connection: cheap to clone, usable from any
/// task. Sending never waits: messages go to the connection's bounded
/// outbound queue (see [`QueueLimits`](crate::QueueLimits)).
///
/// A session is what a [`Handler`](crate::Handler)'s callbacks get; keep a
/// clone to send from elsewhere (a timer, a backend subscription):
///
/// ```no_run
/// use std::time::Duration;
/// use duplex::{Handler, Message, Server, Session};
///
/// struct Ticker;
///
/// impl Handler for Ticker {
///     async fn on_open(&mut self, session: &Session) {
///         let session = session.clone();
///         tokio::spawn(async move {
///             let mut n = 0u64;
///             // Stops once the connection is gone and sending fails.
///             while session.send(format!("tick {n}")).is_ok() {
///                 n += 1;
///                 tokio::time::sleep(Duration::from_secs(1)).await;
///             }
///         });
///     }
///     async fn on_message(&mut self, session: &Session, message: Message) {
///         session.join("lobby");
///         session.publish("lobby", &message); // to the lobby's other members
///     }
/// }
///
/// # async fn run() -> duplex::Result<()> {
/// Server::new().handler("/ticks", |_req| Ticker).bind("127.0.0.1:8080").await?.serve().await
/// # }
/// ```
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
        queue: Arc<SendQueue>,
        protocol: Option<String>,
    ) -> Session {
        Session {
            inner: Arc::new(SessionInner {
                id,
                rooms,
                joined: Mutex::new(Vec::new()),
                request,
                queue,
                protocol,
            }),
        }
    }

    /// A number unique among the connections of this process.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// The request that opened the connection (path, parameters, query,
    /// headers).
    pub fn request(&self) -> &UpgradeRequest {
        &self.inner.request
    }

    /// The room registry this session's rooms live in (the hub's).
    pub fn rooms(&self) -> &Rooms {
        &self.inner.rooms
    }

    /// The agreed subprotocol.
    pub fn protocol(&self) -> Option<&str> {
        self.inner.protocol.as_deref()
    }

    fn joined(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.inner.joined.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Joins a room (creating it) as an anonymous member: counted in the
    /// room's [presence](Rooms::presence), not listed. The session leaves
    /// by itself when its connection ends.
    pub fn join(&self, room: &str) {
        let mut joined = self.joined();
        if !joined.iter().any(|r| r == room) {
            joined.push(room.to_string());
            self.inner
                .rooms
                .join(room, self.inner.id, self.inner.queue.clone());
            self.inner.rooms.membership_changed(room);
        }
    }

    /// Joins a room (creating it) under a display name, which the room's
    /// [presence](Rooms::presence) lists (on every node, with a backplane
    /// that reports presence). The name is cleaned with
    /// [`display_name`](crate::presence::display_name); nothing left of it
    /// makes an anonymous member. Already in the room: renames.
    pub fn join_as(&self, room: &str, name: &str) {
        let name = crate::presence::display_name(name).map(Arc::<str>::from);
        // Named before joining, so the member never shows unnamed.
        self.inner.rooms.set_name(room, self.inner.id, name);
        self.join(room);
        self.inner.rooms.membership_changed(room);
    }

    /// Leaves a room (dropping it if it is then empty).
    pub fn leave(&self, room: &str) {
        let mut joined = self.joined();
        let was_in = joined.iter().any(|r| r == room);
        joined.retain(|r| r != room);
        drop(joined);
        self.leave_room(room, was_in);
    }

    fn leave_room(&self, room: &str, was_in: bool) {
        self.inner.rooms.leave(room, self.inner.id);
        self.inner.rooms.set_name(room, self.inner.id, None);
        if was_in {
            self.inner.rooms.membership_changed(room);
        }
    }

    /// The rooms this session is in.
    pub fn joined_rooms(&self) -> Vec<String> {
        self.joined().clone()
    }

    /// Queues `message` for every member of `room` except this session
    /// (whether or not it is a member itself). Returns how many members it
    /// was queued for.
    pub fn publish(&self, room: &str, message: &Message) -> usize {
        self.inner
            .rooms
            .publish_except(room, message, Some(self.inner.id))
    }

    /// Leaves every room (when the connection ends).
    pub(crate) fn leave_all_rooms(&self) {
        let joined = std::mem::take(&mut *self.joined());
        for room in joined {
            self.leave_room(&room, true);
        }
    }

    /// Queues a message. Fails with [`Error::Closed`] once the connection
    /// is closing, and with [`Error::QueueFull`] when the queue overflowed
    /// under the close policy (the connection is then closed with 1013).
    pub fn send(&self, message: impl Into<Message>) -> Result<()> {
        match self.inner.queue.push(message.into()) {
            Ok(()) => Ok(()),
            Err(Refused::Closed) => Err(Error::Closed),
            Err(Refused::Overflow) => Err(Error::QueueFull),
        }
    }

    /// Closes the connection after the messages already queued (sending
    /// fails from now on).
    pub fn close(&self, code: CloseCode, reason: &str) {
        self.inner.queue.close(CloseFrame::new(code, reason));
    }

    /// The connection's outbound queue, for the task that writes it.
    pub(crate) fn queue(&self) -> &SendQueue {
        &self.inner.queue
    }
}

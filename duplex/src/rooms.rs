//! [`Rooms`]: named groups of connections.
//!
//! A registry maps room names to their members' outbound queues.
//! Publishing puts the message in each member's bounded queue; the payload
//! is reference-counted ([`bytes::Bytes`]), so a message for a room of N
//! members is shared, not copied N times. A member whose queue is full is
//! handled by its [`SlowConsumerPolicy`](crate::SlowConsumerPolicy) and
//! never slows the publisher or the other members down.
//!
//! Connections join and leave through their [`Session`](crate::Session)
//! ([`Session::join`](crate::Session::join),
//! [`Session::publish`](crate::Session::publish)), which also remembers
//! its rooms so that it leaves them all when it ends. The registry itself
//! is what code without a connection uses: publishing from a backend task,
//! counting members.
//!
//! ```
//! use duplex::{Message, Rooms};
//!
//! let rooms = Rooms::new();
//! // Nobody is in "news" yet: the message reaches no one.
//! assert_eq!(rooms.publish("news", &Message::text("hello")), 0);
//! assert_eq!(rooms.member_count("news"), 0);
//! ```
//!
//! The chat of `duplex serve` is the [`Relay`](crate::Relay) handler on
//! top of this.
//!
//! A registry built with [`Rooms::with_backplane`] spans processes: what
//! is published reaches the room's members on every node of the
//! [`Backplane`] (see [`backplane`](crate::backplane) for its guarantees),
//! and [`Rooms::publish_local`] stays on this node.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use duplex_proto::Message;

use crate::backplane::{now_us, Backplane, Envelope, LocalDelivery, LocalRooms};
use crate::history::{Origin, RoomHistory};
use crate::presence::{Presence, RoomPresence};
use crate::queue::SendQueue;

type Members = HashMap<u64, Arc<SendQueue>>;
/// The display names of named members, per room and session id.
type Names = HashMap<String, HashMap<u64, Arc<str>>>;

/// One room on this node.
struct Room {
    members: Members,
    /// Its last messages, when the registry keeps history.
    history: Option<RoomHistory>,
}

impl Room {
    /// Queues `message` for the members but `except`; how many took it.
    fn queue(&self, message: &Message, except: Option<u64>) -> usize {
        self.members
            .iter()
            .filter(|(id, _)| Some(**id) != except)
            .filter(|(_, queue)| queue.push(message.clone()).is_ok())
            .count()
    }
}

/// A registry of rooms. Rooms appear on first join and vanish when their
/// last member leaves. Share one registry with `Arc`; a
/// [`Hub`](crate::Hub) has one for its sessions.
///
/// Connections join, leave and publish through their
/// [`Session`](crate::Session); the registry is what code without a
/// connection uses, e.g. a backend task that notifies a room:
///
/// ```no_run
/// use std::sync::Arc;
/// use duplex::{Message, Relay, Rooms, Server};
///
/// # async fn run() -> duplex::Result<()> {
/// let rooms = Arc::new(Rooms::new());
/// let server = Server::new()
///     .rooms(rooms.clone())
///     .handler("/chat/{room}", Relay::for_request)
///     .bind("127.0.0.1:8080")
///     .await?;
/// tokio::spawn(async move {
///     loop {
///         tokio::time::sleep(std::time::Duration::from_secs(60)).await;
///         let reached = rooms.publish("lobby", &Message::text("a minute passed"));
///         println!("{reached} members of the lobby notified");
///     }
/// });
/// server.serve().await
/// # }
/// ```
#[derive(Default)]
pub struct Rooms {
    rooms: Mutex<HashMap<String, Room>>,
    /// Where published messages also go, and remote ones come from.
    backplane: Option<Arc<dyn Backplane>>,
    /// How many of each room's last messages a joining member gets first.
    history: usize,
    /// Display names, apart from the members so that naming touches
    /// neither the delivery path nor its lock.
    names: Mutex<Names>,
}

impl std::fmt::Debug for Rooms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rooms")
            .field("rooms", &self.room_count())
            .field("backplane", &self.backplane.is_some())
            .finish()
    }
}

impl Rooms {
    /// An empty registry of this process's rooms.
    pub fn new() -> Rooms {
        Rooms::default()
    }

    /// An empty registry whose rooms span every node of `backplane`:
    /// [`publish`](Rooms::publish) reaches the room's members on all of
    /// them.
    ///
    /// ```no_run
    /// # #[cfg(feature = "redis")]
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use duplex::backplane::{RedisBackplane, RedisOptions};
    /// use duplex::{Relay, Rooms, Server};
    ///
    /// let backplane = RedisBackplane::start(RedisOptions::new("redis://127.0.0.1:6379"))?;
    /// let rooms = Rooms::with_backplane(backplane);
    /// Server::new()
    ///     .rooms(rooms)
    ///     .handler("/chat/{room}", Relay::for_request)
    ///     .bind("127.0.0.1:8080")
    ///     .await?
    ///     .serve()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn with_backplane(backplane: Arc<dyn Backplane>) -> Arc<Rooms> {
        Rooms::new().spanning(backplane)
    }

    /// This registry, its rooms spanning every node of `backplane` (as
    /// [`Rooms::with_backplane`], after settings such as
    /// [`Rooms::with_history`]).
    pub fn spanning(mut self, backplane: Arc<dyn Backplane>) -> Arc<Rooms> {
        self.backplane = Some(backplane.clone());
        let rooms = Arc::new(self);
        let local: Arc<dyn LocalDelivery> = rooms.clone();
        backplane.attach(LocalRooms::new(Arc::downgrade(&local)));
        rooms
    }

    /// A member who joins a room first receives its last `messages`
    /// messages (default 0: none), then the live ones, with no gap and no
    /// duplicate between the two.
    ///
    /// On one node the history lives as long as the room (rooms vanish
    /// when their last member leaves). With a backplane that keeps
    /// history (the [`RedisBackplane`](crate::backplane::RedisBackplane)
    /// with [`RedisOptions::history`](crate::backplane::RedisOptions::history)),
    /// a room that appears on this node loads its history from there, so
    /// it is the room's history on every node.
    ///
    /// ```
    /// use duplex::{Message, Rooms};
    ///
    /// let rooms = Rooms::new().with_history(50);
    /// assert_eq!(rooms.history(), 50);
    /// ```
    pub fn with_history(mut self, messages: usize) -> Rooms {
        self.history = messages;
        self
    }

    /// How many of a room's last messages a joining member gets first.
    pub fn history(&self) -> usize {
        self.history
    }

    /// The backplane the rooms span, if any.
    pub fn backplane(&self) -> Option<&Arc<dyn Backplane>> {
        self.backplane.as_ref()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Room>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a member's queue to a room (creating the room). With history,
    /// the member first gets the room's last messages, under the lock that
    /// publishing takes: nothing published in between is missed or
    /// repeated.
    pub(crate) fn join(&self, room: &str, id: u64, queue: Arc<SendQueue>) {
        let mut rooms = self.lock();
        if !rooms.contains_key(room) {
            let created = self.create(room);
            rooms.insert(room.to_string(), created);
        }
        let entry = rooms.get_mut(room).expect("just made");
        if let Some(replay) = entry.history.as_ref().and_then(RoomHistory::replay) {
            for message in replay {
                let _ = queue.push(message.clone());
            }
        }
        entry.members.insert(id, queue);
    }

    /// A room that appears on this node. Called under the lock, so
    /// subscribe and unsubscribe reach the backplane in the order the room
    /// appeared and vanished.
    fn create(&self, room: &str) -> Room {
        let mut loading = None;
        if let Some(backplane) = &self.backplane {
            backplane.subscribe(room);
            if self.history > 0 && backplane.load_history(room, self.history) {
                loading = Some(now_us());
            }
        }
        Room {
            members: Members::new(),
            history: (self.history > 0).then(|| RoomHistory::new(self.history, loading)),
        }
    }

    /// Removes a member from a room (dropping the room if it is empty).
    pub(crate) fn leave(&self, room: &str, id: u64) {
        let mut rooms = self.lock();
        if let Some(entry) = rooms.get_mut(room) {
            entry.members.remove(&id);
            if entry.members.is_empty() {
                rooms.remove(room);
                if let Some(backplane) = &self.backplane {
                    backplane.unsubscribe(room);
                }
            }
        }
    }

    /// Queues `message` for every member of `room`, and hands it to the
    /// backplane for the members on other nodes. Returns how many local
    /// members it was queued for.
    pub fn publish(&self, room: &str, message: &Message) -> usize {
        self.publish_except(room, message, None)
    }

    /// Queues `message` for every member of `room` on this node only (the
    /// backplane delivers what other nodes publish this way). Returns how
    /// many members it was queued for.
    pub fn publish_local(&self, room: &str, message: &Message) -> usize {
        self.queue_for_members(room, message, Origin::Local { except: None })
    }

    /// Queues `message` for every member of `room` but `except` (a
    /// session id, the sender's).
    pub(crate) fn publish_except(
        &self,
        room: &str,
        message: &Message,
        except: Option<u64>,
    ) -> usize {
        let reached = self.queue_for_members(room, message, Origin::Local { except });
        if let Some(backplane) = &self.backplane {
            backplane.forward(room, message);
        }
        reached
    }

    fn queue_for_members(&self, room: &str, message: &Message, origin: Origin) -> usize {
        let mut rooms = self.lock();
        let Some(entry) = rooms.get_mut(room) else {
            return 0;
        };
        if let Some(history) = &mut entry.history {
            if history.record(message, origin).is_none() {
                // Held back until the room's history is loaded.
                return entry.members.len();
            }
        }
        let except = match origin {
            Origin::Local { except } => except,
            Origin::Remote { .. } => None,
        };
        entry.queue(message, except)
    }

    /// How many members a room has (0 when it does not exist).
    pub fn member_count(&self, room: &str) -> usize {
        self.lock().get(room).map_or(0, |r| r.members.len())
    }

    /// How many rooms exist.
    pub fn room_count(&self) -> usize {
        self.lock().len()
    }

    /// The names of all rooms.
    pub fn room_names(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// Sets (or with `None` forgets) the display name of member `id` in
    /// `room`. A name set before the member joins shows once it has.
    pub(crate) fn set_name(&self, room: &str, id: u64, name: Option<Arc<str>>) {
        let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        match name {
            Some(name) => {
                names.entry(room.to_string()).or_default().insert(id, name);
            }
            None => {
                if let Some(room_names) = names.get_mut(room) {
                    room_names.remove(&id);
                    if room_names.is_empty() {
                        names.remove(room);
                    }
                }
            }
        }
    }

    /// A member of `room` joined, left or was renamed: the backplane may
    /// update this node's presence record (it never waits).
    pub(crate) fn membership_changed(&self, room: &str) {
        if let Some(backplane) = &self.backplane {
            backplane.presence_changed(room);
        }
    }

    /// Who is in `room` on this node: every member counted, the named ones
    /// listed (see [`presence`](crate::presence)).
    ///
    /// ```
    /// use duplex::Rooms;
    ///
    /// let rooms = Rooms::new();
    /// let lobby = rooms.presence("lobby");
    /// assert_eq!((lobby.count, lobby.members.len()), (0, 0));
    /// ```
    pub fn presence(&self, room: &str) -> Presence {
        let rooms = self.lock();
        let Some(members) = rooms.get(room).map(|r| &r.members) else {
            return Presence::default();
        };
        let names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        let listed = names.get(room).map_or_else(Vec::new, |room_names| {
            members
                .keys()
                .filter_map(|id| room_names.get(id))
                .map(|name| name.to_string())
                .collect()
        });
        Presence::new(members.len(), listed)
    }

    /// Who is in `room` on every node: this node's members and what the
    /// backplane reports of the others. Without a backplane it is this
    /// node's; when the backplane cannot say (e.g. Redis is down) it is
    /// this node's too, marked [`partial`](RoomPresence::partial). Waits
    /// at most about the backplane's timeout.
    pub async fn presence_everywhere(&self, room: &str) -> RoomPresence {
        let others = match &self.backplane {
            Some(backplane) => backplane.presence(room).await,
            None => Some(Vec::new()),
        };
        RoomPresence::merge(self.presence(room), others)
    }
}

impl LocalDelivery for Rooms {
    /// A message from another node, delivered here (what
    /// [`LocalRooms::deliver`] does).
    fn deliver_remote(&self, room: &str, envelope: &Envelope) -> usize {
        let origin = Origin::Remote {
            instance: envelope.instance,
            seq: envelope.seq,
        };
        self.queue_for_members(room, &envelope.message, origin)
    }

    /// The stored history of `room` arrived from the backplane (oldest
    /// first; `own` is the backplane's instance id): the members get it
    /// merged with what was held back meanwhile.
    fn history_loaded(&self, room: &str, stored: Vec<Envelope>, own: u64) {
        let mut rooms = self.lock();
        let Some(entry) = rooms.get_mut(room) else {
            return;
        };
        let Some(merged) = entry.history.as_mut().and_then(|h| h.loaded(stored, own)) else {
            return;
        };
        for held in merged {
            let except = match held.origin {
                Origin::Local { except } => except,
                Origin::Remote { .. } => None,
            };
            entry.queue(&held.message, except);
        }
    }

    fn room_names(&self) -> Vec<String> {
        Rooms::room_names(self)
    }

    fn presence(&self, room: &str) -> Presence {
        Rooms::presence(self, room)
    }
}

//! Rooms: named groups of connections, and the relay behind `/chat/<room>`.
//!
//! A [`Rooms`] registry maps room names to their members' [`Session`]s.
//! Publishing puts the message in each member's bounded outbound queue; the
//! payload is reference-counted ([`bytes::Bytes`]), so a message for a room
//! of N members is shared, not copied N times. A member whose queue is full
//! is handled by its [`SlowConsumerPolicy`](crate::SlowConsumerPolicy) and
//! never slows the publisher or the other members down.
//!
//! ```no_run
//! use duplex::rooms::Relay;
//! use duplex::Server;
//!
//! # async fn run() -> duplex::Result<()> {
//! // Every message a client sends to /chat/<room> reaches the room's other members.
//! let server = Server::new().handler("/chat/{room}", Relay::for_request);
//! server.bind("127.0.0.1:8080").await?.serve().await
//! # }
//! ```

use std::collections::HashMap;
use std::sync::Mutex;

use duplex_proto::{CloseCode, Message};

use crate::handler::{Handler, Session};

/// A registry of rooms. Rooms appear on first join and vanish when their
/// last member leaves. Share one registry with `Arc`; a [`Server`](crate::Server)
/// makes one for its sessions ([`Session::rooms`]).
#[derive(Default)]
pub struct Rooms {
    rooms: Mutex<HashMap<String, HashMap<u64, Session>>>,
}

impl std::fmt::Debug for Rooms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rooms")
            .field("rooms", &self.room_count())
            .finish()
    }
}

impl Rooms {
    /// An empty registry.
    pub fn new() -> Rooms {
        Rooms::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<u64, Session>>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a session to a room (creating the room). The session leaves
    /// by itself when its connection ends.
    pub fn join(&self, room: &str, session: &Session) {
        self.lock()
            .entry(room.to_string())
            .or_default()
            .insert(session.id(), session.clone());
        session.joined(room);
    }

    /// Removes a session from a room (dropping the room if it is empty).
    pub fn leave(&self, room: &str, session: &Session) {
        self.leave_id(room, session.id());
        session.left(room);
    }

    pub(crate) fn leave_id(&self, room: &str, id: u64) {
        let mut rooms = self.lock();
        if let Some(members) = rooms.get_mut(room) {
            members.remove(&id);
            if members.is_empty() {
                rooms.remove(room);
            }
        }
    }

    /// Queues `message` for every member of `room` except `except` (the
    /// sender, typically). Returns how many members it was queued for.
    pub fn publish(&self, room: &str, message: &Message, except: Option<&Session>) -> usize {
        let skip = except.map(Session::id);
        let rooms = self.lock();
        let Some(members) = rooms.get(room) else {
            return 0;
        };
        members
            .values()
            .filter(|member| Some(member.id()) != skip)
            .filter(|member| member.send(message.clone()).is_ok())
            .count()
    }

    /// How many members a room has (0 when it does not exist).
    pub fn member_count(&self, room: &str) -> usize {
        self.lock().get(room).map_or(0, HashMap::len)
    }

    /// How many rooms exist.
    pub fn room_count(&self) -> usize {
        self.lock().len()
    }

    /// The names of all rooms.
    pub fn room_names(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }
}

/// The chat relay handler: joins the room named by the route parameter
/// `room` and republishes every message it receives, unchanged and in
/// order, to the room's other members.
#[derive(Debug)]
pub struct Relay {
    room: String,
}

impl Relay {
    /// A relay for the room in the request's `room` parameter.
    pub fn for_request(request: &crate::UpgradeRequest) -> Relay {
        Relay {
            room: request.param("room").unwrap_or_default().to_string(),
        }
    }

    /// A relay for a fixed room.
    pub fn new(room: impl Into<String>) -> Relay {
        Relay { room: room.into() }
    }
}

impl Handler for Relay {
    async fn on_open(&mut self, session: &Session) {
        session.rooms().join(&self.room, session);
    }

    async fn on_message(&mut self, session: &Session, message: Message) {
        session.rooms().publish(&self.room, &message, Some(session));
    }

    async fn on_close(&mut self, session: &Session, _code: CloseCode, _reason: &str) {
        session.rooms().leave(&self.room, session);
    }
}

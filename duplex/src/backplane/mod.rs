//! Backplanes: rooms that span processes and machines.
//!
//! A [`Rooms`](crate::Rooms) registry on its own reaches the members
//! connected to this process. Built with
//! [`Rooms::with_backplane`](crate::Rooms::with_backplane), it also hands
//! every published message to a [`Backplane`], which carries it to the
//! other processes ("nodes") whose registries have members in that room,
//! and delivers what they publish to the local members.
//!
//! The registry tells the backplane which rooms have local members
//! ([`subscribe`](Backplane::subscribe) on a room's first member,
//! [`unsubscribe`](Backplane::unsubscribe) when its last one leaves), so a
//! node receives only the traffic of its own rooms. Forwarding never waits:
//! a backplane that cannot keep up drops the cross-node copy and counts it
//! in its [`BackplaneStats`], while local members still get the message.
//!
//! With the `redis` feature, [`RedisBackplane`] carries rooms over Redis
//! pub/sub (one channel per room), or Redis Cluster's sharded pub/sub.
//!
//! # Guarantees
//!
//! These hold for the [`RedisBackplane`], and are what its tests check:
//!
//! - Every member, on any node, receives each other member's messages in
//!   the order that sender sent them; none twice; never its own.
//! - Cross-node delivery is at most once; every loss is counted (dropped at
//!   the source, lost in transit) and logged once per episode, never silent.
//! - When Redis is down or slow, local delivery goes on unchanged, no
//!   client is closed, and cross-node delivery resumes by itself within
//!   seconds of Redis coming back.
//! - A node's SIGTERM: its clients get 1001 and its subscriptions go at
//!   once; the other nodes are unaffected.
//!
//! "In order" is per room: a session that publishes into two rooms may see
//! them delivered to a member of both in either order across nodes.
//! At-most-once means a message that Redis did not carry is not sent again
//! (a retry could reorder or duplicate); the [`BackplaneStats`] say how
//! many were dropped where.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Weak;

use duplex_proto::Message;

use crate::presence::{NodePresence, Presence};

mod envelope;
// Sequence numbers are what the Redis backplane writes and checks.
#[cfg(feature = "redis")]
mod sequence;

#[cfg(feature = "redis")]
mod redis;

pub(crate) use envelope::now_us;
pub use envelope::{Envelope, EnvelopeError, ENVELOPE_VERSION};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis::{RedisBackplane, RedisOptions};

/// Carries room messages between the nodes of a cluster.
///
/// A [`Rooms`](crate::Rooms) registry built with
/// [`Rooms::with_backplane`](crate::Rooms::with_backplane) calls these
/// methods; none of them may wait (they run on a connection's task, some
/// under the registry's lock): queue the work and return.
pub trait Backplane: Send + Sync + 'static {
    /// Called once, when the registry is built: where messages that arrive
    /// from other nodes go.
    fn attach(&self, local: LocalRooms);

    /// `room` got its first local member: start receiving its messages.
    fn subscribe(&self, room: &str);

    /// `room`'s last local member left: stop receiving its messages (a
    /// backplane may linger a little, so that a member who leaves and
    /// comes back does not churn subscriptions).
    fn unsubscribe(&self, room: &str);

    /// Carries `message`, just published into `room` on this node, to the
    /// other nodes. Never waits; a copy that cannot be carried is dropped
    /// and counted.
    fn forward(&self, room: &str, message: &Message);

    /// The counters of what was carried, received and lost.
    fn stats(&self) -> &BackplaneStats;

    /// The node is going away: drop every subscription at once and stop
    /// carrying messages (the other nodes are unaffected).
    fn shutdown(&self);

    /// `room` just appeared on this node and the registry keeps `count`
    /// messages of history: return `true` to fetch the room's stored
    /// history and hand it to [`LocalRooms::history_loaded`] (always, even
    /// empty when it cannot be had, or the room's deliveries stay held
    /// back), `false` (the default) when this backplane stores no history.
    fn load_history(&self, room: &str, count: usize) -> bool {
        let _ = (room, count);
        false
    }

    /// A member of `room` joined, left or was renamed on this node: a
    /// backplane that reports presence updates this node's record (soon,
    /// not necessarily at once; read [`LocalRooms::presence`] then).
    /// Never waits. The default does nothing.
    fn presence_changed(&self, room: &str) {
        let _ = room;
    }

    /// Who is in `room` on the *other* nodes, one entry per node; `None`
    /// when that cannot be known now (the service is down, or this
    /// backplane does not report presence, which is the default), so that
    /// [`Rooms::presence_everywhere`](crate::Rooms::presence_everywhere)
    /// can say its answer is partial. The future must finish within a
    /// bounded time (a timeout of its own).
    fn presence(&self, room: &str) -> PresenceFuture {
        let _ = room;
        Box::pin(std::future::ready(None))
    }
}

/// What a registry does with what a backplane brings: implemented by
/// [`Rooms`](crate::Rooms), so that the backplane need not know the
/// registry's type (the dependency points one way: rooms use backplanes).
pub(crate) trait LocalDelivery: Send + Sync {
    /// Queues a message from another node for the local members.
    fn deliver_remote(&self, room: &str, envelope: &Envelope) -> usize;
    /// The stored history of a room arrived.
    fn history_loaded(&self, room: &str, stored: Vec<Envelope>, own: u64);
    /// The rooms with local members.
    fn room_names(&self) -> Vec<String>;
    /// Who is in a room on this node.
    fn presence(&self, room: &str) -> Presence;
}

/// What [`Backplane::presence`] returns: the other nodes' members of a
/// room, or `None` when unknown.
pub type PresenceFuture = Pin<Box<dyn Future<Output = Option<Vec<NodePresence>>> + Send>>;

/// The local side of a registry, as a [`Backplane`] sees it: delivers
/// messages that arrived from other nodes to this node's members.
#[derive(Clone)]
pub struct LocalRooms {
    rooms: Weak<dyn LocalDelivery>,
}

impl std::fmt::Debug for LocalRooms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalRooms")
            .field("alive", &(self.rooms.strong_count() > 0))
            .finish()
    }
}

impl LocalRooms {
    pub(crate) fn new(rooms: Weak<dyn LocalDelivery>) -> LocalRooms {
        LocalRooms { rooms }
    }

    /// Queues the message of `envelope`, from another node, for every
    /// local member of `room`; the number of members it was queued for,
    /// or `None` once the registry is gone.
    pub fn deliver(&self, room: &str, envelope: &Envelope) -> Option<usize> {
        self.rooms
            .upgrade()
            .map(|rooms| rooms.deliver_remote(room, envelope))
    }

    /// The stored history of `room` (oldest first), as asked for by
    /// [`Backplane::load_history`]; `own` is the instance id this
    /// backplane writes in its envelopes.
    pub fn history_loaded(&self, room: &str, stored: Vec<Envelope>, own: u64) {
        if let Some(rooms) = self.rooms.upgrade() {
            rooms.history_loaded(room, stored, own);
        }
    }

    /// Who is in `room` on this node (empty once the registry is gone).
    pub fn presence(&self, room: &str) -> Presence {
        self.rooms
            .upgrade()
            .map(|rooms| rooms.presence(room))
            .unwrap_or_default()
    }

    /// The rooms that have local members now (e.g. to subscribe again
    /// after a reconnect).
    pub fn room_names(&self) -> Vec<String> {
        self.rooms
            .upgrade()
            .map(|rooms| rooms.room_names())
            .unwrap_or_default()
    }
}

/// What a backplane carried, received and lost, counted since it started.
/// Every counter is a plain atomic: reading never blocks a sender.
#[derive(Debug, Default)]
pub struct BackplaneStats {
    up: AtomicBool,
    forwarded: AtomicU64,
    received: AtomicU64,
    dropped_full: AtomicU64,
    dropped_down: AtomicU64,
    lost: AtomicU64,
    subscriptions: AtomicU64,
    reconnects: AtomicU64,
    lag_last_us: AtomicU64,
    lag_max_us: AtomicU64,
}

/// A snapshot of [`BackplaneStats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackplaneCounters {
    /// Whether the backplane can carry messages both ways now.
    pub up: bool,
    /// Messages handed to the backplane's service (e.g. Redis) for the
    /// other nodes.
    pub forwarded: u64,
    /// Messages that arrived from other nodes.
    pub received: u64,
    /// Cross-node copies dropped at this node because the outgoing queue
    /// was full (local members still got them).
    pub dropped_full: u64,
    /// Cross-node copies dropped at this node because the backplane was
    /// down (local members still got them).
    pub dropped_down: u64,
    /// Messages of other nodes that never arrived here, from the gaps in
    /// their senders' sequence numbers (one per message, counted when the
    /// sender's next message arrives).
    pub lost: u64,
    /// Rooms this node receives now.
    pub subscriptions: u64,
    /// Connections to the service made again after one was lost.
    pub reconnects: u64,
    /// Send-to-delivery time of the last message received, in
    /// microseconds (from the sender's wall clock: across machines it
    /// includes their clock difference).
    pub lag_last_us: u64,
    /// The largest such lag seen, in microseconds.
    pub lag_max_us: u64,
}

// The counting side is used by the backplanes of this crate (`redis`).
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
impl BackplaneStats {
    /// A snapshot of every counter.
    pub fn counters(&self) -> BackplaneCounters {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        BackplaneCounters {
            up: self.up.load(Ordering::Relaxed),
            forwarded: get(&self.forwarded),
            received: get(&self.received),
            dropped_full: get(&self.dropped_full),
            dropped_down: get(&self.dropped_down),
            lost: get(&self.lost),
            subscriptions: get(&self.subscriptions),
            reconnects: get(&self.reconnects),
            lag_last_us: get(&self.lag_last_us),
            lag_max_us: get(&self.lag_max_us),
        }
    }

    /// Whether the backplane can carry messages both ways now.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    pub(crate) fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::Relaxed);
    }

    pub(crate) fn add_forwarded(&self, n: u64) {
        self.forwarded.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn add_dropped_full(&self, n: u64) {
        self.dropped_full.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn add_dropped_down(&self, n: u64) {
        self.dropped_down.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn add_lost(&self, n: u64) {
        self.lost.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn add_reconnect(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn set_subscriptions(&self, n: usize) {
        self.subscriptions.store(n as u64, Ordering::Relaxed);
    }

    /// One message arrived, `lag_us` after it was sent.
    pub(crate) fn add_received(&self, lag_us: u64) {
        self.received.fetch_add(1, Ordering::Relaxed);
        self.lag_last_us.store(lag_us, Ordering::Relaxed);
        self.lag_max_us.fetch_max(lag_us, Ordering::Relaxed);
    }
}

impl BackplaneCounters {
    /// Every counter as one JSON object (what `duplex serve` answers on
    /// `GET /backplane`), with `node` and the status first.
    pub fn to_json(&self, node: &str) -> String {
        let mut node_json = String::with_capacity(node.len() + 2);
        node_json.push('"');
        for c in node.chars() {
            match c {
                '"' => node_json.push_str("\\\""),
                '\\' => node_json.push_str("\\\\"),
                c if (c as u32) < 0x20 => node_json.push_str(&format!("\\u{:04x}", c as u32)),
                c => node_json.push(c),
            }
        }
        node_json.push('"');
        format!(
            "{{\"node\":{node_json},\"status\":\"{}\",\"forwarded\":{},\"received\":{},\
             \"dropped_full\":{},\"dropped_down\":{},\"lost\":{},\"subscriptions\":{},\
             \"reconnects\":{},\"lag_last_us\":{},\"lag_max_us\":{}}}",
            if self.up { "up" } else { "down" },
            self.forwarded,
            self.received,
            self.dropped_full,
            self.dropped_down,
            self.lost,
            self.subscriptions,
            self.reconnects,
            self.lag_last_us,
            self.lag_max_us,
        )
    }
}

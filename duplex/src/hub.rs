//! [`Hub`]: what the connections of a server share, whoever accepted them.
//!
//! A hub holds the engine settings, the room registry, the outbound queue
//! limits and their counters, keepalive, the timeouts and their counters,
//! session ids, and the list of open connections that a shutdown closes. [`Server`](crate::Server) makes one
//! (or uses the one it is given); any other acceptor (an HTTP framework
//! adapter, a test harness over an in-memory pipe) hands its upgraded
//! sockets to the same hub, so a [`Handler`] with its [`Session`] and
//! [`Rooms`] works the same whoever accepted the socket.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use duplex_proto::{CloseCode, CloseFrame, Config};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::budget::{MemoryBudget, Reservation};
use crate::drive::drive;
use crate::handler::Handler;
use crate::keepalive::KeepAlive;
use crate::queue::{QueueLimits, QueueStats, SendQueue};
use crate::request::UpgradeRequest;
use crate::rooms::Rooms;
use crate::session::Session;
use crate::signals::Signals;
use crate::timeouts::{Shared as SharedTimeouts, TimeoutStats, Timeouts};
use crate::websocket::WebSocket;

/// Connection ids, unique in the process: rooms key their members by it,
/// and one registry may serve several hubs.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// What a server's connections share, whoever accepted them: engine
/// settings, rooms, queue limits and counters, keepalive, timeouts and
/// their counters, session ids, and the open connections a shutdown
/// closes.
///
/// [`Server`](crate::Server) makes one from its settings, or runs in the
/// one given to [`Server::hub`](crate::Server::hub). Any other acceptor
/// hands its upgraded sockets to [`Hub::run_handler`] (handlers, with
/// sessions and rooms) or [`Hub::attach`] (the stream API), so everything
/// works the same whoever accepted the socket. Here two in-memory clients
/// chat through a [`Relay`](crate::Relay):
///
/// ```
/// use std::sync::Arc;
/// use duplex::{Config, Hub, Message, Relay, Role, UpgradeRequest, WebSocket};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> duplex::Result<()> {
/// let hub = Arc::new(Hub::new());
/// // Two clients of room "lobby", connected over in-memory pipes.
/// let mut clients = Vec::new();
/// for _ in 0..2 {
///     let (client_end, server_end) = tokio::io::duplex(4096);
///     let server = WebSocket::from_raw(server_end, Role::Server, Config::default());
///     let hub = hub.clone();
///     tokio::spawn(async move {
///         let request = UpgradeRequest::for_path("/chat/lobby");
///         hub.run_handler(server, request, Relay::new("lobby")).await;
///     });
///     clients.push(WebSocket::from_raw(client_end, Role::Client, Config::default()));
/// }
/// while hub.rooms().member_count("lobby") < 2 {
///     tokio::task::yield_now().await;
/// }
/// clients[0].send("hi").await?;
/// assert_eq!(clients[1].recv().await.unwrap()?, Message::text("hi"));
/// # Ok(()) }
/// ```
pub struct Hub {
    config: Arc<Config>,
    rooms: Arc<Rooms>,
    queue_limits: QueueLimits,
    keepalive: Option<KeepAlive>,
    stats: Arc<QueueStats>,
    budget: Arc<MemoryBudget>,
    timeout_stats: Arc<TimeoutStats>,
    /// The timeouts, with `timeout_stats`, as every attached connection
    /// holds them.
    shared_timeouts: Arc<SharedTimeouts>,
    open: Mutex<HashMap<u64, Open>>,
    shutting_down: AtomicBool,
}

/// An attached connection, as a shutdown reaches it.
struct Open {
    signals: Weak<Signals>,
    /// Its session's queue, for connections run by a handler: a shutdown
    /// closes those through the queue, after what is queued.
    queue: Option<Weak<SendQueue>>,
}

/// How a close reaches an open connection.
enum Reach {
    /// Through its session's queue, after what is queued.
    Queue(Arc<SendQueue>),
    /// Straight to its engine, after what was fed.
    Engine(Arc<Signals>),
}

impl Open {
    /// How to reach the connection, if it is still there.
    fn reach(&self) -> Option<Reach> {
        match self.queue.as_ref().and_then(Weak::upgrade) {
            Some(queue) => Some(Reach::Queue(queue)),
            None => self.signals.upgrade().map(Reach::Engine),
        }
    }
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("connections", &self.connections())
            .field("rooms", &self.rooms.room_count())
            .finish_non_exhaustive()
    }
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new()
    }
}

impl Hub {
    /// A hub with default settings and an empty room registry.
    pub fn new() -> Hub {
        let timeout_stats = Arc::new(TimeoutStats::default());
        Hub {
            config: Arc::new(Config::default()),
            rooms: Arc::new(Rooms::new()),
            queue_limits: QueueLimits::default(),
            keepalive: None,
            stats: Arc::new(QueueStats::default()),
            budget: Arc::new(MemoryBudget::default()),
            shared_timeouts: SharedTimeouts::new(Timeouts::default(), Some(timeout_stats.clone())),
            timeout_stats,
            open: Mutex::new(HashMap::new()),
            shutting_down: AtomicBool::new(false),
        }
    }

    /// The engine's settings for the connections an acceptor upgrades
    /// (limits, compression).
    pub fn with_config(mut self, config: Config) -> Hub {
        self.config = Arc::new(config);
        self
    }

    /// Uses this room registry (e.g. shared with other hubs of the
    /// process) instead of a new one.
    pub fn with_rooms(mut self, rooms: Arc<Rooms>) -> Hub {
        self.rooms = rooms;
        self
    }

    /// Limits of each session's outbound queue.
    pub fn with_queue_limits(mut self, limits: QueueLimits) -> Hub {
        self.queue_limits = limits;
        self
    }

    /// The memory budget that all attached connections and the queues of
    /// their sessions share (default [`DEFAULT_MEMORY_BUDGET`](crate::DEFAULT_MEMORY_BUDGET), 512 MiB); pass the
    /// same budget to several hubs to bound them together.
    pub fn with_memory_budget(mut self, budget: Arc<MemoryBudget>) -> Hub {
        self.budget = budget;
        self
    }

    /// The memory budget, with its counters of what it refused.
    pub fn memory_budget(&self) -> &Arc<MemoryBudget> {
        &self.budget
    }

    /// Keepalive for every attached connection (see
    /// [`WebSocket::set_keepalive`]); `None`, the default, leaves each
    /// connection's own setting alone.
    pub fn with_keepalive(mut self, keepalive: Option<KeepAlive>) -> Hub {
        self.keepalive = keepalive;
        self
    }

    /// The [`Timeouts`] of every attached connection, replacing the
    /// connection's own (default [`Timeouts::default`]: message 30 s,
    /// write 30 s, idle off).
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Hub {
        self.shared_timeouts = SharedTimeouts::new(timeouts, Some(self.timeout_stats.clone()));
        self
    }

    /// The engine's settings.
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// The room registry.
    pub fn rooms(&self) -> &Arc<Rooms> {
        &self.rooms
    }

    /// Limits of each session's outbound queue.
    pub fn queue_limits(&self) -> QueueLimits {
        self.queue_limits
    }

    /// The keepalive attached connections get.
    pub fn keepalive(&self) -> Option<KeepAlive> {
        self.keepalive
    }

    /// The timeouts attached connections get.
    pub fn timeouts(&self) -> Timeouts {
        self.shared_timeouts.timeouts()
    }

    /// Counters of slow consumers closed, and of messages dropped or left
    /// unsent.
    pub fn queue_stats(&self) -> &QueueStats {
        &self.stats
    }

    /// Counters of the connections each timeout cut off (keepalive's
    /// included).
    pub fn timeout_stats(&self) -> &TimeoutStats {
        &self.timeout_stats
    }

    /// How many connections are attached and not finished.
    pub fn connections(&self) -> usize {
        self.open().len()
    }

    fn open(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Open>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Attaches an upgraded connection: gives it the hub's keepalive and
    /// timeouts (counted in [`Hub::timeout_stats`]), an id, and a place in
    /// the list a shutdown closes. The connection is
    /// detached when the returned [`Attached`] is dropped; after
    /// [`Hub::shutdown`], a connection is told to close as it attaches.
    pub fn attach<S: AsyncRead + AsyncWrite + Unpin>(
        self: &Arc<Self>,
        ws: &mut WebSocket<S>,
    ) -> Attached {
        if let Some(keepalive) = self.keepalive {
            ws.set_keepalive(Some(keepalive));
        }
        ws.set_memory_budget(Some(self.budget.clone()));
        ws.share_timeouts(self.shared_timeouts.clone());
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let signals = ws.signals();
        let open = Open {
            signals: Arc::downgrade(&signals),
            queue: None,
        };
        self.open().insert(id, open);
        if self.shutting_down.load(Ordering::SeqCst) {
            signals.start_close(going_away());
        }
        Attached {
            hub: self.clone(),
            id,
        }
    }

    /// Runs `handler` over an upgraded connection until it is over: the
    /// connection is attached, gets a [`Session`] in this hub's rooms, and
    /// its callbacks run on the calling task.
    pub async fn run_handler<S, H>(
        self: &Arc<Self>,
        mut ws: WebSocket<S>,
        request: UpgradeRequest,
        handler: H,
    ) where
        S: AsyncRead + AsyncWrite + Unpin,
        H: Handler,
    {
        let attached = self.attach(&mut ws);
        let session = self.session(attached.id(), request, ws.protocol().map(str::to_string));
        drive(ws, handler, session).await;
        drop(attached);
    }

    /// A session for the connection attached as `id`.
    pub(crate) fn session(
        &self,
        id: u64,
        request: UpgradeRequest,
        protocol: Option<String>,
    ) -> Session {
        let queue = Arc::new(
            SendQueue::new(self.queue_limits, self.stats.clone())
                .with_budget(Reservation::new(self.budget.clone())),
        );
        if let Some(open) = self.open().get_mut(&id) {
            open.queue = Some(Arc::downgrade(&queue));
        }
        if self.is_shutting_down() {
            queue.close(going_away());
        }
        Session::new(id, self.rooms.clone(), request, queue, protocol)
    }

    /// Closes every attached connection with 1001 (going away), and every
    /// connection attached from now on: a hub that was shut down stays
    /// shut down. Each connection's task finishes the close handshake.
    ///
    /// A connection run by a [`Handler`] gets what its session has queued
    /// first, then the 1001 (sending fails from now on); one on the stream
    /// API gets the 1001 after what it has fed and not flushed yet.
    pub fn shutdown(&self) {
        self.shutdown_within(None);
    }

    /// [`Hub::shutdown`], giving handler connections `within` (instead of
    /// the close timeout) to take what is queued and answer.
    pub(crate) fn shutdown_within(&self, within: Option<Duration>) {
        self.shutting_down.store(true, Ordering::SeqCst);
        // The other nodes stop sending here at once; the local members are
        // closed with 1001 below.
        if let Some(backplane) = self.rooms.backplane() {
            backplane.shutdown();
        }
        let open: Vec<Reach> = self.open().values().filter_map(Open::reach).collect();
        for reach in open {
            match reach {
                Reach::Queue(queue) => queue.close_within(going_away(), within),
                Reach::Engine(signals) => signals.start_close(going_away()),
            }
        }
    }

    /// Gives up every connection run by a handler that is still open
    /// (after a shutdown's grace): each stops at once and counts what it
    /// could not send in [`QueueStats::unsent`]. Returns their queues, to
    /// wait for that count.
    pub(crate) fn abandon(&self) -> Vec<Arc<SendQueue>> {
        let queues: Vec<Arc<SendQueue>> = self
            .open()
            .values()
            .filter_map(|open| open.queue.as_ref().and_then(Weak::upgrade))
            .collect();
        for queue in &queues {
            queue.abandon();
        }
        queues
    }

    /// Whether [`Hub::shutdown`] was called.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }
}

fn going_away() -> CloseFrame {
    CloseFrame::new(CloseCode::Away, "server shutting down")
}

/// A connection's place in its [`Hub`]; dropping it detaches the
/// connection.
#[derive(Debug)]
pub struct Attached {
    hub: Arc<Hub>,
    id: u64,
}

impl Attached {
    /// The connection's id, unique in the process (its session's id).
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        self.hub.open().remove(&self.id);
    }
}

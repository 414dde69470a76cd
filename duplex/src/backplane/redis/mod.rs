//! [`RedisBackplane`]: rooms across nodes over Redis pub/sub.
//!
//! Each room is one Redis channel, `PREFIX:{ROOM}` (the braces make the
//! room a cluster hash tag, so a room's channel, history and presence keys
//! live on one shard). A node subscribes the channel while the room has
//! local members, and publishes every message of its members into it as an
//! [`Envelope`](super::Envelope).
//!
//! Two connections per node, two tasks:
//!
//! - **the publisher** takes messages from a bounded queue and sends them
//!   pipelined, in order, on its own connection; a full queue or a lost
//!   connection drops the cross-node copy and counts it, never retries;
//! - **the subscriber** holds the subscriptions on a RESP3 connection,
//!   subscribes every local room again after a reconnect (backoff with
//!   jitter), and probes the connection with `PING` so that a half-dead
//!   one is replaced within [`RedisOptions::probe`] + its timeout.
//!
//! Messages that arrive are delivered to the local members straight from
//! the connection's reader: no queue of their own, so nothing piles up
//! between Redis and the members' bounded queues.
//!
//! A third task, on a third connection, keeps this node's **presence**
//! (who is in each room) in Redis with a heartbeat TTL, and reads the
//! other nodes' (see `presence.rs`): a crashed node's members disappear
//! within [`RedisOptions::presence_ttl`].

mod link;
mod presence;
mod presence_record;
mod publisher;
mod subscriber;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use duplex_proto::Message;
use tokio::sync::mpsc;

use super::envelope::now_us;
use super::sequence::Received;
use super::{Backplane, BackplaneStats, LocalRooms, PresenceFuture};
use crate::warn_limit::RateLimited;
use link::Endpoint;
use publisher::Outgoing;
use subscriber::Command;

/// Settings of a [`RedisBackplane`].
#[derive(Clone, Debug)]
pub struct RedisOptions {
    urls: Vec<String>,
    cluster: bool,
    prefix: String,
    node_id: Option<String>,
    queue: usize,
    linger: Duration,
    probe: Duration,
    timeout: Duration,
    max_backoff: Duration,
    history: usize,
    ca: Option<Vec<u8>>,
    presence_ttl: Duration,
}

impl RedisOptions {
    /// One Redis server: `redis://[:PASSWORD@]HOST[:PORT][/DB]`, or
    /// `rediss://...` for TLS (with the `tls` feature).
    pub fn new(url: impl Into<String>) -> RedisOptions {
        RedisOptions {
            urls: vec![url.into()],
            cluster: false,
            prefix: "duplex".into(),
            node_id: None,
            queue: 16 * 1024,
            linger: Duration::from_secs(2),
            probe: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            max_backoff: Duration::from_secs(2),
            history: 0,
            ca: None,
            presence_ttl: Duration::from_secs(15),
        }
    }

    /// A Redis Cluster (7 or newer), from one or more of its nodes' URLs:
    /// rooms use sharded pub/sub, so each room's traffic stays on the
    /// shard that owns its channel.
    pub fn cluster(urls: impl IntoIterator<Item = impl Into<String>>) -> RedisOptions {
        RedisOptions {
            urls: urls.into_iter().map(Into::into).collect(),
            cluster: true,
            ..RedisOptions::new("")
        }
    }

    /// The prefix of every channel and key (default `duplex`); nodes with
    /// the same prefix share rooms. Braces are not allowed in it (they
    /// would change the cluster hash tag).
    pub fn prefix(mut self, prefix: impl Into<String>) -> RedisOptions {
        self.prefix = prefix.into();
        self
    }

    /// A name for this node in logs, stats and presence (default: a
    /// random one). Only a label: nodes recognise their own messages by
    /// a random instance id, so two nodes with one name still work.
    pub fn node_id(mut self, node_id: impl Into<String>) -> RedisOptions {
        self.node_id = Some(node_id.into());
        self
    }

    /// Messages waiting for the publisher (default 16,384); beyond that
    /// the cross-node copy is dropped and counted in
    /// [`dropped_full`](super::BackplaneCounters::dropped_full).
    pub fn queue(mut self, messages: usize) -> RedisOptions {
        self.queue = messages.max(1);
        self
    }

    /// How long a room stays subscribed after its last local member left
    /// (default 2 s): a member who reloads the page does not churn
    /// subscriptions.
    pub fn linger(mut self, linger: Duration) -> RedisOptions {
        self.linger = linger;
        self
    }

    /// How often the subscriber's connection is probed with `PING`
    /// (default 1 s).
    pub fn probe(mut self, every: Duration) -> RedisOptions {
        self.probe = every.max(Duration::from_millis(10));
        self
    }

    /// How long a connection attempt, a probe or a publish may take before
    /// the connection is given up (default 2 s).
    pub fn timeout(mut self, timeout: Duration) -> RedisOptions {
        self.timeout = timeout.max(Duration::from_millis(10));
        self
    }

    /// The longest wait between two reconnection attempts (default 2 s;
    /// the waits double from 100 ms, with jitter).
    pub fn max_backoff(mut self, max: Duration) -> RedisOptions {
        self.max_backoff = max.max(Duration::from_millis(100));
        self
    }

    /// Check the certificates of `rediss://` servers against this CA
    /// (PEM) instead of the system's roots.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> RedisOptions {
        self.ca = Some(pem.into());
        self
    }

    /// How long this node's presence record of a room stays valid without
    /// being renewed (default 15 s, at least 1 s): the bound on how long
    /// a crashed node's members are still listed. Records are renewed
    /// every third of it. Readers compare it with their own clock, so the
    /// nodes' clocks should agree to well within it.
    pub fn presence_ttl(mut self, ttl: Duration) -> RedisOptions {
        self.presence_ttl = ttl.max(Duration::from_secs(1));
        self
    }

    /// Keep each room's last `messages` in a Redis stream,
    /// `PREFIX:{ROOM}:history` (default 0: no history), from which a room
    /// that appears on a node loads its history (see
    /// [`Rooms::with_history`](crate::Rooms::with_history)). The stream is
    /// trimmed approximately (`MAXLEN ~`), so it may hold a few more.
    pub fn history(mut self, messages: usize) -> RedisOptions {
        self.history = messages;
        self
    }
}

/// The names of a room's channel and keys.
#[derive(Debug)]
struct Names {
    prefix: String,
}

impl Names {
    fn channel(&self, room: &str) -> String {
        format!("{}:{{{room}}}", self.prefix)
    }

    fn history(&self, room: &str) -> String {
        format!("{}:{{{room}}}:history", self.prefix)
    }

    /// The hash of every node's presence record of the room.
    fn presence(&self, room: &str) -> String {
        format!("{}:{{{room}}}:presence", self.prefix)
    }

    /// The room of a channel name, if it is one of ours.
    fn room_of<'a>(&self, channel: &'a str) -> Option<&'a str> {
        channel
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix(":{")?
            .strip_suffix('}')
    }
}

/// What the backplane's handle and its two tasks share.
struct Shared {
    endpoint: Endpoint,
    names: Names,
    node_id: String,
    /// Random per process: a node's own messages are recognised by it.
    instance: u64,
    options: RedisOptions,
    stats: BackplaneStats,
    local: OnceLock<LocalRooms>,
    received: Mutex<Received>,
    publisher_up: AtomicBool,
    subscriber_up: AtomicBool,
    lost_warning: RateLimited,
    /// The presence task's connection while it is up, for the readers.
    presence_link: Mutex<Option<link::Link>>,
}

impl Shared {
    /// The status is up when both directions are.
    fn set_health(&self, publisher: Option<bool>, subscriber: Option<bool>) {
        if let Some(up) = publisher {
            self.publisher_up.store(up, Ordering::Relaxed);
        }
        if let Some(up) = subscriber {
            self.subscriber_up.store(up, Ordering::Relaxed);
        }
        self.stats.set_up(
            self.publisher_up.load(Ordering::Relaxed) && self.subscriber_up.load(Ordering::Relaxed),
        );
    }
}

/// Rooms across nodes over Redis; see the [module docs](super) for the
/// guarantees and [`Rooms::with_backplane`](crate::Rooms::with_backplane)
/// for use.
pub struct RedisBackplane {
    shared: Arc<Shared>,
    outgoing: mpsc::Sender<Outgoing>,
    commands: mpsc::UnboundedSender<Command>,
    presence: Arc<presence::Signals>,
}

impl Drop for RedisBackplane {
    fn drop(&mut self) {
        self.presence.stop();
    }
}

impl std::fmt::Debug for RedisBackplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackplane")
            .field("node_id", &self.shared.node_id)
            .field("stats", &self.shared.stats.counters())
            .finish_non_exhaustive()
    }
}

impl RedisBackplane {
    /// Checks the options and starts the publisher and subscriber tasks
    /// on the current tokio runtime. Redis need not be up: the backplane
    /// connects when it can, and local delivery works meanwhile.
    pub fn start(options: RedisOptions) -> redis::RedisResult<Arc<RedisBackplane>> {
        if options.prefix.contains(['{', '}']) {
            return Err((
                redis::ErrorKind::InvalidClientConfig,
                "the Redis prefix may not contain braces",
            )
                .into());
        }
        let endpoint = Endpoint::parse(&options.urls, options.cluster, options.ca.as_deref())?;
        let instance: u64 = rand::random();
        let node_id = options
            .node_id
            .clone()
            .unwrap_or_else(|| format!("{instance:016x}"));
        let shared = Arc::new(Shared {
            endpoint,
            names: Names {
                prefix: options.prefix.clone(),
            },
            node_id,
            instance,
            stats: BackplaneStats::default(),
            local: OnceLock::new(),
            received: Mutex::new(Received::default()),
            publisher_up: AtomicBool::new(false),
            subscriber_up: AtomicBool::new(false),
            lost_warning: RateLimited::new(),
            presence_link: Mutex::new(None),
            options,
        });
        let (outgoing, queue) = mpsc::channel(shared.options.queue);
        let (commands, command_queue) = mpsc::unbounded_channel();
        tokio::spawn(publisher::run(shared.clone(), queue));
        tokio::spawn(subscriber::run(shared.clone(), command_queue));
        let presence = Arc::new(presence::Signals::default());
        tokio::spawn(presence::run(shared.clone(), presence.clone()));
        Ok(Arc::new(RedisBackplane {
            shared,
            outgoing,
            commands,
            presence,
        }))
    }

    /// This node's name (from [`RedisOptions::node_id`]).
    pub fn node_id(&self) -> &str {
        &self.shared.node_id
    }

    /// The channel a room's messages travel on (for services that publish
    /// straight into Redis).
    pub fn channel(&self, room: &str) -> String {
        self.shared.names.channel(room)
    }
}

impl Backplane for RedisBackplane {
    fn attach(&self, local: LocalRooms) {
        let _ = self.shared.local.set(local);
    }

    fn subscribe(&self, room: &str) {
        let _ = self.commands.send(Command::Subscribe(room.to_string()));
    }

    fn unsubscribe(&self, room: &str) {
        let _ = self.commands.send(Command::Unsubscribe(room.to_string()));
    }

    fn forward(&self, room: &str, message: &Message) {
        let stats = &self.shared.stats;
        if !self.shared.publisher_up.load(Ordering::Relaxed) {
            stats.add_dropped_down(1);
            return;
        }
        let outgoing = Outgoing {
            room: room.into(),
            message: message.clone(),
            sent_us: now_us(),
        };
        match self.outgoing.try_send(outgoing) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => stats.add_dropped_full(1),
            Err(mpsc::error::TrySendError::Closed(_)) => stats.add_dropped_down(1),
        }
    }

    fn stats(&self) -> &BackplaneStats {
        &self.shared.stats
    }

    fn shutdown(&self) {
        let _ = self.commands.send(Command::Shutdown);
        self.presence.stop();
    }

    fn presence_changed(&self, room: &str) {
        self.presence.changed(room);
    }

    fn presence(&self, room: &str) -> PresenceFuture {
        Box::pin(presence::read(self.shared.clone(), room.to_string()))
    }

    fn load_history(&self, room: &str, count: usize) -> bool {
        if self.shared.options.history == 0 {
            return false;
        }
        let count = count.min(self.shared.options.history);
        self.commands
            .send(Command::History(room.to_string(), count))
            .is_ok()
    }
}

/// Waits between reconnection attempts: doubling from 100 ms up to the
/// maximum, each wait drawn from its upper half so that nodes cut off at
/// the same moment do not all come back at the same one.
struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);

    fn new(max: Duration) -> Backoff {
        Backoff {
            next: Backoff::FIRST,
            max,
        }
    }

    fn reset(&mut self) {
        self.next = Backoff::FIRST;
    }

    fn wait(&mut self) -> Duration {
        let base = self.next.min(self.max);
        self.next = (self.next * 2).min(self.max);
        base / 2 + base.mul_f64(rand::random::<f64>() / 2.0)
    }
}

/// Logs a direction's outage once when it starts and once when it ends.
struct Episode {
    what: &'static str,
    down_since: Option<std::time::Instant>,
}

impl Episode {
    fn new(what: &'static str) -> Episode {
        Episode {
            what,
            down_since: None,
        }
    }

    fn down(&mut self, node: &str, error: &dyn std::fmt::Display) {
        if self.down_since.is_none() {
            self.down_since = Some(std::time::Instant::now());
            tracing::warn!(
                node,
                "redis backplane: {} down ({error}); local delivery goes on, \
                 cross-node messages are dropped and counted until it is back",
                self.what
            );
        }
    }

    fn up(&mut self, node: &str, stats: &BackplaneStats) {
        if let Some(since) = self.down_since.take() {
            let c = stats.counters();
            tracing::warn!(
                node,
                "redis backplane: {} back after {:.1} s (dropped so far: {} queue full, \
                 {} while down; lost in transit so far: {})",
                self.what,
                since.elapsed().as_secs_f64(),
                c.dropped_full,
                c.dropped_down,
                c.lost
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_round_trip() {
        let names = Names {
            prefix: "duplex".into(),
        };
        assert_eq!(names.channel("lobby"), "duplex:{lobby}");
        assert_eq!(names.room_of("duplex:{lobby}"), Some("lobby"));
        assert_eq!(names.room_of("duplex:{a}b}"), Some("a}b"));
        assert_eq!(names.room_of("other:{lobby}"), None);
        assert_eq!(names.history("x"), "duplex:{x}:history");
        assert_eq!(names.presence("x"), "duplex:{x}:presence");
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_maximum() {
        let mut backoff = Backoff::new(Duration::from_secs(2));
        let first = backoff.wait();
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        for _ in 0..10 {
            let wait = backoff.wait();
            assert!(wait <= Duration::from_secs(2));
        }
        assert!(backoff.wait() >= Duration::from_secs(1));
        backoff.reset();
        assert!(backoff.wait() <= Duration::from_millis(100));
    }
}

//! Timeouts of an open connection: a message that is slow to arrive, a
//! connection with nothing to say, a peer that stopped reading.
//!
//! [`Timeouts`] are the settings and [`TimeoutStats`] counts what they
//! cut off. The clocks that keep them ([`Clocks`]) only keep time and say
//! what expired; the I/O loop (`io.rs`) asks them when it is about to
//! wait for the socket and carries out the consequence, and the engine
//! says whether a message is in progress
//! ([`Connection::is_receiving`](duplex_proto::Connection::is_receiving)).
//! Nothing here runs on the steady-state path: the clocks are armed only
//! when a read or a write has to wait.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::task::Context;
use std::time::Duration;

use duplex_proto::Connection;
use tokio::time::{Instant, Sleep};

/// The default [`Timeouts::message`]: 30 s.
///
/// Long enough for honest peers: a 1 MiB message needs only 35 KB/s to
/// arrive in time (a slow mobile uplink), the 16 MiB messages of
/// Autobahn's largest cases 560 KB/s. Short enough that a connection
/// held by a "slowloris" sender (a 1 MiB frame trickled at 1 byte per
/// second) is cut off after 30 s rather than held for 12 days.
pub const DEFAULT_MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// The default [`Timeouts::write`]: 30 s. A peer whose receive window
/// stays shut that long has stopped reading (or is gone without a FIN);
/// until then its socket and everything queued for it are held.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Timeouts of an open connection; `None` turns one off.
///
/// The message and idle timeouts are kept while the connection is
/// receiving (while [`WebSocket::recv`](crate::WebSocket::recv) is
/// awaited, as a [`Server`](crate::Server)'s routes and handlers do); the
/// write timeout on every write (`send`, `flush`, the replies the engine
/// queues, a handler's and a room's deliveries).
///
/// ```
/// use std::time::Duration;
/// use duplex::Timeouts;
///
/// let timeouts = Timeouts {
///     idle: Some(Duration::from_secs(300)),
///     ..Timeouts::default()
/// };
/// assert_eq!(timeouts.message, Some(Duration::from_secs(30)));
/// assert_eq!(Timeouts::OFF.write, None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Once the first byte of a frame (or the first frame of a
    /// fragmented message) has arrived, the whole message must arrive
    /// within this; otherwise the connection is failed with close 1008
    /// (policy violation: RFC 6455 has no rule on timing, so this is our
    /// policy, not a protocol error 1002), `recv` returns
    /// [`Error::Timeout`](crate::Error::Timeout), and the socket is
    /// closed without waiting for the rest (at most the close timeout to
    /// drain it). Default [`DEFAULT_MESSAGE_TIMEOUT`] (30 s). Counted from
    /// when the engine first sees the message, also while the application
    /// is not receiving.
    pub message: Option<Duration>,
    /// Close the connection (1001, going away, reason "idle timeout") after
    /// this long without a data message in either direction; pings and
    /// pongs do not count. The peer has the close timeout to answer.
    /// Default `None` (off): many applications keep quiet connections on
    /// purpose. When on, each data message costs one clock read.
    pub idle: Option<Duration>,
    /// Give the connection up when writing makes no progress for this
    /// long (the peer stopped reading): the write fails with
    /// [`Error::Timeout`](crate::Error::Timeout) and the socket is
    /// dropped without a close frame, which could not be written either.
    /// A peer that reads, however slowly, keeps it from expiring. Default
    /// [`DEFAULT_WRITE_TIMEOUT`] (30 s).
    pub write: Option<Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            message: Some(DEFAULT_MESSAGE_TIMEOUT),
            idle: None,
            write: Some(DEFAULT_WRITE_TIMEOUT),
        }
    }
}

impl Timeouts {
    /// Every timeout off (the behaviour before they existed).
    pub const OFF: Timeouts = Timeouts {
        message: None,
        idle: None,
        write: None,
    };
}

/// How many connections each timeout cut off: counters shared by the
/// connections of a [`Hub`](crate::Hub) (a server's), for logs and
/// metrics.
///
/// ```
/// use std::sync::atomic::Ordering;
/// let stats = duplex::TimeoutStats::default();
/// assert_eq!(stats.write.load(Ordering::Relaxed), 0);
/// ```
#[derive(Debug, Default)]
pub struct TimeoutStats {
    /// Failed with 1008: a message did not arrive in time.
    pub message: AtomicU64,
    /// Given up: a keepalive ping got no matching pong in time.
    pub keepalive: AtomicU64,
    /// Closed with 1001: no data message for the idle timeout.
    pub idle: AtomicU64,
    /// Dropped: writing made no progress for the write timeout.
    pub write: AtomicU64,
}

/// What a read-side clock found expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expired {
    /// The message in progress did not arrive in time.
    Message,
    /// No data message for the idle timeout.
    Idle,
}

/// The settings and counters a hub's connections share: one pointer per
/// connection rather than a copy (idle connections should stay small).
#[derive(Debug)]
pub(crate) struct Shared {
    timeouts: Timeouts,
    /// `None` for a connection in no hub: nobody reads its counters.
    stats: Option<Arc<TimeoutStats>>,
}

impl Shared {
    pub(crate) fn new(timeouts: Timeouts, stats: Option<Arc<TimeoutStats>>) -> Arc<Shared> {
        Arc::new(Shared { timeouts, stats })
    }

    pub(crate) fn timeouts(&self) -> Timeouts {
        self.timeouts
    }
}

/// The default settings of a connection in no hub.
static STANDALONE: LazyLock<Arc<Shared>> = LazyLock::new(|| Shared::new(Timeouts::default(), None));

/// The clocks of one connection's timeouts: 16 bytes while none is armed.
pub(crate) struct Clocks {
    shared: Arc<Shared>,
    /// The armed clocks; allocated only while one is (always with the
    /// idle timeout on).
    running: Option<Box<Running>>,
}

#[derive(Default)]
struct Running {
    /// While a message is partly received: its deadline, and which
    /// message it is (the engine's count of messages received before it).
    message: Option<(Pin<Box<Sleep>>, u64)>,
    /// With the idle timeout on: its timer, and when the last data
    /// message went by.
    idle: Option<(Pin<Box<Sleep>>, Instant)>,
    /// While a write waits: its deadline, and whether a write made
    /// progress since the deadline was set.
    write: Option<(Pin<Box<Sleep>>, bool)>,
}

impl Clocks {
    /// The default timeouts, counted nowhere.
    pub(crate) fn standalone() -> Clocks {
        let mut clocks = Clocks {
            shared: STANDALONE.clone(),
            running: None,
        };
        clocks.restart();
        clocks
    }

    pub(crate) fn settings(&self) -> Timeouts {
        self.shared.timeouts
    }

    /// New settings, counted where the old ones were.
    pub(crate) fn set(&mut self, timeouts: Timeouts) {
        let stats = self.shared.stats.clone();
        self.share(Shared::new(timeouts, stats));
    }

    /// Settings and counters shared with other connections (a hub's).
    pub(crate) fn share(&mut self, shared: Arc<Shared>) {
        self.shared = shared;
        self.restart();
    }

    /// Disarms every clock; the idle clock starts again from now.
    fn restart(&mut self) {
        self.running = self.shared.timeouts.idle.map(|limit| {
            Box::new(Running {
                idle: Some((Box::pin(tokio::time::sleep(limit)), Instant::now())),
                ..Running::default()
            })
        });
    }

    /// Adds one to a counter of the stats, if there are any.
    pub(crate) fn count(&self, counter: fn(&TimeoutStats) -> &AtomicU64) {
        if let Some(stats) = &self.shared.stats {
            counter(stats).fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The armed clocks, allocated if need be.
    fn running(&mut self) -> &mut Running {
        self.running.get_or_insert_with(Box::default)
    }

    /// Frees the armed clocks once none is.
    fn settle(&mut self) {
        if let Some(running) = &self.running {
            if running.message.is_none() && running.idle.is_none() && running.write.is_none() {
                self.running = None;
            }
        }
    }

    /// A data message was received or queued: the connection is not idle.
    #[inline]
    pub(crate) fn saw_data(&mut self) {
        if let Some(Running {
            idle: Some((_, last)),
            ..
        }) = self.running.as_deref_mut()
        {
            *last = Instant::now();
        }
    }

    /// The reader is about to wait for the socket: arms the message and
    /// idle clocks for `cx` and says which expired, if one did.
    pub(crate) fn poll_read(&mut self, conn: &Connection, cx: &mut Context<'_>) -> Option<Expired> {
        let Timeouts { message, idle, .. } = self.shared.timeouts;
        if let Some(limit) = message {
            if self.poll_message(limit, conn, cx) {
                return Some(Expired::Message);
            }
        }
        if let (
            Some(limit),
            Some(Running {
                idle: Some((timer, last)),
                ..
            }),
        ) = (idle, self.running.as_deref_mut())
        {
            // The timer runs from the last data message as it was when it
            // was set; a later one moves it on instead of resetting it on
            // every message.
            while timer.as_mut().poll(cx).is_ready() {
                let due = *last + limit;
                if Instant::now() >= due {
                    return Some(Expired::Idle);
                }
                timer.as_mut().reset(due);
            }
        }
        None
    }

    /// Whether the message in progress is past its deadline; arms the
    /// deadline when a new message has begun.
    fn poll_message(&mut self, limit: Duration, conn: &Connection, cx: &mut Context<'_>) -> bool {
        if !conn.is_receiving() {
            if let Some(running) = &mut self.running {
                running.message = None;
            }
            self.settle();
            return false;
        }
        let which = conn.messages_received();
        match &mut self.running().message {
            Some((timer, armed)) if *armed == which => timer.as_mut().poll(cx).is_ready(),
            Some((timer, armed)) => {
                *armed = which;
                timer.as_mut().reset(Instant::now() + limit);
                timer.as_mut().poll(cx).is_ready()
            }
            slot @ None => {
                let mut timer = Box::pin(tokio::time::sleep(limit));
                let expired = timer.as_mut().poll(cx).is_ready();
                *slot = Some((timer, which));
                expired
            }
        }
    }

    /// A write could not go on (the socket is full): arms the write clock
    /// for `cx` and says whether writing has made no progress for the
    /// write timeout.
    pub(crate) fn poll_write_blocked(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(limit) = self.shared.timeouts.write else {
            return false;
        };
        match &mut self.running().write {
            Some((timer, progressed)) => {
                if std::mem::take(progressed) {
                    timer.as_mut().reset(Instant::now() + limit);
                }
                timer.as_mut().poll(cx).is_ready()
            }
            slot @ None => {
                let mut timer = Box::pin(tokio::time::sleep(limit));
                let expired = timer.as_mut().poll(cx).is_ready();
                *slot = Some((timer, false));
                expired
            }
        }
    }

    /// Some bytes were written.
    #[inline]
    pub(crate) fn wrote(&mut self) {
        if let Some(Running {
            write: Some((_, progressed)),
            ..
        }) = self.running.as_deref_mut()
        {
            *progressed = true;
        }
    }

    /// Everything queued was written: no write is waiting.
    #[inline]
    pub(crate) fn written_out(&mut self) {
        if let Some(running) = &mut self.running {
            if running.write.is_some() {
                running.write = None;
                self.settle();
            }
        }
    }
}

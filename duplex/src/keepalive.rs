//! Keepalive: a ping after a silence, and giving up on a peer that does
//! not answer.
//!
//! [`KeepAliveTimer`] only keeps time and says what is due
//! ([`KeepAliveAction`]); the connection's read loop sends the ping or
//! ends the connection, so the timer never touches the engine or the
//! socket.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// Keepalive settings: ping after `interval` of silence, give up when
/// nothing at all arrived for `interval + timeout`.
///
/// ```
/// use std::time::Duration;
/// let keepalive = duplex::KeepAlive {
///     interval: Duration::from_secs(20),
///     timeout: Duration::from_secs(10),
/// };
/// assert!(keepalive.interval > keepalive.timeout);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepAlive {
    /// Silence after which a ping is sent.
    pub interval: Duration,
    /// How long to wait for any answer after that ping.
    pub timeout: Duration,
}

/// The ping payload keepalive sends (so it can be told from the
/// application's pings).
pub(crate) const KEEPALIVE_PAYLOAD: &[u8] = b"duplex-keepalive";

/// What keepalive asks the connection to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeepAliveAction {
    /// Send a keepalive ping.
    Ping,
    /// The peer did not answer in time: give the connection up.
    GiveUp,
}

/// The clock of one connection's keepalive.
pub(crate) struct KeepAliveTimer {
    settings: KeepAlive,
    last_seen: Instant,
    /// When the outstanding keepalive ping's answer is due.
    ping_deadline: Option<Instant>,
    timer: Pin<Box<Sleep>>,
}

impl KeepAliveTimer {
    pub(crate) fn new(settings: KeepAlive) -> KeepAliveTimer {
        KeepAliveTimer {
            settings,
            last_seen: Instant::now(),
            ping_deadline: None,
            timer: Box::pin(tokio::time::sleep(settings.interval)),
        }
    }

    /// Something arrived from the peer: it is alive.
    pub(crate) fn saw_data(&mut self) {
        self.last_seen = Instant::now();
        self.ping_deadline = None;
    }

    /// What is due now, if anything; otherwise the timer is armed for the
    /// next due time and `cx` will be woken then.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<KeepAliveAction> {
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let now = Instant::now();
            let KeepAlive { interval, timeout } = self.settings;
            match self.ping_deadline {
                Some(deadline) if now >= deadline => return Poll::Ready(KeepAliveAction::GiveUp),
                Some(deadline) => self.timer.as_mut().reset(deadline),
                None if now >= self.last_seen + interval => {
                    self.ping_deadline = Some(now + timeout);
                    self.timer.as_mut().reset(now + timeout);
                    return Poll::Ready(KeepAliveAction::Ping);
                }
                None => {
                    let due = self.last_seen + interval;
                    self.timer.as_mut().reset(due);
                }
            }
        }
    }
}

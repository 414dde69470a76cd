//! Keepalive: a ping every so often, and giving up on a peer that does
//! not answer it with a pong.
//!
//! [`KeepAliveTimer`] only keeps time and says what is due
//! ([`KeepAliveAction`]); the connection's read loop sends the ping or
//! ends the connection, and tells the timer about the pongs it receives,
//! so the timer never touches the engine or the socket.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::{Instant, Sleep};

/// Keepalive settings: a ping `interval` after the connection opened and
/// after each answered ping; the connection is given up when a ping's
/// pong has not arrived `timeout` after it.
///
/// Only a pong with the ping's payload answers it: data, and pongs for
/// anything else, do not, so a peer that keeps sending but no longer
/// reads (or whose engine is stuck) is found out. A peer sending a frame
/// cannot answer before the frame's end, so keep `timeout` above the time
/// the largest frame takes to arrive (or let such peers fragment).
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
    /// How long after the connection opened, and after each answer, the
    /// next ping goes out.
    pub interval: Duration,
    /// How long a ping's pong may take.
    pub timeout: Duration,
}

/// The start of every keepalive ping's payload (a number follows), so that
/// keepalive pings can be told from the application's.
const KEEPALIVE_PREFIX: &str = "duplex-keepalive ";

/// What keepalive asks the connection to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeepAliveAction {
    /// Send a ping with this payload.
    Ping(Bytes),
    /// The peer did not answer in time: give the connection up.
    GiveUp,
}

/// The clock of one connection's keepalive.
pub(crate) struct KeepAliveTimer {
    settings: KeepAlive,
    /// When the next ping is due (while none is outstanding).
    next_ping: Instant,
    /// The outstanding ping: its payload and when its pong is due.
    outstanding: Option<(Bytes, Instant)>,
    /// Pings sent, numbering their payloads.
    sent: u64,
    timer: Pin<Box<Sleep>>,
}

impl KeepAliveTimer {
    pub(crate) fn new(settings: KeepAlive) -> KeepAliveTimer {
        KeepAliveTimer {
            settings,
            next_ping: Instant::now() + settings.interval,
            outstanding: None,
            sent: 0,
            timer: Box::pin(tokio::time::sleep(settings.interval)),
        }
    }

    /// A pong arrived: if it answers the outstanding ping, the peer is
    /// alive and the next ping is due an interval from now.
    pub(crate) fn saw_pong(&mut self, payload: &[u8]) {
        if self
            .outstanding
            .as_ref()
            .is_some_and(|(ping, _)| ping.as_ref() == payload)
        {
            self.outstanding = None;
            self.next_ping = Instant::now() + self.settings.interval;
        }
    }

    /// What is due now, if anything; otherwise the timer is armed for the
    /// next due time and `cx` will be woken then.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<KeepAliveAction> {
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let now = Instant::now();
            match &self.outstanding {
                Some((_, due)) if now >= *due => return Poll::Ready(KeepAliveAction::GiveUp),
                Some((_, due)) => {
                    let due = *due;
                    self.timer.as_mut().reset(due);
                }
                None if now >= self.next_ping => {
                    self.sent += 1;
                    let payload = Bytes::from(format!("{KEEPALIVE_PREFIX}{}", self.sent));
                    let due = now + self.settings.timeout;
                    self.outstanding = Some((payload.clone(), due));
                    self.timer.as_mut().reset(due);
                    return Poll::Ready(KeepAliveAction::Ping(payload));
                }
                None => {
                    let due = self.next_ping;
                    self.timer.as_mut().reset(due);
                }
            }
        }
    }
}

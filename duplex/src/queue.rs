//! [`SendQueue`]: the bounded queue of messages waiting for one
//! connection's task to write them.
//!
//! [`Session::send`](crate::Session::send) never waits: it puts the message
//! in this queue, which the connection's task writes out. The queue is
//! bounded in messages and bytes, so a slow consumer cannot make the server
//! hold unbounded memory; what happens when it is full is a
//! [`SlowConsumerPolicy`].
//!
//! Nothing leaves the queue unaccounted for: a message accepted by `send`
//! is written, or counted in [`QueueStats`] as dropped (by the policy) or
//! unsent (the connection ended first).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use duplex_proto::{CloseCode, CloseFrame, Message};
use tokio::sync::Notify;

use crate::budget::{Direction, Reservation};
use crate::websocket::DEFAULT_CLOSE_TIMEOUT;

/// What to do when a connection's outbound queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SlowConsumerPolicy {
    /// Close the connection with 1013 (try again later): the consumer
    /// cannot keep up, and a gap in its stream would be worse. The close
    /// replaces what is queued: it goes out after at most the frame being
    /// written, and the messages it overtakes are counted as dropped.
    /// (Behind the queue, a consumer reading slowly would never get to the
    /// close before the close timeout: measured, about 560 of 3,584 queued
    /// messages read in 5 s, then the end without a close frame.)
    #[default]
    Close,
    /// Drop the oldest queued messages to make room (for feeds where only
    /// recent messages matter).
    DropOldest,
}

/// Limits of one connection's outbound queue.
#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    /// The most queued messages (default 16,384: bursts relayed from many
    /// members must fit; memory is bounded by `max_bytes` as well).
    pub max_messages: usize,
    /// The most queued payload bytes (default 8 MiB).
    pub max_bytes: usize,
    /// What happens on overflow.
    pub policy: SlowConsumerPolicy,
}

impl Default for QueueLimits {
    fn default() -> Self {
        QueueLimits {
            max_messages: 16_384,
            max_bytes: 8 << 20,
            policy: SlowConsumerPolicy::Close,
        }
    }
}

#[derive(Default)]
struct State {
    messages: VecDeque<Message>,
    bytes: usize,
    /// A close to send; once set, nothing more is accepted.
    close: Option<CloseFrame>,
    /// The queued bytes counted against the hub's memory budget.
    budget: Option<Reservation>,
    /// Whether the close goes ahead of the output not yet written (the
    /// slow-consumer close) rather than after it.
    close_ahead: bool,
    /// How long the peer has, once the close is decided, to take what is
    /// queued and answer (`None`: the close timeout).
    close_within: Option<Duration>,
    /// The connection's task has counted what it could not send.
    finished: bool,
}

/// Counters shared by all queues of a hub (a server's connections), for
/// logs and metrics.
///
/// ```
/// use std::sync::atomic::Ordering;
/// let stats = duplex::QueueStats::default();
/// assert_eq!(stats.closed_slow.load(Ordering::Relaxed), 0);
/// ```
#[derive(Debug, Default)]
pub struct QueueStats {
    /// Connections closed because their queue overflowed.
    pub closed_slow: AtomicU64,
    /// Messages dropped by the slow-consumer policy: the oldest under
    /// [`SlowConsumerPolicy::DropOldest`]; under
    /// [`SlowConsumerPolicy::Close`], every message queued and not yet
    /// written when the 1013 was decided (the close overtakes them).
    pub dropped: AtomicU64,
    /// Messages accepted for sending but never written whole, because the
    /// connection ended first: the peer went away or stopped reading, a
    /// close timed out, or the shutdown grace ran out (see
    /// [`ServerHandle::shutdown`](crate::ServerHandle::shutdown)).
    pub unsent: AtomicU64,
}

/// One connection's queue of messages to send.
pub(crate) struct SendQueue {
    state: Mutex<State>,
    notify: Notify,
    /// Signalled only when a close is asked for, so that a write already
    /// under way can shorten its deadline (or let the close overtake it).
    closing: Notify,
    /// The connection is given up (the shutdown grace ran out): one load
    /// per turn of its task's loop, which `notify` wakes.
    abandoned: AtomicBool,
    /// Signalled when the connection is given up, for a write under way.
    abandon: Notify,
    /// Signalled once the connection's task has counted what it could not
    /// send.
    finished: Notify,
    limits: QueueLimits,
    stats: Arc<QueueStats>,
}

/// A close taken from the queue.
pub(crate) struct QueuedClose {
    pub(crate) frame: CloseFrame,
    /// It goes ahead of the output not yet written
    /// ([`WebSocket::close_now`](crate::WebSocket)), not after it.
    pub(crate) ahead: bool,
}

/// Why a message was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The connection is closing.
    Closed,
    /// The queue overflowed and the connection is being closed.
    Overflow,
}

impl SendQueue {
    pub(crate) fn new(limits: QueueLimits, stats: Arc<QueueStats>) -> SendQueue {
        SendQueue {
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            closing: Notify::new(),
            abandoned: AtomicBool::new(false),
            abandon: Notify::new(),
            finished: Notify::new(),
            limits,
            stats,
        }
    }

    /// Counts the queued bytes against a memory budget: a message that
    /// does not fit is treated like one that overflows the queue.
    pub(crate) fn with_budget(self, reservation: Reservation) -> SendQueue {
        self.lock().budget = Some(reservation);
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a message, applying the policy when full.
    pub(crate) fn push(&self, message: Message) -> Result<(), Refused> {
        let stats = &*self.stats;
        let mut state = self.lock();
        if state.close.is_some() {
            return Err(Refused::Closed);
        }
        let size = message.len();
        let fits = |s: &mut State| {
            let bytes = s.bytes + size;
            s.messages.len() < self.limits.max_messages
                && bytes <= self.limits.max_bytes
                && s.budget
                    .as_mut()
                    .is_none_or(|budget| budget.hold(Direction::Outgoing, bytes))
        };
        if !fits(&mut state) {
            match self.limits.policy {
                SlowConsumerPolicy::Close => {
                    let dropped = state.messages.len() as u64;
                    state.messages.clear();
                    state.bytes = 0;
                    if let Some(budget) = &mut state.budget {
                        budget.clear(Direction::Outgoing);
                    }
                    state.close = Some(CloseFrame::new(
                        CloseCode::TryAgainLater,
                        "slow consumer: outbound queue full",
                    ));
                    state.close_ahead = true;
                    drop(state);
                    stats.dropped.fetch_add(dropped, Ordering::Relaxed);
                    stats.closed_slow.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("closing a slow consumer: its outbound queue is full");
                    self.notify.notify_one();
                    self.closing.notify_one();
                    return Err(Refused::Overflow);
                }
                SlowConsumerPolicy::DropOldest => {
                    while !fits(&mut state) {
                        let Some(old) = state.messages.pop_front() else {
                            break;
                        };
                        state.bytes -= old.len();
                        stats.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    if !fits(&mut state) {
                        // A single message larger than the whole queue.
                        stats.dropped.fetch_add(1, Ordering::Relaxed);
                        return Ok(());
                    }
                }
            }
        }
        state.bytes += size;
        state.messages.push_back(message);
        drop(state);
        self.notify.notify_one();
        Ok(())
    }

    /// Asks for the connection to be closed after what is queued.
    pub(crate) fn close(&self, frame: CloseFrame) {
        self.close_within(frame, None);
    }

    /// Like [`SendQueue::close`], giving the peer `within` (instead of the
    /// close timeout) to take what is queued and answer: a server's
    /// shutdown grace.
    pub(crate) fn close_within(&self, frame: CloseFrame, within: Option<Duration>) {
        let mut state = self.lock();
        if state.close.is_none() {
            state.close = Some(frame);
            state.close_within = within;
        }
        drop(state);
        self.notify.notify_one();
        self.closing.notify_one();
    }

    /// How long the peer has to finish once the close is decided.
    pub(crate) fn close_timeout(&self) -> Duration {
        self.lock().close_within.unwrap_or(DEFAULT_CLOSE_TIMEOUT)
    }

    /// Waits until a close is asked for. Cancellation-safe.
    pub(crate) async fn close_notified(&self) {
        self.closing.notified().await
    }

    /// Waits until something is queued. Cancellation-safe.
    pub(crate) async fn notified(&self) {
        self.notify.notified().await
    }

    /// Takes everything queued, and the close request if any.
    pub(crate) fn drain(&self, into: &mut Vec<Message>) -> Option<QueuedClose> {
        let mut state = self.lock();
        into.extend(state.messages.drain(..));
        state.bytes = 0;
        if let Some(budget) = &mut state.budget {
            budget.clear(Direction::Outgoing);
        }
        let frame = state.close.clone()?;
        Some(QueuedClose {
            frame,
            ahead: state.close_ahead,
        })
    }

    /// The close, if one was asked for that goes ahead of what is queued
    /// (for a write under way when it was decided).
    pub(crate) fn close_ahead(&self) -> Option<CloseFrame> {
        let state = self.lock();
        state.close.clone().filter(|_| state.close_ahead)
    }

    /// Counts messages the policy dropped after they left the queue.
    pub(crate) fn count_dropped(&self, messages: usize) {
        if messages > 0 {
            let stats = &self.stats.dropped;
            stats.fetch_add(messages as u64, Ordering::Relaxed);
        }
    }

    /// Counts messages that were accepted but will never be written.
    pub(crate) fn count_unsent(&self, messages: usize) {
        if messages > 0 {
            let stats = &self.stats.unsent;
            stats.fetch_add(messages as u64, Ordering::Relaxed);
        }
    }

    /// Gives the connection up: its task stops at once and counts what it
    /// could not send.
    pub(crate) fn abandon(&self) {
        self.abandoned.store(true, Ordering::SeqCst);
        self.notify.notify_one();
        self.abandon.notify_one();
    }

    /// Whether the connection was given up.
    pub(crate) fn is_abandoned(&self) -> bool {
        self.abandoned.load(Ordering::SeqCst)
    }

    /// Waits until the connection is given up (for a write under way; the
    /// task's loop sees it through [`SendQueue::notified`]).
    /// Cancellation-safe.
    pub(crate) async fn abandoned(&self) {
        let abandoned = self.abandon.notified();
        if self.is_abandoned() {
            return;
        }
        abandoned.await
    }

    /// The end of the connection's task: refuses further messages and
    /// counts those still queued as unsent, with `unwritten` more (the
    /// engine's); [`SendQueue::finished`] then returns.
    pub(crate) fn finish(&self, unwritten: usize) {
        let mut state = self.lock();
        if state.close.is_none() {
            state.close = Some(CloseFrame::new(CloseCode::Normal, ""));
        }
        let left = state.messages.len();
        state.messages.clear();
        state.bytes = 0;
        if let Some(budget) = &mut state.budget {
            budget.clear(Direction::Outgoing);
        }
        // Counted before `finished` is seen, under the same lock.
        self.count_unsent(left + unwritten);
        state.finished = true;
        drop(state);
        self.finished.notify_waiters();
    }

    /// Waits until the connection's task has finished (and counted).
    pub(crate) async fn finished(&self) {
        // Created before the check: `notify_waiters` reaches it from now.
        let finished = self.finished.notified();
        if self.lock().finished {
            return;
        }
        finished.await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_policy_closes_with_1013() {
        let stats = Arc::new(QueueStats::default());
        let q = SendQueue::new(
            QueueLimits {
                max_messages: 2,
                ..QueueLimits::default()
            },
            stats.clone(),
        );
        q.push(Message::text("a")).unwrap();
        q.push(Message::text("b")).unwrap();
        assert_eq!(q.push(Message::text("c")), Err(Refused::Overflow));
        let mut out = Vec::new();
        let close = q.drain(&mut out).unwrap();
        assert_eq!(close.frame.code, CloseCode::TryAgainLater);
        // The close replaces what was queued: it goes ahead, and the two
        // queued messages are counted as dropped.
        assert!(close.ahead);
        assert!(out.is_empty());
        assert_eq!(stats.dropped.load(Ordering::Relaxed), 2);
        assert_eq!(q.push(Message::text("d")), Err(Refused::Closed));
        assert_eq!(stats.closed_slow.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn finishing_counts_what_is_left_as_unsent() {
        let stats = Arc::new(QueueStats::default());
        let q = SendQueue::new(QueueLimits::default(), stats.clone());
        q.push(Message::text("a")).unwrap();
        q.push(Message::text("b")).unwrap();
        q.finish(3);
        assert_eq!(stats.unsent.load(Ordering::Relaxed), 5);
        assert_eq!(q.push(Message::text("c")), Err(Refused::Closed));
    }

    #[test]
    fn drop_oldest_keeps_the_newest() {
        let stats = Arc::new(QueueStats::default());
        let q = SendQueue::new(
            QueueLimits {
                max_messages: 2,
                max_bytes: 1 << 20,
                policy: SlowConsumerPolicy::DropOldest,
            },
            stats.clone(),
        );
        for m in ["a", "b", "c"] {
            q.push(Message::text(m)).unwrap();
        }
        let mut out = Vec::new();
        assert!(q.drain(&mut out).is_none());
        assert_eq!(out, vec![Message::text("b"), Message::text("c")]);
        assert_eq!(stats.dropped.load(Ordering::Relaxed), 1);
    }
}

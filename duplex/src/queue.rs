//! [`SendQueue`]: the bounded queue of messages waiting for one
//! connection's task to write them.
//!
//! [`Session::send`](crate::Session::send) never waits: it puts the message
//! in this queue, which the connection's task writes out. The queue is
//! bounded in messages and bytes, so a slow consumer cannot make the server
//! hold unbounded memory; what happens when it is full is a
//! [`SlowConsumerPolicy`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use duplex_proto::{CloseCode, CloseFrame, Message};
use tokio::sync::Notify;

use crate::budget::{Direction, Reservation};

/// What to do when a connection's outbound queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SlowConsumerPolicy {
    /// Close the connection with 1013 (try again later): the consumer
    /// cannot keep up, and a gap in its stream would be worse.
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
    /// A close to send after the queued messages; once set, nothing more
    /// is accepted.
    close: Option<CloseFrame>,
    /// The queued bytes counted against the hub's memory budget.
    budget: Option<Reservation>,
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
    /// Messages dropped by [`SlowConsumerPolicy::DropOldest`].
    pub dropped: AtomicU64,
}

/// One connection's queue of messages to send.
pub(crate) struct SendQueue {
    state: Mutex<State>,
    notify: Notify,
    /// Signalled only when a close is asked for, so that a write already
    /// under way can shorten its deadline.
    closing: Notify,
    limits: QueueLimits,
    stats: Arc<QueueStats>,
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
                    state.messages.clear();
                    state.bytes = 0;
                    if let Some(budget) = &mut state.budget {
                        budget.clear(Direction::Outgoing);
                    }
                    state.close = Some(CloseFrame::new(
                        CloseCode::TryAgainLater,
                        "slow consumer: outbound queue full",
                    ));
                    drop(state);
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
        let mut state = self.lock();
        if state.close.is_none() {
            state.close = Some(frame);
        }
        drop(state);
        self.notify.notify_one();
        self.closing.notify_one();
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
    pub(crate) fn drain(&self, into: &mut Vec<Message>) -> Option<CloseFrame> {
        let mut state = self.lock();
        into.extend(state.messages.drain(..));
        state.bytes = 0;
        if let Some(budget) = &mut state.budget {
            budget.clear(Direction::Outgoing);
        }
        state.close.clone()
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
        assert_eq!(close.code, CloseCode::TryAgainLater);
        assert!(out.is_empty());
        assert_eq!(q.push(Message::text("d")), Err(Refused::Closed));
        assert_eq!(stats.closed_slow.load(Ordering::Relaxed), 1);
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

//! [`MemoryBudget`]: one limit on the payload all of a server's connections
//! buffer together.
//!
//! Per-connection limits alone do not protect a server: measured before
//! this budget, 24 connections each sending 60 MiB of a frame declared as
//! 64 MiB held 1.6 GB, and 16 `/echo` clients that never read while being
//! sent 32 MiB each pinned 633 MiB. The budget counts, for every
//! connection of a [`Hub`](crate::Hub):
//!
//! - **incoming**: bytes received and held for a message not yet handed
//!   to the application (a large frame still arriving, a fragmented
//!   message being assembled). A message that would take the total over
//!   the budget fails its connection with close code 1009, and nothing of
//!   it reaches the application;
//! - **outgoing**: bytes queued for a peer and not yet written, in the
//!   engine's write queue and in a session's outbound queue. A message that
//!   does not fit is handled like a full queue: the slow-consumer policy of
//!   [`QueueLimits`](crate::QueueLimits) for a session's queue (close with
//!   1013, or drop and count); a connection whose writes are stalled with
//!   more than the budget can cover is dropped, and its `send` or `flush`
//!   fails with [`Error::QueueFull`](crate::Error::QueueFull) (its peer is
//!   not reading, so no close frame could reach it).
//!
//! Each connection's first [`ALLOWANCE`] bytes each way are not counted,
//! so small messages never touch the shared counter (the budget costs
//! nothing on the paths the benchmarks measure); the budget bounds what
//! large messages and slow readers can pin, which is where the memory
//! went.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// What each connection may buffer each way before the budget counts it.
pub const ALLOWANCE: usize = 64 * 1024;

/// The default budget: 512 MiB, room for 32 messages of the default
/// maximum size (16 MiB) at once, far below what a server machine has,
/// far above what a chat's small messages need.
pub const DEFAULT_MEMORY_BUDGET: usize = 512 << 20;

/// A server-wide limit on buffered payload, shared by the connections of a
/// hub, with counters of what it refused.
///
/// ```
/// let budget = duplex::MemoryBudget::new(64 << 20);
/// assert_eq!(budget.limit(), 64 << 20);
/// assert_eq!(budget.used(), 0);
/// ```
#[derive(Debug)]
pub struct MemoryBudget {
    limit: usize,
    used: AtomicUsize,
    refused_incoming: AtomicU64,
    refused_outgoing: AtomicU64,
}

impl MemoryBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Arc<MemoryBudget> {
        Arc::new(MemoryBudget {
            limit,
            used: AtomicUsize::new(0),
            refused_incoming: AtomicU64::new(0),
            refused_outgoing: AtomicU64::new(0),
        })
    }

    /// The budget in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes counted against the budget now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Incoming messages refused (their connections closed with 1009).
    pub fn refused_incoming(&self) -> u64 {
        self.refused_incoming.load(Ordering::Relaxed)
    }

    /// Outgoing messages refused (handled as a full queue).
    pub fn refused_outgoing(&self) -> u64 {
        self.refused_outgoing.load(Ordering::Relaxed)
    }

    /// Takes `bytes` from the budget if they fit.
    fn try_take(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(bytes).filter(|&total| total <= self.limit)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::Relaxed);
    }
}

impl Default for MemoryBudget {
    fn default() -> Self {
        Arc::into_inner(MemoryBudget::new(DEFAULT_MEMORY_BUDGET)).expect("just made")
    }
}

/// Which way a connection's bytes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Incoming,
    Outgoing,
}

/// What one connection (or one queue) holds of a budget; given back when
/// dropped.
#[derive(Debug)]
pub(crate) struct Reservation {
    budget: Arc<MemoryBudget>,
    /// Counted bytes, by [`Direction`].
    held: [usize; 2],
}

impl Reservation {
    pub(crate) fn new(budget: Arc<MemoryBudget>) -> Reservation {
        Reservation {
            budget,
            held: [0; 2],
        }
    }

    /// Records that the connection now buffers `bytes` in `direction`;
    /// false (and nothing changed) if the budget cannot cover them, which
    /// is counted as a refusal.
    #[inline]
    pub(crate) fn hold(&mut self, direction: Direction, bytes: usize) -> bool {
        let counted = bytes.saturating_sub(ALLOWANCE);
        let held = &mut self.held[direction as usize];
        if counted == *held {
            // Small messages: no shared counter touched.
            return true;
        }
        if counted < *held {
            self.budget.give_back(*held - counted);
        } else if !self.budget.try_take(counted - *held) {
            let refused = match direction {
                Direction::Incoming => &self.budget.refused_incoming,
                Direction::Outgoing => &self.budget.refused_outgoing,
            };
            refused.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        *held = counted;
        true
    }

    /// Gives back everything held in `direction`.
    #[inline]
    pub(crate) fn clear(&mut self, direction: Direction) {
        let _ = self.hold(direction, 0);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.give_back(self.held[0] + self.held[1]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_amounts_are_free_and_large_ones_are_counted() {
        let budget = MemoryBudget::new(1 << 20);
        let mut a = Reservation::new(budget.clone());
        assert!(a.hold(Direction::Incoming, ALLOWANCE));
        assert_eq!(budget.used(), 0);
        assert!(a.hold(Direction::Incoming, ALLOWANCE + 1000));
        assert!(a.hold(Direction::Outgoing, ALLOWANCE + 24));
        assert_eq!(budget.used(), 1024);
        // Shrinking gives back.
        assert!(a.hold(Direction::Incoming, ALLOWANCE + 500));
        assert_eq!(budget.used(), 524);
        a.clear(Direction::Outgoing);
        assert_eq!(budget.used(), 500);
        drop(a);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn what_does_not_fit_is_refused_and_counted() {
        let budget = MemoryBudget::new(1 << 20);
        let mut a = Reservation::new(budget.clone());
        let mut b = Reservation::new(budget.clone());
        assert!(a.hold(Direction::Incoming, ALLOWANCE + (700 << 10)));
        assert!(!b.hold(Direction::Incoming, ALLOWANCE + (400 << 10)));
        assert!(!b.hold(Direction::Outgoing, ALLOWANCE + (400 << 10)));
        assert_eq!(
            (budget.refused_incoming(), budget.refused_outgoing()),
            (1, 1)
        );
        // Refused: nothing changed for b.
        assert_eq!(budget.used(), 700 << 10);
        assert!(b.hold(Direction::Incoming, ALLOWANCE + (300 << 10)));
        assert_eq!(budget.used(), 1000 << 10);
        drop(a);
        assert!(b.hold(Direction::Outgoing, ALLOWANCE + (400 << 10)));
    }
}

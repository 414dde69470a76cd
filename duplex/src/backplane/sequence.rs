//! Sequence numbers: the sending side numbers each (room) stream of its
//! messages from 1; the receiving side tracks the last number seen of
//! each sender in each room, so it can count what never arrived and drop
//! what arrived twice.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// What the receiving side does with one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Deliver it; `lost` messages of this sender before it never came.
    Deliver { lost: u64 },
    /// Already seen (or older than what was seen): drop it.
    Duplicate,
}

/// The last sequence number seen of each sender, per room.
#[derive(Debug, Default)]
pub(crate) struct Received {
    rooms: HashMap<String, HashMap<u64, u64>>,
}

impl Received {
    /// Checks message `seq` of `instance` in `room`.
    ///
    /// Sequence 0 is "not sequenced" (a service publishing straight into
    /// Redis) and always delivered. Sequence 1 starts a sender's stream
    /// afresh (its counter for the room was dropped after a quiet spell).
    /// The first message seen of a sender counts nothing lost: what it sent
    /// before this node subscribed was never meant for it.
    pub(crate) fn observe(&mut self, room: &str, instance: u64, seq: u64) -> Verdict {
        if seq == 0 {
            return Verdict::Deliver { lost: 0 };
        }
        let senders = match self.rooms.get_mut(room) {
            Some(senders) => senders,
            None => self.rooms.entry(room.to_string()).or_default(),
        };
        match senders.get_mut(&instance) {
            None => {
                senders.insert(instance, seq);
                Verdict::Deliver { lost: 0 }
            }
            Some(last) if seq == 1 || seq > *last => {
                let lost = if seq == 1 { 0 } else { seq - *last - 1 };
                *last = seq;
                Verdict::Deliver { lost }
            }
            Some(_) => Verdict::Duplicate,
        }
    }

    /// Forgets a room (this node no longer receives it).
    pub(crate) fn forget(&mut self, room: &str) {
        self.rooms.remove(room);
    }
}

/// How long a sending counter may stay unused before it is dropped (and
/// the room's next message starts again from 1): bounds the memory of
/// rooms published into once, e.g. by `POST /publish`.
pub(crate) const COUNTER_IDLE: Duration = Duration::from_secs(60);

/// The next sequence number of each room this node sends into.
#[derive(Debug, Default)]
pub(crate) struct Sending {
    rooms: HashMap<String, (u64, Instant)>,
}

impl Sending {
    /// The next number for `room`.
    pub(crate) fn next(&mut self, room: &str, now: Instant) -> u64 {
        match self.rooms.get_mut(room) {
            Some((seq, used)) => {
                *seq += 1;
                *used = now;
                *seq
            }
            None => {
                self.rooms.insert(room.to_string(), (1, now));
                1
            }
        }
    }

    /// Drops the counters unused for [`COUNTER_IDLE`].
    pub(crate) fn prune(&mut self, now: Instant) {
        self.rooms
            .retain(|_, (_, used)| now.duration_since(*used) < COUNTER_IDLE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_count_as_lost_and_repeats_are_dropped() {
        let mut r = Received::default();
        assert_eq!(r.observe("a", 7, 5), Verdict::Deliver { lost: 0 });
        assert_eq!(r.observe("a", 7, 6), Verdict::Deliver { lost: 0 });
        assert_eq!(r.observe("a", 7, 9), Verdict::Deliver { lost: 2 });
        assert_eq!(r.observe("a", 7, 9), Verdict::Duplicate);
        assert_eq!(r.observe("a", 7, 8), Verdict::Duplicate);
        // Another sender, another room: tracked apart.
        assert_eq!(r.observe("a", 8, 3), Verdict::Deliver { lost: 0 });
        assert_eq!(r.observe("b", 7, 1), Verdict::Deliver { lost: 0 });
        // A restarted stream, and unsequenced messages.
        assert_eq!(r.observe("a", 7, 1), Verdict::Deliver { lost: 0 });
        assert_eq!(r.observe("a", 7, 2), Verdict::Deliver { lost: 0 });
        assert_eq!(r.observe("a", 9, 0), Verdict::Deliver { lost: 0 });
        assert_eq!(r.observe("a", 9, 0), Verdict::Deliver { lost: 0 });
        r.forget("a");
        assert_eq!(r.observe("a", 7, 10), Verdict::Deliver { lost: 0 });
    }

    #[test]
    fn sending_counters_start_at_one_and_are_pruned() {
        let mut s = Sending::default();
        let t0 = Instant::now();
        assert_eq!(s.next("a", t0), 1);
        assert_eq!(s.next("a", t0), 2);
        assert_eq!(s.next("b", t0), 1);
        s.prune(t0 + COUNTER_IDLE);
        assert_eq!(s.next("a", t0 + COUNTER_IDLE), 1);
    }
}

//! What one member received, checked message by message: every delivery
//! is matched against its sender's sequence, so loss, duplicates,
//! reordering, own echoes and strays are counted exactly.

use std::ops::AddAssign;

use super::wire::{Bad, Header, Wire};
use super::Plan;

/// The counts of one member, and (added up) of the run.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    /// Publishes this member sent.
    pub published: u64,
    /// Publishes sent inside the measured window.
    pub published_measured: u64,
    /// Distinct deliveries of other members' publishes.
    pub delivered: u64,
    /// Deliveries of publishes sent inside the measured window.
    pub delivered_measured: u64,
    /// The same publish received again.
    pub duplicates: u64,
    /// A publish received after a later one of the same sender.
    pub out_of_order: u64,
    /// The member's own message came back to it.
    pub own_echoes: u64,
    /// A message of this run from a member of another room.
    pub wrong_room: u64,
    /// A message that is not this run's (or not valid in it).
    pub foreign: u64,
    /// A message of this run whose size or padding changed.
    pub corrupt: u64,
    /// The connection ended before the bench closed it.
    pub disconnects: u64,
}

impl Counts {
    /// Deliveries that break the relay's contract, whatever the loss.
    pub fn violations(&self) -> u64 {
        self.duplicates
            + self.out_of_order
            + self.own_echoes
            + self.wrong_room
            + self.foreign
            + self.corrupt
    }
}

impl AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.published += o.published;
        self.published_measured += o.published_measured;
        self.delivered += o.delivered;
        self.delivered_measured += o.delivered_measured;
        self.duplicates += o.duplicates;
        self.out_of_order += o.out_of_order;
        self.own_echoes += o.own_echoes;
        self.wrong_room += o.wrong_room;
        self.foreign += o.foreign;
        self.corrupt += o.corrupt;
        self.disconnects += o.disconnects;
    }
}

/// The sequence numbers received from one publisher.
#[derive(Default)]
struct Seen {
    bits: Vec<u64>,
    highest: Option<u32>,
}

impl Seen {
    /// Marks `seq` as received; false if it already was.
    fn mark(&mut self, seq: u32) -> bool {
        let (word, bit) = (seq as usize / 64, seq % 64);
        if self.bits.len() <= word {
            self.bits.resize(word + 1, 0);
        }
        let fresh = self.bits[word] & (1 << bit) == 0;
        self.bits[word] |= 1 << bit;
        fresh
    }
}

/// What happened to one received message, for the shared counters.
pub enum Outcome {
    /// A first delivery of a publish.
    Delivered {
        /// Its latency in µs, when it was sent inside the measured window.
        latency: Option<u64>,
        /// It came after a later publish of the same sender (counted).
        late: bool,
    },
    /// The first probe from one of the room's probers.
    Joined,
    /// Nothing that changes the shared counters (a repeated probe).
    Nothing,
    /// A violation (already counted here).
    Violation,
}

/// One member's view of its room.
pub struct Tally {
    /// This member's index and room.
    me: u32,
    room: usize,
    /// Received sequence numbers, per publisher of the room.
    seen: Vec<Seen>,
    /// Which of the room's probers were heard from.
    probes: Vec<bool>,
    /// The counts so far.
    pub counts: Counts,
}

impl Tally {
    /// An empty tally for member `me`.
    pub fn new(plan: &Plan, me: usize) -> Tally {
        Tally {
            me: me as u32,
            room: me / plan.members,
            seen: (0..plan.publishers).map(|_| Seen::default()).collect(),
            probes: vec![false; plan.probers],
            counts: Counts::default(),
        }
    }

    /// Checks one received message; `received_ns` is the bench clock at
    /// its arrival, `window` the measured window in the same clock.
    pub fn take(
        &mut self,
        plan: &Plan,
        wire: &Wire,
        data: &[u8],
        text: bool,
        received_ns: u64,
        window: Option<(u64, u64)>,
    ) -> Outcome {
        let header = match wire.decode(data) {
            Ok(_) if text => Err(Bad::Corrupt),
            other => other,
        };
        let Header {
            sender,
            probe,
            seq,
            sent_ns,
        } = match header {
            Ok(header) => header,
            Err(Bad::Foreign) => return self.violation(|c| &mut c.foreign),
            Err(Bad::Corrupt) => return self.violation(|c| &mut c.corrupt),
        };
        if sender == self.me {
            return self.violation(|c| &mut c.own_echoes);
        }
        let sender = sender as usize;
        if sender >= plan.rooms * plan.members {
            return self.violation(|c| &mut c.foreign);
        }
        if sender / plan.members != self.room {
            return self.violation(|c| &mut c.wrong_room);
        }
        let position = sender % plan.members;
        if probe {
            let Some(heard) = self.probes.get_mut(position) else {
                return self.violation(|c| &mut c.foreign);
            };
            return if std::mem::replace(heard, true) {
                Outcome::Nothing
            } else {
                Outcome::Joined
            };
        }
        if seq >= plan.max_seq {
            return self.violation(|c| &mut c.foreign);
        }
        let Some(seen) = self.seen.get_mut(position) else {
            return self.violation(|c| &mut c.foreign);
        };
        if !seen.mark(seq) {
            return self.violation(|c| &mut c.duplicates);
        }
        let late = seen.highest.is_some_and(|h| seq < h);
        seen.highest = seen.highest.max(Some(seq));
        self.counts.delivered += 1;
        if late {
            self.counts.out_of_order += 1;
        }
        let measured = window.is_some_and(|(from, to)| (from..to).contains(&sent_ns));
        let latency = measured.then(|| {
            self.counts.delivered_measured += 1;
            (received_ns.saturating_sub(sent_ns) / 1_000).max(1)
        });
        Outcome::Delivered { latency, late }
    }

    fn violation(&mut self, counter: impl FnOnce(&mut Counts) -> &mut u64) -> Outcome {
        *counter(&mut self.counts) += 1;
        Outcome::Violation
    }
}

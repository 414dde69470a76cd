//! [`RoomHistory`]: a room's last messages, replayed to a member who
//! joins, with no gap and no duplicate between the replay and what comes
//! live.
//!
//! On one node that is simple: the registry keeps the last N messages it
//! delivered in the room, and a joining member gets them under the same
//! lock that publishing takes, then the live ones.
//!
//! Across nodes, a room that appears on this node starts empty, so its
//! history is loaded from the backplane (a Redis stream). The room is
//! *loading* from its first local member until the backplane answers:
//! what arrives meanwhile (local and remote) is held back, and when the
//! stored history comes it is merged with what was held back:
//!
//! - a remote message held back whose sender's sequence number is not
//!   beyond that sender's newest stored one is already in the history (it
//!   was stored before the history was read and published after this node
//!   subscribed), or older than the history's window (more than N came
//!   between the subscription and the read): either way it is dropped, so
//!   each sender's messages come once and in order;
//! - a message of this node in the stored history that was sent after the
//!   loading began is one of the held-back ones, and kept once, from there.
//!
//! Then the members get the merged list in order, and the room delivers
//! live from then on.

use std::collections::{HashMap, VecDeque};

use duplex_proto::Message;

use crate::backplane::Envelope;

/// Where a message came from, as far as merging needs to know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Published on this node, by the session `except` (if any), which
    /// must not receive it.
    Local { except: Option<u64> },
    /// Arrived from another node.
    Remote { instance: u64, seq: u64 },
}

/// A message held back while the room loads.
#[derive(Debug)]
pub(crate) struct Held {
    pub(crate) message: Message,
    pub(crate) origin: Origin,
}

/// The history of one room on this node.
#[derive(Debug)]
pub(crate) struct RoomHistory {
    capacity: usize,
    recent: VecDeque<Message>,
    /// While loading: since when (µs since the epoch), and what was held.
    loading: Option<(u64, Vec<Held>)>,
}

impl RoomHistory {
    /// A history of the last `capacity` messages; `loading_since` when
    /// the stored history is being fetched.
    pub(crate) fn new(capacity: usize, loading_since: Option<u64>) -> RoomHistory {
        RoomHistory {
            capacity,
            recent: VecDeque::with_capacity(capacity.min(64)),
            loading: loading_since.map(|since| (since, Vec::new())),
        }
    }

    /// What a joining member gets first, or `None` while loading (the
    /// member then gets the merged history when it comes).
    pub(crate) fn replay(&self) -> Option<impl Iterator<Item = &Message>> {
        if self.loading.is_some() {
            return None;
        }
        Some(self.recent.iter())
    }

    /// A message to deliver now: `None` when it was held back (loading),
    /// else it is remembered and handed back for delivery.
    pub(crate) fn record(&mut self, message: &Message, origin: Origin) -> Option<()> {
        if let Some((_, held)) = &mut self.loading {
            held.push(Held {
                message: message.clone(),
                origin,
            });
            return None;
        }
        self.remember(message.clone());
        Some(())
    }

    fn remember(&mut self, message: Message) {
        if self.capacity == 0 {
            return;
        }
        if self.recent.len() == self.capacity {
            self.recent.pop_front();
        }
        self.recent.push_back(message);
    }

    /// The stored history arrived (oldest first; `own` is this node's
    /// instance id): returns the messages to deliver now, in order, each
    /// with its origin, and delivers live from now on. `None` when the
    /// room was not loading.
    pub(crate) fn loaded(&mut self, stored: Vec<Envelope>, own: u64) -> Option<Vec<Held>> {
        let (since, held) = self.loading.take()?;
        let skip = stored.len().saturating_sub(self.capacity);
        // The newest stored message of each sender: what it sent up to
        // there is in the history or older than it.
        let mut newest: HashMap<u64, u64> = HashMap::new();
        for e in stored.iter().skip(skip).filter(|e| e.seq != 0) {
            let seq = newest.entry(e.instance).or_default();
            *seq = (*seq).max(e.seq);
        }
        let mut merged: Vec<Held> = stored
            .into_iter()
            .skip(skip)
            .filter(|e| !(e.instance == own && e.sent_us >= since))
            .map(|e| Held {
                origin: Origin::Remote {
                    instance: e.instance,
                    seq: e.seq,
                },
                message: e.message,
            })
            .collect();
        merged.extend(held.into_iter().filter(|h| match h.origin {
            Origin::Remote { instance, seq } => {
                seq == 0 || newest.get(&instance).is_none_or(|&newest| seq > newest)
            }
            Origin::Local { .. } => true,
        }));
        for h in &merged {
            self.remember(h.message.clone());
        }
        Some(merged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(instance: u64, seq: u64, sent_us: u64, text: &str) -> Envelope {
        Envelope {
            instance,
            seq,
            sent_us,
            message: Message::text(text.to_string()),
        }
    }

    fn texts(held: &[Held]) -> Vec<String> {
        held.iter()
            .map(|h| match &h.message {
                Message::Text(t) => t.as_str().to_string(),
                _ => String::new(),
            })
            .collect()
    }

    #[test]
    fn a_ready_room_replays_its_last_messages() {
        let mut h = RoomHistory::new(2, None);
        for t in ["a", "b", "c"] {
            assert!(h
                .record(&Message::text(t), Origin::Local { except: None })
                .is_some());
        }
        let replay: Vec<_> = h.replay().unwrap().cloned().collect();
        assert_eq!(replay, vec![Message::text("b"), Message::text("c")]);
    }

    #[test]
    fn loading_merges_stored_and_held_without_gap_or_duplicate() {
        const OWN: u64 = 1;
        let mut h = RoomHistory::new(10, Some(1_000));
        assert!(h.replay().is_none());
        // Held back meanwhile: node 2's seq 5 (also stored), node 2's seq 6
        // (published after the history was read), one of ours.
        assert!(h
            .record(
                &Message::text("r5"),
                Origin::Remote {
                    instance: 2,
                    seq: 5
                }
            )
            .is_none());
        assert!(h
            .record(
                &Message::text("r6"),
                Origin::Remote {
                    instance: 2,
                    seq: 6
                }
            )
            .is_none());
        assert!(h
            .record(&Message::text("own-new"), Origin::Local { except: Some(9) })
            .is_none());
        let stored = vec![
            envelope(OWN, 3, 500, "own-old"),
            envelope(2, 4, 600, "r4"),
            envelope(2, 5, 1_100, "r5"),
            // Ours, sent after loading began: it is the held one.
            envelope(OWN, 4, 1_200, "own-new"),
        ];
        let merged = h.loaded(stored, OWN).unwrap();
        assert_eq!(texts(&merged), ["own-old", "r4", "r5", "r6", "own-new"]);
        assert_eq!(merged[4].origin, Origin::Local { except: Some(9) });
        // Live from now on, and the recent list is the merged one.
        assert!(h
            .record(&Message::text("live"), Origin::Local { except: None })
            .is_some());
        assert_eq!(h.replay().unwrap().count(), 6);
        assert!(h.loaded(Vec::new(), OWN).is_none());
    }

    #[test]
    fn held_messages_older_than_the_window_are_dropped() {
        // 30 of node 2's messages arrived while loading, but the history
        // read afterwards holds only its last 3 (28..=30) and one more.
        let mut h = RoomHistory::new(3, Some(0));
        for seq in 1..=31 {
            let text = seq.to_string();
            assert!(h
                .record(&Message::text(text), Origin::Remote { instance: 2, seq })
                .is_none());
        }
        let stored = (28..=30)
            .map(|i| envelope(2, i, 0, &i.to_string()))
            .collect();
        assert_eq!(
            texts(&h.loaded(stored, 1).unwrap()),
            ["28", "29", "30", "31"]
        );
    }

    #[test]
    fn stored_history_is_cut_to_the_capacity() {
        let mut h = RoomHistory::new(2, Some(0));
        let stored = (1..=5).map(|i| envelope(2, i, 0, &i.to_string())).collect();
        assert_eq!(texts(&h.loaded(stored, 1).unwrap()), ["4", "5"]);
    }
}

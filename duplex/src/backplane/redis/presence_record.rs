//! One node's presence record in a room's Redis hash: how it is written
//! and read back.
//!
//! The hash `PREFIX:{ROOM}:presence` has one field per node, the node's
//! random instance id in hex; the value is text, one item per line:
//!
//! ```text
//! p1                 format version
//! 1733131200000      expiry, ms since the Unix epoch (writer's clock)
//! 3                  members on that node, anonymous ones included
//! node-a             the node's name
//! ada                one line per named member
//! bob
//! ```
//!
//! Names and node ids hold no control characters (they are cleaned before
//! they get here), so a line break always separates two items. Redis 7.0
//! has no per-field expiry: readers skip (and delete) a record whose
//! expiry has passed, so a crashed node's members vanish within the TTL.

use crate::presence::{NodePresence, Presence};

/// The first line of every record.
const VERSION: &str = "p1";

/// One node's members of a room, valid until `expires_ms`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Record {
    pub(super) expires_ms: u64,
    pub(super) node: String,
    pub(super) presence: Presence,
}

impl Record {
    /// The hash value.
    pub(super) fn encode(&self) -> String {
        let mut value = format!(
            "{VERSION}\n{}\n{}\n{}",
            self.expires_ms,
            self.presence.count,
            single_line(&self.node)
        );
        for name in &self.presence.members {
            value.push('\n');
            value.push_str(&single_line(name));
        }
        value
    }

    /// A hash value read back; `None` when it is not a record of this
    /// format (written by a newer version, or by hand).
    pub(super) fn decode(value: &str) -> Option<Record> {
        let mut lines = value.split('\n');
        if lines.next()? != VERSION {
            return None;
        }
        let expires_ms = lines.next()?.parse().ok()?;
        let count = lines.next()?.parse().ok()?;
        let node = lines.next()?.to_string();
        let members = lines.map(str::to_string).collect();
        Some(Record {
            expires_ms,
            node,
            presence: Presence::new(count, members),
        })
    }

    /// Whether the record's node has not renewed it in time.
    pub(super) fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_ms <= now_ms
    }

    pub(super) fn into_node_presence(self) -> NodePresence {
        NodePresence::new(self.node, self.presence)
    }
}

/// `text` with control characters as spaces (a node id from the command
/// line is not cleaned elsewhere).
fn single_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Milliseconds since the Unix epoch, by this machine's clock.
pub(super) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(members: &[&str], count: usize) -> Record {
        Record {
            expires_ms: 1_733_131_200_000,
            node: "node-a".into(),
            presence: Presence::new(count, members.iter().map(|m| m.to_string()).collect()),
        }
    }

    #[test]
    fn records_round_trip() {
        for r in [
            record(&[], 0),
            record(&[], 3),
            record(&["ada", "bob", "bob"], 4),
            record(&["with space", "ünïcødé 🎉"], 2),
        ] {
            assert_eq!(Record::decode(&r.encode()), Some(r.clone()), "{r:?}");
        }
        assert_eq!(
            record(&["ada", "bob"], 3).encode(),
            "p1\n1733131200000\n3\nnode-a\nada\nbob"
        );
    }

    #[test]
    fn a_node_id_with_a_line_break_stays_on_its_line() {
        let mut r = record(&["ada"], 1);
        r.node = "evil\nnode".into();
        let back = Record::decode(&r.encode()).unwrap();
        assert_eq!(back.node, "evil node");
        assert_eq!(back.presence.members, ["ada"]);
    }

    #[test]
    fn foreign_values_are_not_records() {
        for value in [
            "",
            "p2\n1\n1\nn",
            "p1",
            "p1\nsoon\n1\nn",
            "p1\n1\n-1\nn",
            "p1\n1\n1",
        ] {
            assert_eq!(Record::decode(value), None, "{value:?}");
        }
    }

    #[test]
    fn a_record_expires_at_its_time() {
        let r = record(&["ada"], 1);
        assert!(!r.is_expired(r.expires_ms - 1));
        assert!(r.is_expired(r.expires_ms));
        assert!(r.is_expired(r.expires_ms + 15_000));
        let now = now_ms();
        assert!(now > 1_700_000_000_000, "the clock reads {now}");
    }

    #[test]
    fn a_count_below_the_names_is_raised_to_them() {
        let r = Record::decode("p1\n5\n1\nn\na\nb").unwrap();
        assert_eq!(r.presence.count, 2);
    }
}

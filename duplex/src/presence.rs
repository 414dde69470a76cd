//! Presence: who is in a room, on this node and on every node.
//!
//! A member can join a room with a display name
//! ([`Session::join_as`](crate::Session::join_as)); a plain
//! [`Session::join`](crate::Session::join) makes an anonymous member.
//! Anonymous members are counted but not listed: a [`Presence`]'s
//! `members` holds the names of the named ones, so `count` may be larger
//! than `members.len()`.
//!
//! [`Rooms::presence`](crate::Rooms::presence) answers for this node at
//! once; [`Rooms::presence_everywhere`](crate::Rooms::presence_everywhere)
//! adds what the [`Backplane`](crate::backplane::Backplane) knows of the
//! other nodes and says whether that part is missing ([`RoomPresence::partial`]).
//!
//! ```
//! use duplex::presence::display_name;
//!
//! assert_eq!(display_name("  ada\nlovelace "), Some("ada lovelace".to_string()));
//! assert_eq!(display_name("\u{7}"), None);
//! ```

/// The longest display name kept, in characters; longer ones are cut.
pub const MAX_NAME_CHARS: usize = 64;

/// A name fit for display and for the presence records other nodes read:
/// control characters become spaces, runs of whitespace at the ends are
/// trimmed, at most [`MAX_NAME_CHARS`] characters are kept; `None` when
/// nothing is left (the member is then anonymous).
pub fn display_name(raw: &str) -> Option<String> {
    let cleaned: String = raw
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let name: String = cleaned.trim().chars().take(MAX_NAME_CHARS).collect();
    let name = name.trim_end().to_string();
    (!name.is_empty()).then_some(name)
}

/// Who is in a room on one node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Presence {
    /// Every member, anonymous ones included.
    pub count: usize,
    /// The display names of the named members, sorted (a name two members
    /// share appears twice).
    pub members: Vec<String>,
}

impl Presence {
    /// A presence from its parts (the names are sorted here).
    pub fn new(count: usize, mut members: Vec<String>) -> Presence {
        members.sort();
        Presence {
            count: count.max(members.len()),
            members,
        }
    }
}

/// Who is in a room on another node, as its backplane reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodePresence {
    /// The node's name (its `--node-id`).
    pub node: String,
    /// Its members of the room.
    pub presence: Presence,
}

impl NodePresence {
    /// One node's report.
    pub fn new(node: impl Into<String>, presence: Presence) -> NodePresence {
        NodePresence {
            node: node.into(),
            presence,
        }
    }
}

/// Who is in a room across every node: this node's members and what the
/// backplane reported of the others.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RoomPresence {
    /// Every member on every node reported, anonymous ones included.
    pub count: usize,
    /// The display names of the named members, sorted.
    pub members: Vec<String>,
    /// How many nodes have members in the room (this one included).
    pub nodes: usize,
    /// The other nodes' members are missing (the backplane is down or
    /// does not report presence): only this node's are counted.
    pub partial: bool,
}

impl RoomPresence {
    /// This node's members plus the other nodes' (`None`: unknown, so
    /// the result is partial).
    pub fn merge(local: Presence, others: Option<Vec<NodePresence>>) -> RoomPresence {
        let partial = others.is_none();
        let others = others.unwrap_or_default();
        let mut members = local.members;
        let mut count = local.count;
        let mut nodes = usize::from(local.count > 0);
        for other in others {
            if other.presence.count == 0 {
                continue;
            }
            nodes += 1;
            count += other.presence.count;
            members.extend(other.presence.members);
        }
        members.sort();
        RoomPresence {
            count,
            members,
            nodes,
            partial,
        }
    }

    /// As JSON (what `duplex serve` answers on `GET /presence/<room>`):
    /// `{"room":..,"count":N,"members":[..],"nodes":K,"partial":bool}`.
    pub fn to_json(&self, room: &str) -> String {
        let mut json = String::from("{\"room\":");
        push_json_string(&mut json, room);
        json.push_str(&format!(",\"count\":{},\"members\":[", self.count));
        for (i, name) in self.members.iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            push_json_string(&mut json, name);
        }
        json.push_str(&format!(
            "],\"nodes\":{},\"partial\":{}}}",
            self.nodes, self.partial
        ));
        json
    }
}

/// Appends `text` as a JSON string literal.
fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_are_single_line_bounded_and_trimmed() {
        assert_eq!(display_name("bob"), Some("bob".into()));
        assert_eq!(display_name(" a\tb\r\nc "), Some("a b  c".into()));
        assert_eq!(display_name(""), None);
        assert_eq!(display_name(" \n\u{0}\u{7f} "), None);
        let long = "é".repeat(100);
        assert_eq!(display_name(&long).unwrap().chars().count(), MAX_NAME_CHARS);
        let cut = format!("{} x", "a".repeat(MAX_NAME_CHARS - 1));
        assert_eq!(display_name(&cut), Some("a".repeat(MAX_NAME_CHARS - 1)));
    }

    #[test]
    fn merging_counts_nodes_with_members_and_marks_unknown_as_partial() {
        let local = Presence::new(2, vec!["zed".into()]);
        let others = vec![
            NodePresence::new("b", Presence::new(2, vec!["amy".into(), "bo".into()])),
            NodePresence::new("c", Presence::new(0, vec![])),
        ];
        let merged = RoomPresence::merge(local.clone(), Some(others));
        assert_eq!(merged.count, 4);
        assert_eq!(merged.members, ["amy", "bo", "zed"]);
        assert_eq!(merged.nodes, 2);
        assert!(!merged.partial);
        let alone = RoomPresence::merge(local, None);
        assert_eq!((alone.count, alone.nodes, alone.partial), (2, 1, true));
        let empty = RoomPresence::merge(Presence::default(), Some(vec![]));
        assert_eq!((empty.count, empty.nodes), (0, 0));
    }

    #[test]
    fn json_escapes_names() {
        let p = RoomPresence::merge(Presence::new(2, vec!["a\"b\\c".into()]), Some(Vec::new()));
        assert_eq!(
            p.to_json("r\u{1}"),
            r#"{"room":"r\u0001","count":2,"members":["a\"b\\c"],"nodes":1,"partial":false}"#
        );
    }
}

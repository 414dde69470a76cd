//! What a group of chat members got from each other: waiting for full
//! delivery, the checks every member must pass, and the count of what
//! was missed, between members of one node and across nodes, to compare
//! with the backplane's own loss counters.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write;
use std::time::Duration;

use tokio::time::Instant;

use super::chat::ChatClient;
use super::node::Stats;

/// The names of the members of `room`.
pub fn members(clients: &[ChatClient], room: &str) -> Vec<String> {
    clients
        .iter()
        .filter(|c| c.room == room)
        .map(|c| c.name.clone())
        .collect()
}

/// Panics unless every member passes [`ChatClient::assert_clean`].
pub fn assert_all_clean(clients: &[ChatClient]) {
    for client in clients {
        client.assert_clean(&members(clients, &client.room));
    }
}

/// Panics unless no member's connection has ended.
pub fn assert_none_closed(clients: &[ChatClient]) {
    for client in clients {
        assert_eq!(client.end(), None, "{}: its connection ended", client.name);
    }
}

/// The other members of `client`'s room that `keep` selects.
fn peers<'a>(
    clients: &'a [ChatClient],
    client: &'a ChatClient,
    keep: impl Fn(&ChatClient) -> bool + 'a,
) -> impl Iterator<Item = &'a ChatClient> + 'a {
    clients
        .iter()
        .filter(move |o| o.room == client.room && o.name != client.name && keep(o))
}

/// Waits until every member has the last message of every other member
/// of its room that `keep(receiver, sender)` selects, at most `limit`;
/// panics with what is missing.
pub async fn wait_last_delivered(
    clients: &[ChatClient],
    limit: Duration,
    keep: impl Fn(&ChatClient, &ChatClient) -> bool,
) {
    let start = Instant::now();
    loop {
        let mut waiting = String::new();
        for client in clients {
            for sender in peers(clients, client, |s| keep(client, s)) {
                let Some(last) = sender.sent().checked_sub(1) else {
                    continue;
                };
                if !client.inbox(|i| i.has(&sender.name, last)) {
                    let _ = write!(waiting, "{}<-{}:{last} ", client.name, sender.name);
                }
            }
        }
        if waiting.is_empty() {
            return;
        }
        if start.elapsed() > limit {
            panic!("not delivered within {limit:?}: {waiting}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until every member has every message of every other member of
/// its room, at most `limit`.
pub async fn wait_all_delivered(clients: &[ChatClient], limit: Duration) {
    let start = Instant::now();
    loop {
        let losses = Losses::of(clients);
        if losses.local == 0 && losses.cross == 0 {
            return;
        }
        if start.elapsed() > limit {
            panic!("not everything delivered within {limit:?}: {losses:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What the members missed of each other's messages.
#[derive(Debug, Default)]
pub struct Losses {
    /// Messages missed by a member from a member on the same node.
    pub local: usize,
    /// Messages missed across nodes, counted once per receiving node (a
    /// node receives a room's message once for all its members).
    pub cross: usize,
    /// `cross`, by (sender's node, receiving node).
    pub between: BTreeMap<(usize, usize), usize>,
    /// Cross-node messages missed by every other node of their room
    /// (never left the sender's node, or lost everywhere).
    pub everywhere: usize,
    /// Receiving nodes whose members disagree about a cross-node message
    /// (one got it, another did not): should be empty.
    pub disagreements: Vec<String>,
}

impl Losses {
    /// Counts what `clients` missed of each other's sent messages.
    pub fn of(clients: &[ChatClient]) -> Losses {
        let mut losses = Losses::default();
        for sender in clients {
            let sent = sender.sent();
            // The sequence numbers each receiving member missed.
            let mut missed_at: BTreeMap<usize, Vec<(String, HashSet<u64>)>> = BTreeMap::new();
            for receiver in peers(clients, sender, |_| true) {
                let missing: HashSet<u64> = receiver
                    .missing_from(&sender.name, sent)
                    .into_iter()
                    .collect();
                if receiver.node == sender.node {
                    losses.local += missing.len();
                } else {
                    missed_at
                        .entry(receiver.node)
                        .or_default()
                        .push((receiver.name.clone(), missing));
                }
            }
            let remote_nodes = missed_at.len();
            let mut missed_by_nodes: BTreeMap<u64, usize> = BTreeMap::new();
            for (node, receivers) in &missed_at {
                let first = &receivers[0].1;
                for (name, missing) in &receivers[1..] {
                    if missing != first {
                        losses.disagreements.push(format!(
                            "node {node}: {} and {name} missed different messages of {}",
                            receivers[0].0, sender.name
                        ));
                    }
                }
                losses.cross += first.len();
                *losses.between.entry((sender.node, *node)).or_default() += first.len();
                for &seq in first {
                    *missed_by_nodes.entry(seq).or_default() += 1;
                }
            }
            losses.everywhere += missed_by_nodes
                .values()
                .filter(|&&n| n == remote_nodes)
                .count();
        }
        losses
    }

    /// Messages missed between these two nodes (either way).
    pub fn between_nodes(&self, a: usize, b: usize) -> usize {
        self.between.get(&(a, b)).copied().unwrap_or(0)
            + self.between.get(&(b, a)).copied().unwrap_or(0)
    }
}

/// Panics unless the backplane's counters account for every cross-node
/// message the members missed: each message dropped at its sender's node
/// is missed by the `remote_nodes` other nodes of its room, and each
/// message lost in transit is counted by the node that missed it.
pub fn assert_losses_counted(losses: &Losses, stats: &[Stats], remote_nodes: u64) {
    let dropped: u64 = stats.iter().map(Stats::dropped).sum();
    let lost: u64 = stats.iter().map(|s| s.lost).sum();
    assert!(
        losses.disagreements.is_empty(),
        "members of one node disagree: {:?}",
        losses.disagreements
    );
    assert_eq!(
        dropped * remote_nodes + lost,
        losses.cross as u64,
        "counted losses (dropped {dropped} x {remote_nodes} nodes + lost {lost}) differ from \
         what the members missed across nodes ({losses:?}); stats: {stats:#?}"
    );
}

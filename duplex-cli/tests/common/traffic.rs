//! Steady chat traffic while a test breaks things: every member of the
//! given groups sends one numbered message per [`PERIOD`], for a time or
//! until a condition holds, and the check that cross-node delivery has
//! resumed since a moment.
#![allow(dead_code)]

use std::time::Duration;

use tokio::time::Instant;

use super::chat::ChatClient;

/// The time between two messages of one member.
pub const PERIOD: Duration = Duration::from_millis(20);

/// How often [`send_until`] evaluates its condition.
const CHECK_EVERY: Duration = Duration::from_millis(100);

/// Sends one message from every member; panics when a send fails (a
/// member's connection must not end during these tests unless the test
/// stops its sending first).
pub async fn send_round(groups: &mut [Vec<ChatClient>]) {
    for client in groups.iter_mut().flatten() {
        if let Err(e) = client.send_next().await {
            panic!("{}: send {} failed: {e}", client.name, client.sent());
        }
    }
}

/// Sends rounds for `time`.
pub async fn send_for(groups: &mut [Vec<ChatClient>], time: Duration) {
    let end = Instant::now() + time;
    let mut tick = tokio::time::interval(PERIOD);
    while Instant::now() < end {
        tick.tick().await;
        send_round(groups).await;
    }
}

/// Sends rounds until `done` holds (checked every 100 ms), at most
/// `limit`; returns how long it took, or `None` when it never held.
pub async fn send_until(
    groups: &mut [Vec<ChatClient>],
    limit: Duration,
    mut done: impl FnMut(&[Vec<ChatClient>]) -> bool,
) -> Option<Duration> {
    let start = Instant::now();
    let mut tick = tokio::time::interval(PERIOD);
    let mut checked = start;
    loop {
        tick.tick().await;
        send_round(groups).await;
        if checked.elapsed() >= CHECK_EVERY {
            checked = Instant::now();
            if done(groups) {
                return Some(start.elapsed());
            }
        }
        if start.elapsed() > limit {
            return if done(groups) {
                Some(start.elapsed())
            } else {
                None
            };
        }
    }
}

/// Whether some member on node `to` received a message that a member of
/// its room on node `from` sent at or after `since`.
pub fn delivered_since(clients: &[ChatClient], since: Instant, from: usize, to: usize) -> bool {
    clients.iter().filter(|r| r.node == to).any(|receiver| {
        clients
            .iter()
            .filter(|s| s.node == from && s.room == receiver.room && s.name != receiver.name)
            .any(|sender| {
                let first = sender.first_sent_after(since);
                receiver.inbox(|i| i.seqs_from(&sender.name).iter().any(|&seq| seq >= first))
            })
    })
}

/// Whether, between every two of `nodes` and both ways, a message sent
/// at or after `since` was delivered.
pub fn all_delivered_since(clients: &[ChatClient], since: Instant, nodes: &[usize]) -> bool {
    nodes.iter().all(|&from| {
        nodes
            .iter()
            .filter(|&&to| to != from)
            .all(|&to| delivered_since(clients, since, from, to))
    })
}

/// Runs a blocking step (a Redis command, a stats request, a restart)
/// from an async test without stalling the members' reader tasks.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

//! The publisher task: the node's messages for other nodes, in order, on
//! one connection.
//!
//! Messages wait in a bounded queue (filled by
//! [`Backplane::forward`](crate::backplane::Backplane::forward), which
//! never waits) and go out in batches of up to [`BATCH`], one pipeline and
//! one round trip each. A sequence number is given to a message only when
//! it goes out, so a message dropped before (queue full, Redis down) is
//! counted once, at this node, and leaves no gap for the receivers to
//! count again. A batch whose pipeline fails may or may not have reached
//! Redis: it is not sent again (that could duplicate or reorder), and what
//! did not arrive shows as a gap in the sequence at the receivers. An idle
//! connection is probed with `PING` like the subscriber's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use duplex_proto::Message;
use tokio::sync::mpsc;

use super::link::{Link, Publish};
use super::{Backoff, Episode, Shared};
use crate::backplane::envelope::Envelope;
use crate::backplane::sequence::Sending;

/// The most messages in one pipeline: large enough that a burst costs few
/// round trips, small enough that one batch does not hold up the next.
const BATCH: usize = 256;

/// How often unused sequence counters are dropped.
const PRUNE_EVERY: Duration = Duration::from_secs(10);

/// One message on its way to the other nodes.
pub(super) struct Outgoing {
    pub(super) room: Arc<str>,
    pub(super) message: Message,
    /// When it was published (the lag the receivers measure starts here).
    pub(super) sent_us: u64,
}

pub(super) async fn run(shared: Arc<Shared>, mut queue: mpsc::Receiver<Outgoing>) {
    let options = &shared.options;
    let mut backoff = Backoff::new(options.max_backoff);
    let mut episode = Episode::new("publishing");
    let mut sending = Sending::default();
    let mut pruned = Instant::now();
    let mut batch = Vec::with_capacity(BATCH);
    let mut commands = Vec::with_capacity(BATCH * 2);
    let mut first = true;
    loop {
        let mut link = match connect(&shared, &mut queue).await {
            Ok(link) => link,
            Err(error) => {
                shared.set_health(Some(false), None);
                episode.down(&shared.node_id, &error);
                if !drop_while_waiting(&shared, &mut queue, backoff.wait()).await {
                    return;
                }
                continue;
            }
        };
        if !first {
            shared.stats.add_reconnect();
        }
        first = false;
        backoff.reset();
        shared.set_health(Some(true), None);
        episode.up(&shared.node_id, &shared.stats);
        // A cluster connection reconnects its shards itself, and a PING
        // goes to one random shard: probing would give up every shard for
        // one that is down.
        let cluster = shared.endpoint.is_cluster();
        let mut probe = tokio::time::interval(options.probe);
        probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        probe.reset();
        loop {
            batch.clear();
            // An idle connection is probed, so that one Redis dropped is
            // replaced before the next message needs it.
            let received = tokio::select! {
                n = queue.recv_many(&mut batch, BATCH) => n,
                _ = probe.tick(), if !cluster => {
                    match link.probe(options.timeout).await {
                        Ok(()) => continue,
                        Err(error) => fail(&shared, &mut episode, &error),
                    }
                    break;
                }
            };
            if received == 0 {
                return; // the backplane is gone
            }
            probe.reset();
            let now = Instant::now();
            if now.duration_since(pruned) >= PRUNE_EVERY {
                sending.prune(now);
                pruned = now;
            }
            commands.clear();
            for outgoing in batch.drain(..) {
                let envelope = Envelope {
                    instance: shared.instance,
                    seq: sending.next(&outgoing.room, now),
                    sent_us: outgoing.sent_us,
                    message: outgoing.message,
                }
                .encode();
                if options.history > 0 {
                    commands.push(Publish::History {
                        key: shared.names.history(&outgoing.room).into(),
                        len: options.history,
                        envelope: envelope.clone(),
                    });
                }
                commands.push(Publish::Message {
                    channel: shared.names.channel(&outgoing.room).into(),
                    envelope,
                });
            }
            match link.publish(&commands, options.timeout).await {
                Ok(sent) => shared.stats.add_forwarded(sent),
                Err(error) => {
                    fail(&shared, &mut episode, &error);
                    break;
                }
            }
        }
    }
}

/// The connection is given up: say so once, stop accepting messages.
fn fail(shared: &Shared, episode: &mut Episode, error: &dyn std::fmt::Display) {
    shared.set_health(Some(false), None);
    episode.down(&shared.node_id, error);
}

/// Connects, dropping (and counting) what is queued meanwhile: those
/// messages would be late, and order must not depend on how long a
/// connection attempt takes.
async fn connect(
    shared: &Shared,
    queue: &mut mpsc::Receiver<Outgoing>,
) -> redis::RedisResult<Link> {
    let connecting = shared.endpoint.connect(shared.options.timeout, None);
    tokio::pin!(connecting);
    loop {
        tokio::select! {
            result = &mut connecting => return result,
            Some(_) = queue.recv() => shared.stats.add_dropped_down(1),
        }
    }
}

/// Waits `wait`, dropping and counting what arrives meanwhile; `false`
/// when the backplane is gone.
async fn drop_while_waiting(
    shared: &Shared,
    queue: &mut mpsc::Receiver<Outgoing>,
    wait: Duration,
) -> bool {
    let sleep = tokio::time::sleep(wait);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            _ = &mut sleep => return true,
            message = queue.recv() => match message {
                Some(_) => shared.stats.add_dropped_down(1),
                None => return false,
            },
        }
    }
}

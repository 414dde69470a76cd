//! The presence task: this node's members of each room, kept in Redis
//! for the other nodes, and the reads of theirs.
//!
//! Each room has a hash `PREFIX:{ROOM}:presence` (the room's hash tag, so
//! a cluster keeps it on the room's shard) with one field per node: its
//! instance id in hex, valued with a [`Record`] that expires after the
//! TTL ([`RedisOptions::presence_ttl`](super::RedisOptions::presence_ttl),
//! 15 s by default).
//!
//! - A room whose membership changed is written at most [`DEBOUNCE`]
//!   later (changes in between are merged into one write); its field is
//!   deleted when its last local member has left.
//! - Every room with local members is written again every third of the
//!   TTL, and the key's own expiry (`PEXPIRE`, one TTL) renewed, so a room
//!   every node abandoned vanishes from Redis by itself.
//! - A crashed node's records stop being renewed: readers skip them once
//!   expired, and delete them (only if still unchanged).
//!
//! The task has a connection of its own, which the readers share while it
//! is up. Nothing here runs on a connection's task: a change only marks
//! the room, and a read fails fast (`None`: partial) while Redis is down.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::join_all;
use tokio::sync::Notify;
use tokio::time::{timeout, Instant};

use super::link::Link;
use super::presence_record::{now_ms, Record};
use super::{Backoff, Shared};
use crate::presence::NodePresence;

/// How long after a membership change the room is written: joins and
/// leaves in between cost one write.
pub(super) const DEBOUNCE: Duration = Duration::from_millis(250);

/// The most rooms written at once (each its own small pipeline, all on
/// one multiplexed connection).
const CHUNK: usize = 256;

/// Deletes a field only if it still holds the value read: a node that
/// renewed its record just now keeps it.
const DELETE_IF_UNCHANGED: &str = "if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then \
     return redis.call('HDEL', KEYS[1], ARGV[1]) else return 0 end";

/// What the backplane's handle tells the task, without waiting.
#[derive(Debug, Default)]
pub(super) struct Signals {
    /// Rooms whose membership changed since the last write.
    dirty: Mutex<HashSet<String>>,
    wake: Notify,
    stop: AtomicBool,
}

impl Signals {
    /// `room`'s membership changed.
    pub(super) fn changed(&self, room: &str) {
        let mut dirty = self.dirty.lock().unwrap_or_else(|p| p.into_inner());
        if !dirty.contains(room) {
            dirty.insert(room.to_string());
        }
        drop(dirty);
        self.wake.notify_one();
    }

    /// The node is going away: delete this node's records and stop.
    pub(super) fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn take_dirty(&self) -> Vec<String> {
        let mut dirty = self.dirty.lock().unwrap_or_else(|p| p.into_inner());
        dirty.drain().collect()
    }
}

/// This node's field in every presence hash.
fn field(instance: u64) -> String {
    format!("{instance:016x}")
}

pub(super) async fn run(shared: Arc<Shared>, signals: Arc<Signals>) {
    let options = &shared.options;
    let mut backoff = Backoff::new(options.max_backoff);
    // Rooms whose field this node believes is in Redis.
    let mut written: HashSet<String> = HashSet::new();
    let mut down_since: Option<std::time::Instant> = None;
    while !signals.stopped() {
        let failure = match shared.endpoint.connect(options.timeout, None).await {
            Ok(mut link) => {
                backoff.reset();
                if let Some(since) = down_since.take() {
                    tracing::warn!(
                        node = shared.node_id,
                        "redis backplane: presence back after {:.1} s",
                        since.elapsed().as_secs_f64()
                    );
                }
                *shared
                    .presence_link
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(link.clone());
                let failure = serve(&shared, &signals, &mut link, &mut written).await;
                *shared
                    .presence_link
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = None;
                match failure {
                    None => {
                        remove_all(&shared, &mut link, &written).await;
                        return;
                    }
                    Some(error) => error,
                }
            }
            Err(error) => error.to_string(),
        };
        if down_since.is_none() {
            down_since = Some(std::time::Instant::now());
            tracing::warn!(
                node = shared.node_id,
                "redis backplane: presence down ({failure}); presence answers \
                 with this node's members only until it is back"
            );
        }
        let wait = backoff.wait();
        let _ = timeout(wait, async {
            while !signals.stopped() {
                signals.wake.notified().await;
            }
        })
        .await;
    }
}

/// Keeps the records up to date on one connection; `None` when told to
/// stop, else why the connection was given up.
async fn serve(
    shared: &Shared,
    signals: &Signals,
    link: &mut Link,
    written: &mut HashSet<String>,
) -> Option<String> {
    let every = shared.options.presence_ttl / 3;
    // The first tick is at once: after a (re)connect everything is
    // written again, as records may have expired meanwhile.
    let mut heartbeat = tokio::time::interval(every);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut flush_at: Option<Instant> = None;
    loop {
        let at = flush_at;
        let flush = async move {
            match at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let rooms = tokio::select! {
            _ = heartbeat.tick() => {
                let _ = signals.take_dirty();
                flush_at = None;
                let mut rooms: HashSet<String> = shared
                    .local
                    .get()
                    .map(|local| local.room_names())
                    .unwrap_or_default()
                    .into_iter()
                    .collect();
                rooms.extend(written.iter().cloned());
                if rooms.is_empty() {
                    // Nothing to renew: probe, so that a dead connection is
                    // replaced before a read needs it.
                    match link.probe(shared.options.timeout).await {
                        Ok(()) => continue,
                        Err(error) => return Some(error),
                    }
                }
                rooms.into_iter().collect()
            }
            _ = signals.wake.notified() => {
                if signals.stopped() {
                    return None;
                }
                flush_at.get_or_insert_with(|| Instant::now() + DEBOUNCE);
                continue;
            }
            _ = flush => {
                flush_at = None;
                signals.take_dirty()
            }
        };
        if let Err(error) = write(shared, link, &rooms, written).await {
            return Some(error);
        }
    }
}

/// Writes this node's record of each room (or deletes it, for a room
/// without local members).
async fn write(
    shared: &Shared,
    link: &Link,
    rooms: &[String],
    written: &mut HashSet<String>,
) -> Result<(), String> {
    let Some(local) = shared.local.get() else {
        return Ok(());
    };
    let field = field(shared.instance);
    let ttl_ms = shared.options.presence_ttl.as_millis() as u64;
    for chunk in rooms.chunks(CHUNK) {
        let writes = chunk.iter().map(|room| {
            let presence = local.presence(room);
            let key = shared.names.presence(room);
            let keep = presence.count > 0;
            let mut pipe = redis::pipe();
            if keep {
                let record = Record {
                    expires_ms: now_ms() + ttl_ms,
                    node: shared.node_id.clone(),
                    presence,
                };
                pipe.cmd("HSET")
                    .arg(&key)
                    .arg(&field)
                    .arg(record.encode())
                    .ignore();
                pipe.cmd("PEXPIRE").arg(&key).arg(ttl_ms).ignore();
            } else {
                pipe.cmd("HDEL").arg(&key).arg(&field).ignore();
            }
            let mut link = link.clone();
            async move {
                let result = timeout(shared.options.timeout, link.query_pipe(&pipe)).await;
                (room, keep, result)
            }
        });
        for (room, keep, result) in join_all(writes).await {
            match result {
                Ok(Ok(())) if keep => {
                    written.insert(room.clone());
                }
                Ok(Ok(())) => {
                    written.remove(room);
                }
                Ok(Err(error)) => return Err(error.to_string()),
                Err(_) => return Err("no answer in time".into()),
            }
        }
    }
    Ok(())
}

/// Deletes every record of this node (at shutdown; best effort, bounded
/// by the timeout: what is left expires with its TTL).
async fn remove_all(shared: &Shared, link: &mut Link, written: &HashSet<String>) {
    let field = field(shared.instance);
    let deletes = written.iter().map(|room| {
        let mut delete = redis::cmd("HDEL");
        delete.arg(shared.names.presence(room)).arg(&field);
        let mut link = link.clone();
        async move { link.query::<redis::Value>(&delete).await }
    });
    let _ = timeout(shared.options.timeout, join_all(deletes)).await;
}

/// The other nodes' records of `room`; `None` while Redis is out of
/// reach (the connection is down, or the read fails or times out).
pub(super) async fn read(shared: Arc<Shared>, room: String) -> Option<Vec<NodePresence>> {
    let link = shared
        .presence_link
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let mut link = link?;
    let key = shared.names.presence(&room);
    let mut get = redis::cmd("HGETALL");
    get.arg(&key);
    let values: HashMap<Vec<u8>, Vec<u8>> = timeout(shared.options.timeout, link.query(&get))
        .await
        .ok()?
        .ok()?;
    let own = field(shared.instance);
    let now = now_ms();
    let mut nodes = Vec::new();
    for (node_field, value) in values {
        if node_field == own.as_bytes() {
            continue; // this node answers for itself, fresher
        }
        let Some(record) = std::str::from_utf8(&value).ok().and_then(Record::decode) else {
            continue; // not a record of ours
        };
        if !record.is_expired(now) {
            nodes.push(record.into_node_presence());
            continue;
        }
        // A node that stopped renewing: gone. Tidy up, without waiting.
        let mut delete = redis::cmd("EVAL");
        delete
            .arg(DELETE_IF_UNCHANGED)
            .arg(1)
            .arg(&key)
            .arg(node_field)
            .arg(value);
        let mut link = link.clone();
        let limit = shared.options.timeout;
        tokio::spawn(async move {
            let _ = timeout(limit, link.query::<redis::Value>(&delete)).await;
        });
    }
    Some(nodes)
}

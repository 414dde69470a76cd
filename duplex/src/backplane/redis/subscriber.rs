//! The subscriber task: the node's subscriptions, kept on one RESP3
//! connection, and the messages that arrive on it.
//!
//! The task is told which rooms have local members (in the order the
//! registry saw them appear and vanish) and keeps three sets: the rooms
//! wanted, the rooms lingering after their last member left, and the
//! channels subscribed on the current connection. After a reconnect it
//! subscribes everything wanted or lingering again, in one command.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use redis::{PushInfo, PushKind, Value};
use tokio::sync::{mpsc, Notify};

use super::link::{answered, Link, PushSink};
use super::{Backoff, Episode, Shared};
use crate::backplane::envelope::{now_us, Envelope};
use crate::backplane::sequence::Verdict;

/// What the registry tells the subscriber.
#[derive(Debug)]
pub(super) enum Command {
    /// A room got its first local member.
    Subscribe(String),
    /// A room's last local member left.
    Unsubscribe(String),
    /// A room just appeared here: fetch its last `count` stored messages.
    History(String, usize),
    /// The node is going away: drop every subscription now.
    Shutdown,
}

/// How often lingering rooms are checked.
const LINGER_TICK: Duration = Duration::from_millis(250);

/// The most channels in one `SUBSCRIBE`.
const CHUNK: usize = 1000;

#[derive(Default)]
struct Rooms {
    wanted: HashSet<String>,
    /// Rooms without local members, and when to unsubscribe them.
    lingering: HashMap<String, Instant>,
    /// Rooms subscribed on the current connection.
    subscribed: HashSet<String>,
    /// Rooms waiting for their stored history, and how much of it.
    histories: Vec<(String, usize)>,
}

impl Rooms {
    /// Applies a command; `false` for shutdown.
    fn apply(&mut self, command: Command, linger: Duration) -> bool {
        match command {
            Command::Subscribe(room) => {
                self.lingering.remove(&room);
                self.wanted.insert(room);
            }
            Command::Unsubscribe(room) => {
                if self.wanted.remove(&room) {
                    self.lingering.insert(room, Instant::now() + linger);
                }
            }
            Command::History(room, count) => self.histories.push((room, count)),
            Command::Shutdown => return false,
        }
        true
    }

    /// Applies what the command channel gave; `false` for shutdown or a
    /// closed channel (the backplane is gone).
    fn follow(&mut self, command: Option<Command>, linger: Duration) -> bool {
        command.is_some_and(|command| self.apply(command, linger))
    }

    /// Rooms wanted or lingering that the connection lacks.
    fn missing(&self) -> Vec<String> {
        self.wanted
            .iter()
            .chain(self.lingering.keys())
            .filter(|room| !self.subscribed.contains(*room))
            .cloned()
            .collect()
    }

    /// Lingering rooms whose time is up.
    fn expired(&mut self, now: Instant) -> Vec<String> {
        let expired: Vec<String> = self
            .lingering
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(room, _)| room.clone())
            .collect();
        for room in &expired {
            self.lingering.remove(room);
        }
        expired
    }
}

pub(super) async fn run(shared: Arc<Shared>, mut commands: mpsc::UnboundedReceiver<Command>) {
    let options = &shared.options;
    let linger = options.linger;
    let mut rooms = Rooms::default();
    let mut backoff = Backoff::new(options.max_backoff);
    let mut episode = Episode::new("receiving");
    let mut first = true;
    loop {
        let disconnected = Arc::new(Notify::new());
        // Connect, keeping track of joins and leaves meanwhile.
        let connecting = shared
            .endpoint
            .connect(options.timeout, Some(push_sink(&shared, &disconnected)));
        tokio::pin!(connecting);
        let connected = loop {
            tokio::select! {
                result = &mut connecting => break result,
                command = commands.recv() => {
                    if !rooms.follow(command, linger) {
                        return shutdown(&shared);
                    }
                    no_history(&shared, &mut rooms);
                }
            }
        };
        rooms.subscribed.clear();
        let outcome = match connected {
            Ok(mut link) => {
                if !first {
                    shared.stats.add_reconnect();
                }
                first = false;
                serve(
                    &shared,
                    &mut link,
                    &mut rooms,
                    &mut commands,
                    &disconnected,
                    &mut episode,
                    &mut backoff,
                )
                .await
            }
            Err(error) => Outcome::Failed(error.to_string()),
        };
        no_history(&shared, &mut rooms);
        match outcome {
            Outcome::Shutdown => return shutdown(&shared),
            Outcome::Failed(error) => {
                shared.set_health(None, Some(false));
                shared.stats.set_subscriptions(0);
                episode.down(&shared.node_id, &error);
            }
        }
        // Wait before the next attempt, still following the registry.
        let sleep = tokio::time::sleep(backoff.wait());
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => break,
                command = commands.recv() => {
                    if !rooms.follow(command, linger) {
                        return shutdown(&shared);
                    }
                    no_history(&shared, &mut rooms);
                }
            }
        }
    }
}

enum Outcome {
    Shutdown,
    Failed(String),
}

fn shutdown(shared: &Shared) {
    shared.set_health(None, Some(false));
    shared.stats.set_subscriptions(0);
}

/// Runs one connection until it fails or the node shuts down.
async fn serve(
    shared: &Shared,
    link: &mut Link,
    rooms: &mut Rooms,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    disconnected: &Notify,
    episode: &mut Episode,
    backoff: &mut Backoff,
) -> Outcome {
    let options = &shared.options;
    if let Err(error) = sync(shared, link, rooms).await {
        return Outcome::Failed(error);
    }
    load_histories(shared, link, rooms).await;
    backoff.reset();
    shared.set_health(None, Some(true));
    episode.up(&shared.node_id, &shared.stats);
    // Not on a cluster: see the publisher; redis-rs reconnects and
    // resubscribes each shard there.
    let mut probe = tokio::time::interval(options.probe);
    probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut linger_tick = tokio::time::interval(LINGER_TICK);
    loop {
        tokio::select! {
            command = commands.recv() => {
                if !rooms.follow(command, options.linger) {
                    return Outcome::Shutdown;
                }
                // Take every command already waiting, then subscribe once.
                while let Ok(command) = commands.try_recv() {
                    if !rooms.apply(command, options.linger) {
                        return Outcome::Shutdown;
                    }
                }
                if let Err(error) = sync(shared, link, rooms).await {
                    return Outcome::Failed(error);
                }
                load_histories(shared, link, rooms).await;
            }
            _ = linger_tick.tick() => {
                let expired = rooms.expired(Instant::now());
                if !expired.is_empty() {
                    if let Err(error) = drop_rooms(shared, link, rooms, &expired).await {
                        return Outcome::Failed(error);
                    }
                }
            }
            _ = probe.tick(), if !shared.endpoint.is_cluster() => {
                if let Err(error) = link.probe(options.timeout).await {
                    return Outcome::Failed(error);
                }
            }
            _ = disconnected.notified() => return Outcome::Failed("connection lost".into()),
        }
    }
}

/// Subscribes what is missing on this connection.
async fn sync(shared: &Shared, link: &mut Link, rooms: &mut Rooms) -> Result<(), String> {
    let missing = rooms.missing();
    for chunk in missing.chunks(CHUNK) {
        let channels: Vec<String> = chunk.iter().map(|r| shared.names.channel(r)).collect();
        let channels: Vec<&str> = channels.iter().map(String::as_str).collect();
        answered(
            shared.options.timeout,
            "subscribe",
            link.subscribe(&channels),
        )
        .await?;
        rooms.subscribed.extend(chunk.iter().cloned());
    }
    shared.stats.set_subscriptions(rooms.subscribed.len());
    Ok(())
}

/// Fetches the stored history of the rooms that asked, after their
/// subscription is in place: a message is then in the history, or arrives
/// live, or both (the registry keeps it once). A room whose history
/// cannot be read gets none rather than waiting.
async fn load_histories(shared: &Shared, link: &mut Link, rooms: &mut Rooms) {
    for (room, count) in std::mem::take(&mut rooms.histories) {
        let mut read = redis::cmd("XREVRANGE");
        read.arg(shared.names.history(&room))
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(count);
        let reply = link.query::<redis::streams::StreamRangeReply>(&read);
        let stored =
            match answered(shared.options.timeout, "reading the room's history", reply).await {
                Ok(reply) => stored_envelopes(reply),
                Err(error) => {
                    tracing::warn!(room, "redis backplane: {error}; the member gets none");
                    Vec::new()
                }
            };
        if let Some(local) = shared.local.get() {
            local.history_loaded(&room, stored, shared.instance);
        }
    }
}

/// The envelopes of an `XREVRANGE` reply, oldest first; entries that are
/// not envelopes are skipped.
fn stored_envelopes(reply: redis::streams::StreamRangeReply) -> Vec<Envelope> {
    let mut stored: Vec<Envelope> = reply
        .ids
        .into_iter()
        .filter_map(|entry| match entry.map.get("e") {
            Some(Value::BulkString(bytes)) => Envelope::decode(Bytes::from(bytes.clone())).ok(),
            _ => None,
        })
        .collect();
    stored.reverse();
    stored
}

/// Without a connection, rooms that asked for history get none now.
fn no_history(shared: &Shared, rooms: &mut Rooms) {
    for (room, _) in std::mem::take(&mut rooms.histories) {
        if let Some(local) = shared.local.get() {
            local.history_loaded(&room, Vec::new(), shared.instance);
        }
    }
}

/// Unsubscribes rooms whose linger ran out, and forgets their senders.
async fn drop_rooms(
    shared: &Shared,
    link: &mut Link,
    rooms: &mut Rooms,
    expired: &[String],
) -> Result<(), String> {
    let channels: Vec<String> = expired.iter().map(|r| shared.names.channel(r)).collect();
    let channels: Vec<&str> = channels.iter().map(String::as_str).collect();
    answered(
        shared.options.timeout,
        "unsubscribe",
        link.unsubscribe(&channels),
    )
    .await?;
    let mut received = shared.received.lock().unwrap_or_else(|p| p.into_inner());
    for room in expired {
        rooms.subscribed.remove(room);
        received.forget(room);
    }
    shared.stats.set_subscriptions(rooms.subscribed.len());
    Ok(())
}

/// What the connection's reader calls with each push.
fn push_sink(shared: &Arc<Shared>, disconnected: &Arc<Notify>) -> PushSink {
    let shared = shared.clone();
    let disconnected = disconnected.clone();
    let cluster = shared.endpoint.is_cluster();
    Arc::new(move |push: PushInfo| match push.kind {
        PushKind::Message | PushKind::SMessage => receive(&shared, push.data),
        // A cluster connection reconnects its nodes (and their
        // subscriptions) itself; the probe covers what it cannot.
        PushKind::Disconnection if !cluster => disconnected.notify_one(),
        _ => {}
    })
}

/// One message from another node (or our own, which is skipped).
fn receive(shared: &Shared, data: Vec<Value>) {
    let mut data = data.into_iter();
    let (Some(Value::BulkString(channel)), Some(Value::BulkString(payload))) =
        (data.next(), data.next())
    else {
        return;
    };
    let Some(room) = std::str::from_utf8(&channel)
        .ok()
        .and_then(|c| shared.names.room_of(c))
    else {
        return;
    };
    let envelope = match Envelope::decode(Bytes::from(payload)) {
        Ok(envelope) => envelope,
        Err(error) => {
            shared.lost_warning.warn(|suppressed| {
                tracing::warn!(room, "redis backplane: a message that is not an envelope ({error}), dropped ({suppressed} more left out)");
            });
            return;
        }
    };
    if envelope.instance == shared.instance {
        return;
    }
    let verdict = shared
        .received
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .observe(room, envelope.instance, envelope.seq);
    match verdict {
        Verdict::Duplicate => return,
        Verdict::Deliver { lost: 0 } => {}
        Verdict::Deliver { lost } => {
            shared.stats.add_lost(lost);
            shared.lost_warning.warn(|suppressed| {
                tracing::warn!(
                    room,
                    "redis backplane: {lost} message(s) of another node never arrived \
                     (counted in `lost`; {suppressed} more such gaps left out of the log)"
                );
            });
        }
    }
    shared
        .stats
        .add_received(now_us().saturating_sub(envelope.sent_us));
    if let Some(local) = shared.local.get() {
        local.deliver(room, &envelope);
    }
}

//! The backplane under faults (issue 11): three `duplex serve` nodes on
//! one real Redis, node 0 behind an in-test TCP fault proxy, one room
//! with two members on every node sending steadily. Each fault in turn:
//! the proxy black-holes, resets or delays node 0's Redis connections;
//! Redis kills every pub/sub connection (`CLIENT KILL TYPE pubsub`),
//! pauses its clients (`CLIENT PAUSE`), blocks (`DEBUG SLEEP`), or is
//! killed and restarted. Through all of it:
//!
//! - local delivery goes on unchanged: members of one node get all of
//!   each other's messages, and no member is closed;
//! - every member's messages arrive in order, none twice, none its own;
//! - the node notices (`GET /backplane` says down) within [`DOWN_WITHIN`]
//!   where the fault lasts, and cross-node delivery resumes within
//!   [`HEAL_WITHIN`] of the fault's end;
//! - the backplane's loss counters (dropped at the sender's node, lost at
//!   the receiving node) add up to exactly what the members missed.

mod common;

use std::time::Duration;

use common::chat::ChatClient;
use common::delivery::{self, Losses};
use common::fault_proxy::FaultProxy;
use common::node::{room_channel, Node, Stats, PREFIX};
use common::redis::RedisServer;
use common::resp;
use common::traffic::{self, blocking};
use tokio::time::Instant;

/// The bound of one waiting step (start-up, final delivery).
const STEP: Duration = Duration::from_secs(15);
/// How long a lasting fault is held.
const HOLD: Duration = Duration::from_secs(3);
/// How soon a node must report its backplane down in a lasting fault.
const DOWN_WITHIN: Duration = Duration::from_secs(5);
/// How soon cross-node delivery must resume after a fault ends (the
/// guarantee says "within seconds").
const HEAL_WITHIN: Duration = Duration::from_secs(5);
/// The nodes; node 0 is the one behind the proxy.
const NODES: usize = 3;

/// One fault to inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// The proxy forwards nothing to or from node 0 for [`HOLD`].
    BlackHole,
    /// The proxy resets node 0's connections, and new ones, for [`HOLD`].
    Reset,
    /// The proxy delays node 0's traffic by 200 ms each way for [`HOLD`].
    Delay,
    /// Redis closes every node's subscriber connection, once.
    KillPubsub,
    /// Redis holds every client's commands for [`HOLD`].
    Pause,
    /// Redis blocks entirely for [`HOLD`].
    DebugSleep,
    /// Redis is killed and, after [`HOLD`], started again, empty.
    RestartRedis,
}

impl Fault {
    /// The nodes it cuts off from the others.
    fn affected(self) -> &'static [usize] {
        match self {
            Fault::BlackHole | Fault::Reset | Fault::Delay => &[0],
            _ => &[0, 1, 2],
        }
    }

    /// Whether the affected nodes must report the backplane down.
    fn reports_down(self) -> bool {
        matches!(self, Fault::BlackHole | Fault::Reset | Fault::RestartRedis)
    }

    /// Whether the affected nodes must have reconnected.
    fn reconnects(self) -> bool {
        matches!(
            self,
            Fault::BlackHole | Fault::Reset | Fault::KillPubsub | Fault::RestartRedis
        )
    }

    /// Whether nothing at all may be lost.
    fn lossless(self) -> bool {
        self == Fault::Delay
    }
}

/// Redis, the proxy, the nodes and the room's members.
struct Setup {
    redis: RedisServer,
    proxy: FaultProxy,
    nodes: Vec<Node>,
    /// One group: the room's members, two per node.
    groups: Vec<Vec<ChatClient>>,
}

async fn setup() -> Option<Setup> {
    let redis = RedisServer::start()?;
    let proxy = FaultProxy::start(&redis.addr());
    let nodes: Vec<Node> = blocking(|| {
        let nodes: Vec<Node> = (0..NODES)
            .map(|i| {
                let url = if i == 0 {
                    proxy.redis_url()
                } else {
                    redis.url()
                };
                Node::start(&url, &format!("n{i}"), &[])
            })
            .collect();
        for node in &nodes {
            node.wait_status("up", STEP);
        }
        nodes
    });
    let mut members = Vec::new();
    for i in 0..2 * NODES {
        let node = i % NODES;
        let base = format!("ws://{}", nodes[node].addr());
        members.push(ChatClient::join(&base, node, "faults", &format!("m{i}")).await);
    }
    let channel = room_channel(PREFIX, "faults");
    blocking(|| resp::wait_subscribers(&redis.addr(), &channel, NODES as i64, STEP));
    Some(Setup {
        redis,
        proxy,
        nodes,
        groups: vec![members],
    })
}

impl Setup {
    fn stats(&self) -> Vec<Stats> {
        blocking(|| self.nodes.iter().map(Node::stats).collect())
    }

    /// Starts the fault; returns a handle for a blocking one.
    fn apply(&mut self, fault: Fault) -> Option<std::thread::JoinHandle<()>> {
        let ms = HOLD.as_millis().to_string();
        match fault {
            Fault::BlackHole => self.proxy.black_hole(),
            Fault::Reset => self.proxy.reset(),
            Fault::Delay => self.proxy.delay(200),
            Fault::KillPubsub => {
                let killed = blocking(|| self.redis.command(&["CLIENT", "KILL", "TYPE", "pubsub"]));
                assert!(killed.int() >= NODES as i64, "CLIENT KILL: {killed:?}");
            }
            Fault::Pause => blocking(|| self.redis.command(&["CLIENT", "PAUSE", &ms, "ALL"]))
                .expect_ok("CLIENT PAUSE"),
            Fault::DebugSleep => {
                let mut conn = self.redis.connect();
                conn.set_reply_timeout(HOLD * 3).unwrap();
                let secs = HOLD.as_secs_f64().to_string();
                return Some(std::thread::spawn(move || {
                    conn.command(&["DEBUG", "SLEEP", &secs])
                        .expect("DEBUG SLEEP")
                        .expect_ok("DEBUG SLEEP");
                }));
            }
            Fault::RestartRedis => blocking(|| self.redis.kill()),
        }
        None
    }

    /// Ends the fault.
    fn heal(&mut self, fault: Fault, blocked: Option<std::thread::JoinHandle<()>>) {
        match fault {
            Fault::BlackHole | Fault::Reset | Fault::Delay => self.proxy.pass(),
            Fault::RestartRedis => blocking(|| self.redis.restart()),
            Fault::DebugSleep => blocking(|| blocked.unwrap().join().unwrap()),
            Fault::KillPubsub | Fault::Pause => {}
        }
    }
}

/// Runs one fault through the whole scenario.
async fn survive(fault: Fault) {
    let Some(mut s) = setup().await else {
        return;
    };
    let all: Vec<usize> = (0..NODES).collect();

    // Healthy traffic first.
    traffic::send_for(&mut s.groups, Duration::from_secs(1)).await;
    let start = Instant::now();
    let blocked = s.apply(fault);

    // The affected nodes notice a lasting fault.
    let mut down_after = None;
    if fault.reports_down() {
        let nodes = &s.nodes;
        down_after = traffic::send_until(&mut s.groups, DOWN_WITHIN, |_| {
            blocking(|| fault.affected().iter().all(|&i| !nodes[i].stats().is_up()))
        })
        .await;
        assert!(
            down_after.is_some(),
            "{fault:?}: the backplane not reported down within {DOWN_WITHIN:?}: {:#?}",
            s.stats()
        );
    }
    let held = start.elapsed();
    if held < HOLD {
        traffic::send_for(&mut s.groups, HOLD - held).await;
    }

    // The fault ends; cross-node delivery resumes between every two nodes.
    s.heal(fault, blocked);
    let healed = Instant::now();
    let resumed = traffic::send_until(&mut s.groups, HEAL_WITHIN, |groups| {
        traffic::all_delivered_since(&groups[0], healed, &all)
    })
    .await;
    assert!(
        resumed.is_some(),
        "{fault:?}: cross-node delivery did not resume within {HEAL_WITHIN:?}: {:#?}",
        s.stats()
    );
    traffic::send_for(&mut s.groups, Duration::from_secs(1)).await;

    // Everyone's last message arrives everywhere; then the accounts.
    delivery::wait_last_delivered(&s.groups[0], STEP, |_, _| true).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let members = &s.groups[0];
    let stats = s.stats();
    let losses = Losses::of(members);
    eprintln!(
        "{fault:?}: down after {down_after:?}, resumed {resumed:?} after the end; \
         missed across nodes {} ({:?}); counters: {:?}",
        losses.cross,
        losses.between,
        stats
            .iter()
            .map(|s| (s.dropped_full, s.dropped_down, s.lost, s.reconnects))
            .collect::<Vec<_>>()
    );
    delivery::assert_none_closed(members);
    delivery::assert_all_clean(members);
    assert_eq!(
        losses.local, 0,
        "{fault:?}: local delivery was affected: {losses:?}"
    );
    for (i, node) in stats.iter().enumerate() {
        assert!(node.is_up(), "{fault:?}: node {i} not up again: {node:?}");
        if fault.reconnects() && fault.affected().contains(&i) {
            assert!(
                node.reconnects >= 1,
                "{fault:?}: node {i} never reconnected: {node:?}"
            );
        }
    }
    if fault.affected() == [0] {
        assert_eq!(
            losses.between_nodes(1, 2),
            0,
            "{fault:?}: the unaffected nodes lost messages between them: {losses:?}"
        );
    }
    if fault.lossless() {
        assert_eq!(losses.cross, 0, "{fault:?}: messages lost: {losses:?}");
    }
    delivery::assert_losses_counted(&losses, &stats, NODES as u64 - 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn black_hole_between_a_node_and_redis() {
    survive(Fault::BlackHole).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_reset_between_a_node_and_redis() {
    survive(Fault::Reset).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_between_a_node_and_redis_loses_nothing() {
    survive(Fault::Delay).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_kills_every_pubsub_connection() {
    survive(Fault::KillPubsub).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_pauses_its_clients() {
    survive(Fault::Pause).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_blocks_in_debug_sleep() {
    survive(Fault::DebugSleep).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted() {
    survive(Fault::RestartRedis).await;
}

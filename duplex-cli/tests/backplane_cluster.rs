//! Rooms across three `duplex serve` nodes on a local 3-master Redis
//! Cluster (issue 11): sharded pub/sub keeps each room's traffic on the
//! shard its channel hashes to. With one room on every shard, the relay
//! works in each; killing one master affects only the room on its shard
//! (local delivery there goes on, the other rooms lose nothing), and once
//! it is back, cross-node delivery in that room resumes and every loss is
//! counted.

mod common;

use std::time::Duration;

use common::chat::ChatClient;
use common::cluster::RedisCluster;
use common::delivery::{self, Losses};
use common::node::{cluster_args, room_channel, Node, Stats, PREFIX};
use common::traffic::{self, blocking};
use tokio::time::Instant;

/// The bound of one waiting step.
const STEP: Duration = Duration::from_secs(15);
/// How soon cross-node delivery must resume in the room of a master that
/// came back (the cluster itself needs a few seconds to agree).
const HEAL_WITHIN: Duration = Duration::from_secs(10);
const NODES: usize = 3;
const SHARDS: usize = 3;

/// The cluster, the nodes, and one room per shard (`groups[s]` is the
/// room on shard `s`, two members on every node).
struct Setup {
    cluster: RedisCluster,
    nodes: Vec<Node>,
    groups: Vec<Vec<ChatClient>>,
}

/// A room name whose channel hashes to `shard`.
fn room_on(cluster: &RedisCluster, shard: usize) -> String {
    (0..)
        .map(|i| format!("room{i}"))
        .find(|room| cluster.owner_of_key(&room_channel(PREFIX, room)) == shard)
        .unwrap()
}

async fn setup() -> Option<Setup> {
    let cluster = blocking(|| RedisCluster::start(SHARDS))?;
    let args = cluster_args(&cluster.urls());
    let names: Vec<String> = (0..NODES).map(|i| format!("n{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let nodes = blocking(|| Node::start_up(&args, &names, &[]));
    let mut groups = Vec::new();
    for shard in 0..SHARDS {
        let room = blocking(|| room_on(&cluster, shard));
        let mut members = Vec::new();
        for i in 0..2 * NODES {
            let node = i % NODES;
            let base = format!("ws://{}", nodes[node].addr());
            let name = format!("s{shard}m{i}");
            members.push(ChatClient::join(&base, node, &room, &name).await);
        }
        // One sharded subscription per node, on the shard's master.
        let channel = room_channel(PREFIX, &room);
        blocking(|| {
            let start = std::time::Instant::now();
            while cluster.shard_subscribers(&channel) != NODES as i64 {
                assert!(
                    start.elapsed() < STEP,
                    "{channel}: not subscribed by every node"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        groups.push(members);
    }
    Some(Setup {
        cluster,
        nodes,
        groups,
    })
}

impl Setup {
    fn stats(&self) -> Vec<Stats> {
        blocking(|| self.nodes.iter().map(Node::stats).collect())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_on_every_shard_relay_across_nodes() {
    let Some(mut s) = setup().await else {
        return;
    };
    for group in &mut s.groups {
        futures_util::future::join_all(group.iter_mut().map(|c| c.send_numbered(300))).await;
    }
    for group in &s.groups {
        delivery::wait_all_delivered(group, Duration::from_secs(60)).await;
        delivery::assert_all_clean(group);
        delivery::assert_none_closed(group);
    }
    for stats in s.stats() {
        assert!(stats.is_up(), "{stats:?}");
        assert_eq!((stats.dropped(), stats.lost), (0, 0), "{stats:?}");
        assert_eq!(stats.subscriptions, SHARDS as u64, "{stats:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_master_affects_only_the_rooms_on_its_shard() {
    let Some(mut s) = setup().await else {
        return;
    };
    const KILLED: usize = 1;
    let all: Vec<usize> = (0..NODES).collect();
    traffic::send_for(&mut s.groups, Duration::from_secs(1)).await;
    blocking(|| s.cluster.kill(KILLED));
    traffic::send_for(&mut s.groups, Duration::from_secs(3)).await;

    // The master comes back with its slots; its room heals.
    blocking(|| s.cluster.restart(KILLED));
    let back = Instant::now();
    let resumed = traffic::send_until(&mut s.groups, HEAL_WITHIN, |groups| {
        traffic::all_delivered_since(&groups[KILLED], back, &all)
    })
    .await;
    assert!(
        resumed.is_some(),
        "the killed shard's room did not heal within {HEAL_WITHIN:?}: {:#?}",
        s.stats()
    );
    traffic::send_for(&mut s.groups, Duration::from_secs(1)).await;
    for group in &s.groups {
        delivery::wait_last_delivered(group, STEP, |_, _| true).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let stats = s.stats();
    for (shard, group) in s.groups.iter().enumerate() {
        delivery::assert_none_closed(group);
        delivery::assert_all_clean(group);
        let losses = Losses::of(group);
        assert_eq!(
            losses.local, 0,
            "shard {shard}: local delivery affected: {losses:?}"
        );
        if shard == KILLED {
            eprintln!("the killed shard's room: resumed {resumed:?} after; {losses:?}");
            // The counters are per node, and only this room lost anything.
            delivery::assert_losses_counted(&losses, &stats, NODES as u64 - 1);
        } else {
            assert_eq!(
                losses.cross, 0,
                "shard {shard}: another shard's fault: {losses:?}"
            );
        }
    }
    for node in &stats {
        assert!(node.is_up(), "{node:?}");
    }
}

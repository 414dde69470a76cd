//! A local Redis Cluster of masters only, formed with raw commands
//! (`redis-cli --cluster create` may not be installed): each master gets
//! an equal range of the 16384 slots, they meet, and the cluster is ready
//! when every node reports `cluster_state:ok` with every slot served.
//!
//! Full coverage is not required (`cluster-require-full-coverage no`), so
//! a killed master takes down only its own slots: the other shards go on
//! serving, which is what the backplane's shard-isolation test needs.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use super::redis::RedisServer;
use super::resp::{self, info_field, Reply};

/// The number of hash slots of a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// How long the nodes may take to agree after meeting or a restart.
const FORM_LIMIT: Duration = Duration::from_secs(20);

/// A running cluster of `n` masters.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    /// Node `i` serves slots `ranges[i].0 ..= ranges[i].1`.
    ranges: Vec<(u16, u16)>,
}

impl RedisCluster {
    /// Starts `n` masters and forms the cluster; `None` (after a skip
    /// line) when there is no `redis-server` outside CI.
    pub fn start(n: usize) -> Option<RedisCluster> {
        assert!(n >= 1, "a cluster needs a node");
        let extra = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            // A dead master is declared failed within 2 s.
            "--cluster-node-timeout",
            "2000",
            "--cluster-require-full-coverage",
            "no",
        ];
        let mut nodes = Vec::new();
        for _ in 0..n {
            nodes.push(RedisServer::start_with(&extra, true)?);
        }
        let per = SLOTS as usize / n;
        let ranges: Vec<(u16, u16)> = (0..n)
            .map(|i| {
                let lo = i * per;
                let hi = if i == n - 1 {
                    SLOTS as usize - 1
                } else {
                    lo + per - 1
                };
                (lo as u16, hi as u16)
            })
            .collect();
        for (i, (node, (lo, hi))) in nodes.iter().zip(&ranges).enumerate() {
            // Distinct epochs, so that no collision has to be resolved.
            node.command(&["CLUSTER", "SET-CONFIG-EPOCH", &(i + 1).to_string()])
                .expect_ok("CLUSTER SET-CONFIG-EPOCH");
            node.command(&["CLUSTER", "ADDSLOTSRANGE", &lo.to_string(), &hi.to_string()])
                .expect_ok("CLUSTER ADDSLOTSRANGE");
        }
        for other in &nodes[1..] {
            nodes[0]
                .command(&["CLUSTER", "MEET", "127.0.0.1", &other.port().to_string()])
                .expect_ok("CLUSTER MEET");
        }
        let cluster = RedisCluster { nodes, ranges };
        cluster.wait_ready();
        Some(cluster)
    }

    /// How many masters it has.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always false: a cluster has at least one node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Master `i`.
    pub fn node(&self, i: usize) -> &RedisServer {
        &self.nodes[i]
    }

    /// Every master's `redis://127.0.0.1:PORT`.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The slots master `i` was given.
    pub fn range(&self, i: usize) -> (u16, u16) {
        self.ranges[i]
    }

    /// The hash slot of `key` (or of a channel name: sharded pub/sub hashes
    /// channels like keys), asked of a live node.
    pub fn keyslot(&self, key: &str) -> u16 {
        let node = self.live_node();
        node.command(&["CLUSTER", "KEYSLOT", key]).int() as u16
    }

    /// The master (index) that serves `slot`, from a live node's view
    /// (`CLUSTER NODES`), checked against the ranges it was given.
    pub fn owner_of_slot(&self, slot: u16) -> usize {
        let nodes = self.live_node().command(&["CLUSTER", "NODES"]).text();
        let port = owner_port(&nodes, slot)
            .unwrap_or_else(|| panic!("no node serves slot {slot}:\n{nodes}"));
        let i = self
            .nodes
            .iter()
            .position(|n| n.port() == port)
            .unwrap_or_else(|| panic!("slot {slot} is on an unknown port {port}"));
        let (lo, hi) = self.ranges[i];
        assert!((lo..=hi).contains(&slot), "slot {slot} moved to node {i}");
        i
    }

    /// The master (index) that serves `key`'s slot.
    pub fn owner_of_key(&self, key: &str) -> usize {
        self.owner_of_slot(self.keyslot(key))
    }

    /// The sharded subscribers of `channel` on the master that owns it.
    pub fn shard_subscribers(&self, channel: &str) -> i64 {
        let owner = &self.nodes[self.owner_of_key(channel)];
        resp::subscribers(&owner.addr(), channel)
    }

    /// Kills master `i` with SIGKILL: its slots go unserved, the others
    /// stay up.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// Restarts master `i` on its port with its saved cluster identity
    /// and waits until the whole cluster is ready again.
    pub fn restart(&mut self, i: usize) {
        self.nodes[i].restart();
        self.wait_ready();
    }

    /// Waits until every live node reports `cluster_state:ok` and knows
    /// every node and slot.
    pub fn wait_ready(&self) {
        let start = Instant::now();
        loop {
            let states: Vec<Option<String>> = self
                .nodes
                .iter()
                .map(|node| node.is_running().then(|| self.state_of(node)))
                .collect();
            if states.iter().flatten().all(|s| s.is_empty()) {
                return;
            }
            if start.elapsed() > FORM_LIMIT {
                panic!("the cluster did not form within {FORM_LIMIT:?}: {states:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What a node still lacks to be ready ("" when ready).
    fn state_of(&self, node: &RedisServer) -> String {
        let info = match node.command(&["CLUSTER", "INFO"]) {
            Reply::Bulk(Some(b)) => String::from_utf8_lossy(&b).into_owned(),
            other => return format!("CLUSTER INFO: {other:?}"),
        };
        let want = [
            ("cluster_state", "ok".to_string()),
            ("cluster_slots_ok", SLOTS.to_string()),
            ("cluster_known_nodes", self.nodes.len().to_string()),
        ];
        want.iter()
            .filter_map(|(field, value)| {
                let got = info_field(&info, field);
                (got.as_deref() != Some(value.as_str()))
                    .then(|| format!("{}: {field}={got:?} ", node.port()))
            })
            .collect()
    }

    fn live_node(&self) -> &RedisServer {
        self.nodes
            .iter()
            .find(|n| n.is_running())
            .expect("no live node in the cluster")
    }
}

/// The port of the master serving `slot` in a `CLUSTER NODES` listing
/// (`id ip:port@cport flags master ... slot-ranges`).
fn owner_port(listing: &str, slot: u16) -> Option<u16> {
    listing.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 8 || !fields[2].contains("master") {
            return None;
        }
        let serves = fields[8..].iter().any(|range| {
            let (lo, hi) = range.split_once('-').unwrap_or((range, range));
            match (lo.parse::<u16>(), hi.parse::<u16>()) {
                (Ok(lo), Ok(hi)) => (lo..=hi).contains(&slot),
                _ => false, // a slot being migrated: `[slot->-id]`
            }
        });
        let port = fields[1].split('@').next()?.rsplit(':').next()?;
        serves.then(|| port.parse().ok()).flatten()
    })
}

//! The HTTP endpoints of a node on the Redis backplane (issue 11), on the
//! built binary against real `redis-server`s:
//!
//! - `POST /publish/<room>` on one node reaches the room's members on
//!   every node (text and binary), in the order it was posted, and the
//!   nodes' counters say it crossed;
//! - `GET /presence/<room>` on a 3-master Redis Cluster lists every
//!   member of every node, for rooms on different shards, forgets a
//!   member who leaves and, within the presence TTL, a node killed with
//!   SIGKILL.
//!
//! `redis-server` comes from DUPLEX_REDIS_SERVER or PATH (see
//! `common/redis.rs`: a missing one fails the test in CI).

mod common;

use std::time::{Duration, Instant};

use common::cluster::RedisCluster;
use common::node::{cluster_args, http_request, room_channel, Node, PREFIX};
use common::redis::RedisServer;
use common::traffic::blocking;
use duplex::{ClientSocket, Message};

/// The bound of one waiting step.
const STEP: Duration = Duration::from_secs(15);
const TOKEN: &str = "backplane-http-test-token";
/// The presence TTL of the cluster test's nodes.
const TTL_SECS: u64 = 3;

async fn member(node: &Node, room: &str, name: &str) -> ClientSocket {
    let url = format!("{}?name={name}", node.chat_url(room));
    duplex::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("{name}: connect {url}: {e}"))
}

async fn next_message(ws: &mut ClientSocket, what: &str) -> Message {
    tokio::time::timeout(STEP, ws.recv())
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within {STEP:?}"))
        .unwrap_or_else(|| panic!("{what}: the connection ended"))
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// POSTs `body` to `node`'s `/publish/<room>`: status and body.
fn publish(node: &Node, room: &str, content_type: &str, body: &[u8]) -> (u16, String) {
    let auth = format!("Authorization: Bearer {TOKEN}");
    let kind = format!("Content-Type: {content_type}");
    let path = format!("/publish/{room}");
    http_request(node.addr(), "POST", &path, &[&auth, &kind], body)
        .unwrap_or_else(|e| panic!("POST {path}: {e}"))
}

/// Waits until `check` holds, polling every 50 ms; panics with `what`
/// after `limit`.
fn wait_until(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_posted_to_one_node_reaches_the_members_on_every_node() {
    let Some(redis) = blocking(RedisServer::start) else {
        return;
    };
    let url = redis.url();
    let token = ["--publish-token", TOKEN];
    let redis_args = ["--redis".to_string(), url];
    let [a, b]: [Node; 2] = blocking(|| Node::start_up(&redis_args, &["post-a", "post-b"], &token))
        .try_into()
        .unwrap_or_else(|_| unreachable!());
    let mut on_a = member(&a, "news", "ann").await;
    let mut on_b = member(&b, "news", "bea").await;
    let mut elsewhere = member(&b, "sport", "cal").await;
    // Both nodes subscribed to the room: a message from a reaches b.
    let channel = room_channel(PREFIX, "news");
    blocking(|| {
        wait_until(STEP, "both nodes subscribed", || {
            redis.subscribers(&channel) == 2
        })
    });

    let (status, body) = blocking(|| publish(&a, "news", "text/plain", "héllo".as_bytes()));
    // `recipients` counts this node's members: the others are reached
    // through Redis, at most once (see the README's guarantees).
    assert_eq!((status, body.trim()), (202, r#"{"recipients":1}"#));
    let bytes = vec![0u8, 1, 0xfe, 0xff];
    let (status, _) = blocking(|| publish(&a, "news", "application/octet-stream", &bytes));
    assert_eq!(status, 202);
    for n in 0..20 {
        let (status, _) =
            blocking(|| publish(&a, "news", "text/plain", format!("n{n}").as_bytes()));
        assert_eq!(status, 202);
    }
    for ws in [&mut on_a, &mut on_b] {
        assert_eq!(next_message(ws, "the text").await, Message::text("héllo"));
        assert_eq!(
            next_message(ws, "the binary").await,
            Message::binary(bytes.clone())
        );
        for n in 0..20 {
            let got = next_message(ws, "the numbered ones").await;
            assert_eq!(got, Message::text(format!("n{n}")), "in the order posted");
        }
    }
    // Posting to b reaches a's member the other way round.
    let (status, body) = blocking(|| publish(&b, "news", "text/plain", b"from b"));
    assert_eq!((status, body.trim()), (202, r#"{"recipients":1}"#));
    assert_eq!(
        next_message(&mut on_a, "b's post").await,
        Message::text("from b")
    );
    assert_eq!(
        next_message(&mut on_b, "b's post").await,
        Message::text("from b")
    );

    // The other room got none of it.
    let quiet = tokio::time::timeout(Duration::from_millis(300), elsewhere.recv()).await;
    assert!(quiet.is_err(), "another room's member got {quiet:?}");
    let (sa, sb) = blocking(|| (a.stats(), b.stats()));
    assert_eq!((sa.forwarded, sb.received), (22, 22), "{sa:?} {sb:?}");
    assert_eq!((sb.forwarded, sa.received), (1, 1), "{sa:?} {sb:?}");
    for stats in [&sa, &sb] {
        assert_eq!((stats.dropped(), stats.lost), (0, 0), "{stats:?}");
    }
}

/// What `GET /presence/<room>` answered: the count, the sorted names,
/// how many nodes have members, whether some were unreachable.
#[derive(Debug, PartialEq)]
struct Presence {
    count: u64,
    members: Vec<String>,
    nodes: u64,
    partial: bool,
}

fn presence(node: &Node, room: &str) -> Presence {
    let (status, body) = http_request(node.addr(), "GET", &format!("/presence/{room}"), &[], b"")
        .unwrap_or_else(|e| panic!("GET /presence/{room}: {e}"));
    assert_eq!(status, 200, "{body}");
    let value: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    assert_eq!(value["room"], room, "{body}");
    let mut members: Vec<String> = value["members"]
        .as_array()
        .unwrap_or_else(|| panic!("no members in {body}"))
        .iter()
        .map(|m| m.as_str().expect("a name").to_string())
        .collect();
    members.sort();
    Presence {
        count: value["count"].as_u64().expect("count"),
        members,
        nodes: value["nodes"].as_u64().expect("nodes"),
        partial: value["partial"].as_bool().expect("partial"),
    }
}

fn want(members: &[&str], nodes: u64) -> Presence {
    Presence {
        count: members.len() as u64,
        members: members.iter().map(|m| m.to_string()).collect(),
        nodes,
        partial: false,
    }
}

/// Polls until every node in `nodes` answers `expected` for `room`;
/// returns how long it took.
fn wait_presence(nodes: &[&Node], room: &str, expected: &Presence, limit: Duration) -> Duration {
    let start = Instant::now();
    for node in nodes {
        loop {
            let got = presence(node, room);
            if got == *expected {
                break;
            }
            assert!(
                start.elapsed() < limit,
                "{}: /presence/{room} is {got:?}, want {expected:?}",
                node.addr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_on_a_redis_cluster_spans_nodes_and_shards() {
    let Some(cluster) = blocking(|| RedisCluster::start(3)) else {
        return;
    };
    let args = cluster_args(&cluster.urls());
    let ttl = TTL_SECS.to_string();
    let extra = ["--presence-ttl", ttl.as_str()];
    let [a, mut b]: [Node; 2] = blocking(|| Node::start_up(&args, &["pres-a", "pres-b"], &extra))
        .try_into()
        .unwrap_or_else(|_| unreachable!());
    // Two rooms whose keys live on different masters.
    let shard_of = |room: &str| cluster.owner_of_key(&room_channel(PREFIX, room));
    let first = "lobby".to_string();
    let second = (0..)
        .map(|i| format!("room{i}"))
        .find(|room| shard_of(room) != shard_of(&first))
        .unwrap();

    let _ada = member(&a, &first, "ada").await;
    let bob = member(&a, &first, "bob").await;
    let _cy = member(&b, &first, "cy").await;
    let _dee = member(&a, &second, "dee").await;
    let _eve = member(&b, &second, "eve").await;
    blocking(|| {
        wait_presence(&[&a, &b], &first, &want(&["ada", "bob", "cy"], 2), STEP);
        wait_presence(&[&a, &b], &second, &want(&["dee", "eve"], 2), STEP);
    });

    drop(bob);
    blocking(|| wait_presence(&[&a, &b], &first, &want(&["ada", "cy"], 2), STEP));

    // Node b crashes: its members go from a's answers within the TTL.
    blocking(|| b.sigkill());
    let took = blocking(|| {
        let took = wait_presence(&[&a], &first, &want(&["ada"], 1), STEP);
        wait_presence(&[&a], &second, &want(&["dee"], 1), STEP);
        took
    });
    let bound = Duration::from_secs(TTL_SECS + 2);
    assert!(
        took <= bound,
        "a killed node's members were listed {took:?} after it died"
    );
}

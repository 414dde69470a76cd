//! `GET /presence/<room>` on the built binary: without `--redis` this
//! node's members (named by `?name=`, anonymous ones counted only); with
//! two nodes on one real `redis-server`, both nodes list every member,
//! a member who leaves is gone from both, a node killed with SIGKILL has
//! its members gone from the other within the presence TTL, and with
//! Redis gone a node answers with its own members, marked partial.
//!
//! `redis-server` comes from DUPLEX_REDIS_SERVER or PATH (see
//! `common/redis.rs`: a missing one fails the test in CI).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::node::http_request;
use common::redis::RedisServer;
use common::Process;
use duplex::ClientSocket;

/// The bound of one waiting step.
const STEP: Duration = Duration::from_secs(15);
/// The presence TTL the Redis test runs with.
const TTL_SECS: u64 = 3;

/// What `/presence/<room>` answered.
#[derive(Debug, PartialEq)]
struct Answer {
    count: usize,
    members: Vec<String>,
    nodes: usize,
    partial: bool,
}

/// `GET path`: status and body.
async fn get(addr: &str, path: &str) -> (u16, String) {
    let addr = addr.to_string();
    let path = path.to_string();
    tokio::task::spawn_blocking(move || http_request(&addr, "GET", &path, &[], b""))
        .await
        .expect("the request task")
        .unwrap_or_else(|e| panic!("GET: {e}"))
}

/// The value after `"key":` in a flat JSON object (enough for ours: the
/// names in these tests have no quotes, commas or brackets).
fn field<'a>(json: &'a str, key: &str) -> &'a str {
    let start = json
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("no {key} in {json}"))
        + key.len()
        + 3;
    let rest = &json[start..];
    let end = if rest.starts_with('[') {
        rest.find(']').expect("]") + 1
    } else {
        rest.find([',', '}']).expect("end")
    };
    &rest[..end]
}

async fn presence(addr: &str, room: &str) -> Answer {
    let (status, body) = get(addr, &format!("/presence/{room}")).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.starts_with(&format!("{{\"room\":\"{room}\",")),
        "{body}"
    );
    let members = field(&body, "members");
    let members = members[1..members.len() - 1]
        .split(',')
        .filter(|m| !m.is_empty())
        .map(|m| m.trim_matches('"').to_string())
        .collect();
    Answer {
        count: field(&body, "count").parse().expect("count"),
        members,
        nodes: field(&body, "nodes").parse().expect("nodes"),
        partial: field(&body, "partial").parse().expect("partial"),
    }
}

/// Polls `addr`'s presence of `room` until it is `want`; panics with the
/// last answer after `limit`. Returns how long it took.
async fn wait_presence(addr: &str, room: &str, want: &Answer, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let got = presence(addr, room).await;
        if got == *want {
            return start.elapsed();
        }
        if start.elapsed() > limit {
            panic!("{addr} /presence/{room}: {got:?}, want {want:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn answer(count: usize, members: &[&str], nodes: usize, partial: bool) -> Answer {
    Answer {
        count,
        members: members.iter().map(|m| m.to_string()).collect(),
        nodes,
        partial,
    }
}

fn serve(flags: &[&str]) -> (Process, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_duplex"));
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(flags);
    common::start_serve(command, STEP)
}

async fn member(addr: &str, room: &str, name: Option<&str>) -> ClientSocket {
    let query = name.map_or(String::new(), |n| format!("?name={n}"));
    duplex::connect(&format!("ws://{addr}/chat/{room}{query}"))
        .await
        .expect("join")
}

#[tokio::test]
async fn presence_of_one_node_lists_named_members_and_counts_anonymous_ones() {
    let (_node, addr) = serve(&[]);
    assert_eq!(
        presence(&addr, "lobby").await,
        answer(0, &[], 0, false),
        "an empty room"
    );
    let mut ada = member(&addr, "lobby", Some("ada")).await;
    let _bob = member(&addr, "lobby", Some("bob%0A%07")).await; // control characters go
    let _anon = member(&addr, "lobby", None).await;
    let _elsewhere = member(&addr, "other", Some("eve")).await;
    let long = "x".repeat(300);
    let _long = member(&addr, "long", Some(&long)).await;
    let want = answer(3, &["ada", "bob"], 1, false);
    wait_presence(&addr, "lobby", &want, STEP).await;
    // Names are bounded (the member may still be joining: wait for it).
    let bounded = "x".repeat(64);
    wait_presence(
        &addr,
        "long",
        &answer(1, &[bounded.as_str()], 1, false),
        STEP,
    )
    .await;
    // Joins put nothing into the chat stream: the relay's contract holds.
    let quiet = tokio::time::timeout(Duration::from_millis(300), ada.recv()).await;
    assert!(quiet.is_err(), "the server sent a member {quiet:?}");
    drop(ada);
    wait_presence(&addr, "lobby", &answer(2, &["bob"], 1, false), STEP).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_spans_nodes_and_forgets_a_killed_node_within_the_ttl() {
    let Some(redis) = tokio::task::block_in_place(RedisServer::start) else {
        return;
    };
    let url = redis.url();
    let prefix = format!("presence-test-{}", std::process::id());
    let ttl = TTL_SECS.to_string();
    let node = |id: &str| {
        serve(&[
            "--redis",
            &url,
            "--node-id",
            id,
            "--redis-prefix",
            &prefix,
            "--presence-ttl",
            &ttl,
        ])
    };
    let (_a, a) = node("node-a");
    let (mut b_process, b) = node("node-b");

    let _ada = member(&a, "lobby", Some("ada")).await;
    let bob = member(&a, "lobby", Some("bob")).await;
    let _cy = member(&b, "lobby", Some("cy")).await;
    let _anon = member(&b, "lobby", None).await;
    let _dee = member(&b, "side", Some("dee")).await;

    let everyone = answer(4, &["ada", "bob", "cy"], 2, false);
    for addr in [&a, &b] {
        wait_presence(addr, "lobby", &everyone, STEP).await;
    }
    wait_presence(&a, "side", &answer(1, &["dee"], 1, false), STEP).await;
    assert_eq!(presence(&a, "nobody").await, answer(0, &[], 0, false));

    // A member who leaves is gone from both nodes (well before any TTL).
    drop(bob);
    let without_bob = answer(3, &["ada", "cy"], 2, false);
    for addr in [&a, &b] {
        wait_presence(addr, "lobby", &without_bob, STEP).await;
    }

    // Node b crashes: its members vanish from a's presence within the TTL.
    b_process.child.kill().expect("SIGKILL node b");
    b_process.child.wait().expect("reap node b");
    let took = wait_presence(&a, "lobby", &answer(1, &["ada"], 1, false), STEP).await;
    let bound = Duration::from_secs(TTL_SECS) + Duration::from_secs(2);
    assert!(
        took <= bound,
        "a killed node's members were listed {took:?} after it died"
    );
    wait_presence(&a, "side", &answer(0, &[], 0, false), STEP).await;

    // Redis gone: this node's own members, marked partial, at once.
    drop(redis);
    wait_presence(&a, "lobby", &answer(1, &["ada"], 1, true), STEP).await;
}

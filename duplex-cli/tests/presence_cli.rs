//! `GET /presence/<room>` on the built binary: without `--redis` this
//! node's members (named by `?name=`, anonymous ones counted only); with
//! two nodes on one real `redis-server`, both nodes list every member,
//! a member who leaves is gone from both, a node killed with SIGKILL has
//! its members gone from the other within the presence TTL, and with
//! Redis gone a node answers with its own members, marked partial.
//!
//! `redis-server` comes from DUPLEX_REDIS_SERVER or PATH; when it is
//! missing the Redis test is skipped with a note, or fails with CI=true
//! or DUPLEX_REQUIRE_PEERS=1.

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Process;
use duplex::ClientSocket;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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

/// `GET path` over a raw socket: status and body.
async fn get(addr: &str, path: &str) -> (u16, String) {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    tcp.read_to_end(&mut response).await.expect("read");
    let response = String::from_utf8(response).expect("utf-8");
    let status = response[9..12].parse().expect("status");
    let body = response.split_once("\r\n\r\n").expect("head").1.to_string();
    (status, body)
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

/// A `redis-server` on a free port of 127.0.0.1, without persistence,
/// killed when dropped.
struct Redis {
    child: Child,
    port: u16,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Redis {
    /// `None` (after a note) when there is no redis-server and none is
    /// required.
    async fn start() -> Option<Redis> {
        let binary = std::env::var("DUPLEX_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let required = std::env::var("CI").is_ok_and(|v| v == "true")
            || std::env::var("DUPLEX_REQUIRE_PEERS").is_ok_and(|v| v == "1");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let spawned = Command::new(&binary)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) if !required => {
                eprintln!("skipped: no redis-server ({binary}: {e}); set DUPLEX_REDIS_SERVER");
                return None;
            }
            Err(e) => panic!("redis-server is required here (CI): {binary}: {e}"),
        };
        let redis = Redis { child, port };
        let start = Instant::now();
        loop {
            if let Ok(mut tcp) = TcpStream::connect(("127.0.0.1", port)).await {
                let mut pong = [0u8; 7];
                if tcp.write_all(b"PING\r\n").await.is_ok()
                    && tcp.read_exact(&mut pong).await.is_ok()
                    && &pong == b"+PONG\r\n"
                {
                    return Some(redis);
                }
            }
            assert!(start.elapsed() < STEP, "redis-server did not answer PING");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

#[tokio::test]
async fn presence_spans_nodes_and_forgets_a_killed_node_within_the_ttl() {
    let Some(redis) = Redis::start().await else {
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

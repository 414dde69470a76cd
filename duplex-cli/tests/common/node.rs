//! One `duplex serve` node on a Redis backplane (issue 11), as a child
//! process: started with `--redis URL --node-id NAME`, read through
//! `GET /backplane`, stopped with SIGTERM or SIGKILL.
//!
//! The backplane's naming and flags that the tests rely on live here and
//! only here ([`room_channel`], [`PREFIX`], [`cluster_args`]), so that a
//! change in the feature is one edit.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use super::Process;

/// How long a node may take to print its address, or one stats request.
const STEP: Duration = Duration::from_secs(15);

/// The `--redis-prefix` every test node gets.
pub const PREFIX: &str = "duplex-test";

/// The Redis channel of `room` under `prefix`: the one place that knows
/// the backplane's channel naming.
pub fn room_channel(prefix: &str, room: &str) -> String {
    format!("{prefix}:{{{room}}}")
}

/// The arguments that put a node on a Redis Cluster with these masters.
pub fn cluster_args(urls: &[String]) -> Vec<String> {
    urls.iter()
        .flat_map(|url| ["--redis".to_string(), url.clone()])
        .collect()
}

/// The counters of `GET /backplane`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stats {
    pub node: String,
    /// `"up"` or `"down"`.
    pub status: String,
    pub forwarded: u64,
    pub received: u64,
    pub dropped_full: u64,
    pub dropped_down: u64,
    pub lost: u64,
    pub subscriptions: u64,
    pub reconnects: u64,
    pub lag_last_us: u64,
    pub lag_max_us: u64,
}

impl Stats {
    /// Parses the JSON object of `GET /backplane`; panics, showing it,
    /// when a field is missing or of the wrong type.
    pub fn parse(body: &str) -> Stats {
        let value: serde_json::Value = serde_json::from_str(body)
            .unwrap_or_else(|e| panic!("GET /backplane is not JSON ({e}): {body:?}"));
        let text = |name: &str| -> String {
            value[name]
                .as_str()
                .unwrap_or_else(|| panic!("GET /backplane: no string {name:?} in {body}"))
                .to_string()
        };
        let count = |name: &str| -> u64 {
            value[name]
                .as_u64()
                .unwrap_or_else(|| panic!("GET /backplane: no count {name:?} in {body}"))
        };
        Stats {
            node: text("node"),
            status: text("status"),
            forwarded: count("forwarded"),
            received: count("received"),
            dropped_full: count("dropped_full"),
            dropped_down: count("dropped_down"),
            lost: count("lost"),
            subscriptions: count("subscriptions"),
            reconnects: count("reconnects"),
            lag_last_us: count("lag_last_us"),
            lag_max_us: count("lag_max_us"),
        }
    }

    /// The messages this node dropped at the source, for any reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_full + self.dropped_down
    }

    /// Whether the backplane is up.
    pub fn is_up(&self) -> bool {
        self.status == "up"
    }
}

/// A running node.
pub struct Node {
    /// Its `--node-id`.
    pub name: String,
    process: Process,
    addr: String,
}

impl Node {
    /// Starts `duplex serve --listen 127.0.0.1:0 --redis URL --node-id
    /// NAME --redis-prefix PREFIX` plus `extra`, and waits for its address.
    pub fn start(redis_url: &str, name: &str, extra: &[&str]) -> Node {
        let redis = ["--redis".to_string(), redis_url.to_string()];
        Node::start_args(&redis, name, extra)
    }

    /// Like [`Node::start`] with the Redis arguments given whole (a
    /// cluster: [`cluster_args`]).
    pub fn start_args(redis: &[String], name: &str, extra: &[&str]) -> Node {
        let mut command = Command::new(env!("CARGO_BIN_EXE_duplex"));
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(redis)
            .args(["--node-id", name, "--redis-prefix", PREFIX])
            .args(extra);
        let (process, addr) = super::start_serve(command, STEP);
        Node {
            name: name.to_string(),
            process,
            addr,
        }
    }

    /// Starts one node per name (as [`Node::start_args`]) and waits until
    /// each says its backplane is up.
    pub fn start_up(redis: &[String], names: &[&str], extra: &[&str]) -> Vec<Node> {
        let nodes: Vec<Node> = names
            .iter()
            .map(|name| Node::start_args(redis, name, extra))
            .collect();
        for node in &nodes {
            node.wait_status("up", STEP);
        }
        nodes
    }

    /// `HOST:PORT`
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// `ws://HOST:PORT/chat/<room>`
    pub fn chat_url(&self, room: &str) -> String {
        format!("ws://{}/chat/{room}", self.addr)
    }

    /// `GET /backplane`, parsed.
    pub fn stats(&self) -> Stats {
        let body = http_get(&self.addr, "/backplane").unwrap_or_else(|e| {
            panic!(
                "{}: GET /backplane: {e}; stderr:\n{}",
                self.name,
                self.stderr()
            )
        });
        Stats::parse(&body)
    }

    /// Waits until `GET /backplane` says `status` (`"up"`/`"down"`), at
    /// most `limit`; returns how long it took, or panics with the last
    /// stats.
    pub fn wait_status(&self, status: &str, limit: Duration) -> Duration {
        let start = Instant::now();
        loop {
            let stats = self.stats();
            if stats.status == status {
                return start.elapsed();
            }
            if start.elapsed() > limit {
                panic!("{}: not {status} within {limit:?}: {stats:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM (graceful shutdown).
    pub fn sigterm(&self) {
        super::sigterm(&self.process.child);
    }

    /// Kills it with SIGKILL and reaps it.
    pub fn sigkill(&mut self) {
        let _ = self.process.child.kill();
        let _ = self.process.child.wait();
    }

    /// Waits for it to exit, at most `limit`; panics when it did not.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        super::wait_for_exit(&mut self.process.child, limit).unwrap_or_else(|| {
            panic!(
                "{} did not exit within {limit:?}; stderr:\n{}",
                self.name,
                self.stderr()
            )
        })
    }

    /// What it wrote to stderr so far (its log).
    pub fn stderr(&self) -> String {
        self.process
            .stderr
            .try_iter()
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The body of `GET path` from the HTTP server at `addr`, requiring 200.
pub fn http_get(addr: &str, path: &str) -> std::io::Result<String> {
    let (status, body) = http_request(addr, "GET", path, &[], b"")?;
    if status != 200 {
        return Err(std::io::Error::other(format!(
            "not 200 but {status}: {body:?}"
        )));
    }
    Ok(body)
}

/// One request (`Connection: close`) with `headers` (`name: value`, no
/// line ends) and `body` (a `Content-Length` is added when it is not
/// empty): the status and the body of the answer.
pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(STEP))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for header in headers {
        head.push_str(header);
        head.push_str("\r\n");
    }
    if !body.is_empty() {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let invalid = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| invalid(format!("no header end: {text:?}")))?;
    let status = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid(format!("no status line: {head:?}")))?;
    Ok((status, body.to_string()))
}

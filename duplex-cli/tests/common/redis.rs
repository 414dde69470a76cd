//! A real `redis-server` for a test: its own port and directory, no
//! persistence, killed (SIGKILL) and restarted on the same port at will,
//! stopped when dropped.
//!
//! The binary is `$DUPLEX_REDIS_SERVER`, else `redis-server` on `PATH`.
//! When there is none, [`RedisServer::start`] fails the test in CI
//! (`CI=true` or `DUPLEX_REQUIRE_PEERS=1`) and otherwise prints one line
//! and returns `None`, so the test returns early (as the interop tests
//! treat a missing Python or Node peer).
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::resp::{self, Reply, Resp};

/// How long a server may take to answer PING after it was started.
const START_LIMIT: Duration = Duration::from_secs(10);

/// Whether a missing peer must fail the test (CI) rather than skip it.
pub fn require_peers() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
        || std::env::var("DUPLEX_REQUIRE_PEERS").is_ok_and(|v| v == "1")
}

/// Reports a missing peer: a panic in CI, else one line on stderr (the
/// caller then returns early).
pub fn missing_peer(what: &str) {
    if require_peers() {
        panic!("{what} (CI=true or DUPLEX_REQUIRE_PEERS=1: a missing peer is a failure)");
    }
    eprintln!("SKIPPED: {what} (set DUPLEX_REDIS_SERVER, or CI=true to make this a failure)");
}

/// The `redis-server` binary to run, if there is one.
pub fn redis_server_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("DUPLEX_REDIS_SERVER") {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join("redis-server"))
        .find(|candidate| candidate.is_file())
}

/// A port on 127.0.0.1 that was free a moment ago; with `bus`, port +
/// 10000 (a cluster node's bus port) was free too.
pub fn free_port(bus: bool) -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().unwrap().port();
        if !bus {
            return port;
        }
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

/// A fresh empty directory of this test process.
fn temp_dir(what: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("duplex-{what}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a temp dir");
    dir
}

/// One running (or killed) `redis-server`.
pub struct RedisServer {
    binary: PathBuf,
    port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a standalone server; `None` (after a skip line) when there
    /// is no `redis-server` outside CI.
    pub fn start() -> Option<RedisServer> {
        RedisServer::start_with(&[], false)
    }

    /// Starts a server with extra configuration arguments; `bus` picks a
    /// port whose cluster bus port is free too.
    pub fn start_with(extra: &[&str], bus: bool) -> Option<RedisServer> {
        let Some(binary) = redis_server_binary() else {
            missing_peer("redis-server not found (DUPLEX_REDIS_SERVER or PATH)");
            return None;
        };
        // The port can be taken between picking and binding: try again.
        let mut last = String::new();
        for _ in 0..5 {
            let mut server = RedisServer {
                binary: binary.clone(),
                port: free_port(bus),
                dir: temp_dir("redis"),
                extra: extra.iter().map(|s| s.to_string()).collect(),
                child: None,
            };
            match server.spawn() {
                Ok(()) => return Some(server),
                Err(e) => last = e,
            }
        }
        panic!("redis-server did not start: {last}");
    }

    /// `redis://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr())
    }

    /// `127.0.0.1:PORT`
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether it is running (not killed).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills it with SIGKILL (no shutdown: clients see their connection
    /// reset) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port (with the same directory, so a
    /// cluster node keeps its identity) and waits for PING.
    pub fn restart(&mut self) {
        self.kill();
        let start = Instant::now();
        loop {
            match self.spawn() {
                Ok(()) => return,
                // The old socket may linger for a moment.
                Err(e) if start.elapsed() < START_LIMIT => {
                    eprintln!("restarting redis on {}: {e}; retrying", self.port);
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("redis-server did not restart on {}: {e}", self.port),
            }
        }
    }

    /// Runs one command on a fresh connection.
    pub fn command(&self, args: &[&str]) -> Reply {
        resp::command(&self.addr(), args)
    }

    /// A new connection of its own (e.g. for `DEBUG SLEEP`, which blocks it).
    pub fn connect(&self) -> Resp {
        Resp::connect(&self.addr()).expect("connect to redis")
    }

    /// The subscribers of `channel`, plain and sharded.
    pub fn subscribers(&self, channel: &str) -> i64 {
        resp::subscribers(&self.addr(), channel)
    }

    /// The last lines of its log, for a failure message.
    pub fn log_tail(&self) -> String {
        log_tail(&self.dir.join("redis.log"))
    }

    /// Starts the process and waits until it answers PING.
    fn spawn(&mut self) -> Result<(), String> {
        let log = self.dir.join("redis.log");
        let mut child = Command::new(&self.binary)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&log)
            // DEBUG SLEEP is a fault the tests inject.
            .args(["--enable-debug-command", "local"])
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.binary.display()))?;
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return Err(format!("exited with {status}; log:\n{}", log_tail(&log)));
            }
            let pong = Resp::connect(&self.addr()).and_then(|mut c| c.command(&["PING"]));
            if let Ok(Reply::Simple(s)) = &pong {
                if s == "PONG" {
                    self.child = Some(child);
                    return Ok(());
                }
            }
            if start.elapsed() > START_LIMIT {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "no PONG within {START_LIMIT:?} ({pong:?}); log:\n{}",
                    log_tail(&log)
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

//! Helpers shared by the CLI tests: waiting for a child process to exit,
//! Helpers shared by the CLI tests: waiting for a child process to exit,
//! stopping it with SIGTERM, reading its output line by line, reading
//! `duplex serve`'s listening line, and running a library server. The
//! Redis backplane's test support is in the submodules, one concept each.
#![allow(dead_code)]

pub mod certs;
pub mod chat;
pub mod cli_run;
pub mod cluster;
pub mod connect_proxy;
pub mod delivery;
pub mod echo_target;
pub mod fault_proxy;
pub mod node;
pub mod proxy_relay;
pub mod real_proxy;
pub mod redis;
pub mod resp;
pub mod socks_server;
pub mod traffic;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A child process with its stderr lines, killed and reaped when dropped
/// (a failing test leaves nothing behind).
pub struct Process {
    pub child: Child,
    pub stderr: mpsc::Receiver<String>,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns `command` (a `duplex serve --listen 127.0.0.1:0`, possibly
/// wrapped) with its output piped, and waits at most `limit` for its
/// `listening on ws://...` line; returns the process and its address.
pub fn start_serve(mut command: Command, limit: Duration) -> (Process, String) {
    let mut child = command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start duplex serve");
    let stdout = lines_of(child.stdout.take().unwrap());
    let stderr = lines_of(child.stderr.take().unwrap());
    let process = Process { child, stderr };
    let line = stdout.recv_timeout(limit).unwrap_or_else(|e| {
        let stderr: Vec<String> = process.stderr.try_iter().collect();
        panic!(
            "no `listening on` line ({e}); stderr:\n{}",
            stderr.join("\n")
        )
    });
    let addr = listening_addr(&line);
    (process, addr)
}

/// Forwards the lines of `from` to a channel, on a thread.
pub fn lines_of(from: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits for `child` to exit, at most `limit`; `None` when it is still
/// running then (the caller panics with what it knows).
pub fn wait_for_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.try_wait().expect("try_wait")
}

/// Sends SIGTERM to `child`.
pub fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM failed");
}

/// The `HOST:PORT` of a `listening on ws://HOST:PORT` line.
pub fn listening_addr(line: &str) -> String {
    line.strip_prefix("listening on ws://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string()
}

/// A library server on a runtime of its own; dropping the guard stops it.
pub struct LibServer {
    pub addr: std::net::SocketAddr,
    handle: duplex::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for LibServer {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Binds `server` on a free port of 127.0.0.1 and serves it on a thread;
/// waits at most `limit` for it to be bound.
pub fn lib_server(server: duplex::Server, limit: Duration) -> LibServer {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let bound = server.bind("127.0.0.1:0").await.unwrap();
            tx.send((bound.local_addr(), bound.handle())).unwrap();
            let _ = bound.serve().await;
        });
    });
    let (addr, handle) = rx.recv_timeout(limit).expect("library server started");
    LibServer {
        addr,
        handle,
        thread: Some(thread),
    }
}

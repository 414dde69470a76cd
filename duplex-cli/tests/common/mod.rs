//! Helpers shared by the CLI tests: waiting for a child process to exit,
//! stopping it with SIGTERM, reading its output line by line, and reading
//! `duplex serve`'s listening line.
#![allow(dead_code)]

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

//! `duplex connect --reconnect` survives server restarts on the same
//! port: lines typed while the server is down are queued and echoed once
//! it is back, after a graceful stop (SIGTERM, close 1001) and after a
//! crash (SIGKILL, no close frame); the end of stdin exits 0.

mod common;

use std::io::Write;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The bound of one waiting step.
const STEP: Duration = Duration::from_secs(10);

/// A child process killed when dropped.
struct Process {
    child: Child,
    stdout: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
    /// stderr lines read so far (by `wait_stderr`).
    seen_stderr: Vec<String>,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    fn start(args: &[&str], stdin: Stdio) -> Process {
        let mut child = Command::new(env!("CARGO_BIN_EXE_duplex"))
            .args(args)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start duplex");
        Process {
            stdout: common::lines_of(child.stdout.take().unwrap()),
            stderr: common::lines_of(child.stderr.take().unwrap()),
            child,
            seen_stderr: Vec::new(),
        }
    }

    fn stderr(&mut self) -> String {
        self.seen_stderr.extend(self.stderr.try_iter());
        self.seen_stderr.join("\n")
    }

    /// The next stdout line.
    fn line(&mut self, what: &str) -> String {
        match self.stdout.recv_timeout(STEP) {
            Ok(line) => line,
            Err(e) => panic!("no stdout line ({what}): {e}; stderr:\n{}", self.stderr()),
        }
    }

    /// Waits for a stderr line containing `needle`.
    fn wait_stderr(&mut self, needle: &str) {
        let start = Instant::now();
        loop {
            let left = STEP.saturating_sub(start.elapsed());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(needle);
                    self.seen_stderr.push(line);
                    if found {
                        return;
                    }
                }
                Err(e) => panic!(
                    "no stderr line with {needle:?} ({e}); stderr:\n{}",
                    self.seen_stderr.join("\n")
                ),
            }
        }
    }

    fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        match common::wait_for_exit(&mut self.child, limit) {
            Some(status) => status,
            None => panic!(
                "the process did not exit within {limit:?}; stderr:\n{}",
                self.stderr()
            ),
        }
    }
}

/// `duplex serve` on `listen`; returns it with the address it printed.
fn serve(listen: &str) -> (Process, String) {
    let mut server = Process::start(&["serve", "--listen", listen], Stdio::null());
    let line = server.line("the listening line");
    let addr = common::listening_addr(&line);
    (server, addr)
}

fn sigterm(process: &Process) {
    common::sigterm(&process.child);
}

fn send_line(stdin: &mut ChildStdin, line: &str) {
    writeln!(stdin, "{line}").expect("write to the client's stdin");
    stdin.flush().unwrap();
}

#[test]
fn connect_reconnect_survives_server_restarts_on_the_same_port() {
    let (mut server, addr) = serve("127.0.0.1:0");
    let url = format!("ws://{addr}/echo");
    let mut client = Process::start(&["connect", "--reconnect", &url], Stdio::piped());
    let mut stdin = client.child.stdin.take().unwrap();
    client.wait_stderr("connected");

    send_line(&mut stdin, "first");
    assert_eq!(client.line("the echo of the first line"), "first");

    // A graceful stop (1001), then a crash (no close frame at all).
    for (round, how) in ["SIGTERM", "SIGKILL"].into_iter().enumerate() {
        if how == "SIGTERM" {
            sigterm(&server);
            let status = server.wait_exit(STEP);
            assert!(status.success(), "serve exited with {status} after SIGTERM");
        } else {
            server.child.kill().unwrap();
            server.wait_exit(STEP);
        }
        // Type only once the client knows the server is gone: a line
        // written into a connection that is already dead on the other
        // side would be lost in TCP (the client learns of it too late).
        client.wait_stderr("disconnected");
        client.wait_stderr("reconnecting");
        let line = format!("typed while down {round}");
        send_line(&mut stdin, &line);

        let restarted = Instant::now();
        let (restarted_server, again) = serve(&addr);
        server = restarted_server;
        assert_eq!(again, addr, "the server came back on another address");
        assert_eq!(
            client.line("the queued line after the reconnect"),
            line,
            "after {how}"
        );
        eprintln!(
            "after {how}: the queued line came back {:?} after the restart",
            restarted.elapsed()
        );
    }

    send_line(&mut stdin, "last");
    assert_eq!(client.line("the echo of the last line"), "last");
    // The end of stdin: a normal close and exit 0.
    drop(stdin);
    let status = client.wait_exit(STEP);
    assert!(
        status.success(),
        "connect exited with {status}; stderr:\n{}",
        client.stderr()
    );
    sigterm(&server);
    assert!(server.wait_exit(STEP).success());
}

//! Real proxies from Debian for a test: `tinyproxy` (HTTP CONNECT, with
//! its own generated configuration) and `microsocks` (SOCKS5), each on a
//! free port of 127.0.0.1, stopped when dropped.
//!
//! The binaries are `$DUPLEX_TINYPROXY` / `$DUPLEX_MICROSOCKS`, else found
//! on `PATH`. When one is missing, `start` fails the test in CI (`CI=true`
//! or `DUPLEX_REQUIRE_PEERS=1`) and otherwise prints a SKIPPED line and
//! returns `None`, as a missing `redis-server` does.
#![allow(dead_code)]

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::redis::{free_port, require_peers};

/// How long a proxy may take to accept connections after it started.
const START_LIMIT: Duration = Duration::from_secs(10);

/// `$VAR` if set (it must then be a file), else `name` on `PATH`.
fn binary(var: &str, name: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(var) {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn missing(name: &str, var: &str) {
    let what = format!("{name} not found ({var} or PATH; Debian package {name})");
    if require_peers() {
        panic!("{what} (CI=true or DUPLEX_REQUIRE_PEERS=1: a missing peer is a failure)");
    }
    // Straight to stderr, past the test harness's capture: a skip is seen.
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {what} (set {var}, or CI=true to make this a failure)"
    );
}

/// A child process, killed and reaped when dropped.
struct Running {
    child: Child,
    name: &'static str,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `command` and waits until `port` accepts connections.
fn start(mut command: Command, name: &'static str, port: u16) -> Result<Running, String> {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting {name}: {e}"))?;
    let mut running = Running { child, name };
    let start = Instant::now();
    while start.elapsed() < START_LIMIT {
        if let Some(status) = running.child.try_wait().unwrap() {
            return Err(format!("{name} exited at once: {status}"));
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(running);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!(
        "{name} did not listen on port {port} within {START_LIMIT:?}"
    ))
}

/// A running `tinyproxy`.
pub struct Tinyproxy {
    pub port: u16,
    dir: PathBuf,
    _process: Running,
}

impl Tinyproxy {
    /// A tinyproxy that allows `CONNECT` to `connect_port` only, from
    /// 127.0.0.1, wanting `basic_auth` credentials when given.
    pub fn start(connect_port: u16, basic_auth: Option<(&str, &str)>) -> Option<Tinyproxy> {
        let Some(binary) = binary("DUPLEX_TINYPROXY", "tinyproxy") else {
            missing("tinyproxy", "DUPLEX_TINYPROXY");
            return None;
        };
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "duplex-tinyproxy-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut last = String::new();
        // The port can be taken between picking and binding: try again.
        for _ in 0..5 {
            let port = free_port(false);
            let mut config = format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 60\nMaxClients 50\nAllow 127.0.0.1\n\
                 ConnectPort {connect_port}\nLogLevel Warning\nLogFile \"{}\"\n",
                dir.join("tinyproxy.log").display()
            );
            if let Some((user, password)) = basic_auth {
                config.push_str(&format!("BasicAuth {user} {password}\n"));
            }
            let conf = dir.join("tinyproxy.conf");
            std::fs::write(&conf, config).unwrap();
            let mut command = Command::new(&binary);
            command.arg("-d").arg("-c").arg(&conf);
            match start(command, "tinyproxy", port) {
                Ok(process) => {
                    return Some(Tinyproxy {
                        port,
                        dir,
                        _process: process,
                    })
                }
                Err(e) => last = e,
            }
        }
        panic!("tinyproxy did not start: {last}");
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What tinyproxy logged (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("tinyproxy.log")).unwrap_or_default()
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A running `microsocks`.
pub struct Microsocks {
    pub port: u16,
    _process: Running,
}

impl Microsocks {
    /// A microsocks on 127.0.0.1 without authentication.
    pub fn start() -> Option<Microsocks> {
        let Some(binary) = binary("DUPLEX_MICROSOCKS", "microsocks") else {
            missing("microsocks", "DUPLEX_MICROSOCKS");
            return None;
        };
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port(false);
            let mut command = Command::new(&binary);
            command.args(["-i", "127.0.0.1", "-p", &port.to_string()]);
            match start(command, "microsocks", port) {
                Ok(process) => {
                    return Some(Microsocks {
                        port,
                        _process: process,
                    })
                }
                Err(e) => last = e,
            }
        }
        panic!("microsocks did not start: {last}");
    }

    /// `SCHEME://127.0.0.1:PORT`
    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}", self.port)
    }
}

//! Finding and running the real peers of `tests/peers/`: Python
//! `websockets` and Node `ws`.
//!
//! Environment: `DUPLEX_PYTHON` (a python with `websockets`),
//! `DUPLEX_NODE_MODULES` (a `node_modules` with `ws`), `DUPLEX_PEERS_DIR`
//! (default `<workspace>/tests/peers`). Without them the tests look for
//! `<workspace>/.venv-test` and `tests/peers/node_modules`. A missing peer
//! skips its test with a loud message, or fails it when
//! `DUPLEX_REQUIRE_PEERS=1`.
//!
//! [`PeerCmd::command`] runs one of the scripts: `echo_server`, `battery`
//! (the client battery) or `probe` (one client connection that reports
//! what it negotiated and received, as JSON).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate sits in the workspace")
        .to_path_buf()
}

pub fn peers_dir() -> PathBuf {
    std::env::var_os("DUPLEX_PEERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("tests").join("peers"))
}

pub fn require_peers() -> bool {
    std::env::var("DUPLEX_REQUIRE_PEERS").is_ok_and(|v| v == "1")
}

/// Reports a missing peer: fails under `DUPLEX_REQUIRE_PEERS=1`, else
/// prints a loud message (the caller then returns early).
pub fn missing(what: &str) {
    if require_peers() {
        panic!("DUPLEX_REQUIRE_PEERS=1 but {what}");
    }
    eprintln!();
    eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
    eprintln!("!!! SKIPPED: {what}");
    eprintln!("!!! (set DUPLEX_PYTHON / DUPLEX_NODE_MODULES, or DUPLEX_REQUIRE_PEERS=1");
    eprintln!("!!!  to make this a failure; scripts/test.sh sets them all)");
    eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
    eprintln!();
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    Python,
    Node,
}

/// How to run one peer's scripts.
#[derive(Clone)]
pub struct PeerCmd {
    pub peer: Peer,
    program: PathBuf,
    node_path: Option<PathBuf>,
    dir: PathBuf,
}

impl PeerCmd {
    /// The peer's interpreter and directory, or `None` (reported) when it
    /// is not available.
    pub async fn find(peer: Peer) -> Option<PeerCmd> {
        let dir = peers_dir();
        let script = match peer {
            Peer::Python => "py_echo_server.py",
            Peer::Node => "node_echo_server.js",
        };
        if !dir.join(script).is_file() {
            missing(&format!("{script} is not in {}", dir.display()));
            return None;
        }
        match peer {
            Peer::Python => {
                let python = std::env::var_os("DUPLEX_PYTHON")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| workspace_root().join(".venv-test/bin/python"));
                let ok = Command::new(&python)
                    .args(["-c", "import websockets"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .await
                    .is_ok_and(|s| s.success());
                if !ok {
                    missing(&format!(
                        "no python with `websockets` (tried {}; set DUPLEX_PYTHON)",
                        python.display()
                    ));
                    return None;
                }
                Some(PeerCmd {
                    peer,
                    program: python,
                    node_path: None,
                    dir,
                })
            }
            Peer::Node => {
                let modules = std::env::var_os("DUPLEX_NODE_MODULES")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| dir.join("node_modules"));
                if !modules.join("ws").is_dir() {
                    missing(&format!(
                        "no node_modules with `ws` (tried {}; set DUPLEX_NODE_MODULES)",
                        modules.display()
                    ));
                    return None;
                }
                let ok = Command::new("node")
                    .arg("--version")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .await
                    .is_ok_and(|s| s.success());
                if !ok {
                    missing("`node` is not on PATH");
                    return None;
                }
                Some(PeerCmd {
                    peer,
                    program: PathBuf::from("node"),
                    node_path: Some(modules),
                    dir,
                })
            }
        }
    }

    pub fn command(&self, script: &str) -> Command {
        let script = match (self.peer, script) {
            (Peer::Python, "echo_server") => "py_echo_server.py",
            (Peer::Python, "probe") => "py_probe_client.py",
            (Peer::Python, _) => "py_client_battery.py",
            (Peer::Node, "echo_server") => "node_echo_server.js",
            (Peer::Node, "probe") => "node_probe_client.js",
            (Peer::Node, _) => "node_client_battery.js",
        };
        let mut cmd = Command::new(&self.program);
        cmd.arg(self.dir.join(script));
        if let Some(modules) = &self.node_path {
            let mut path = modules.clone().into_os_string();
            if let Some(old) = std::env::var_os("NODE_PATH") {
                path.push(":");
                path.push(old);
            }
            cmd.env("NODE_PATH", path);
        }
        cmd.kill_on_drop(true);
        cmd
    }
}

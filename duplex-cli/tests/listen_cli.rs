//! `duplex listen`: accepts several clients, prints what they send
//! (plain and `--jsonl`, with the client's number), sends stdin lines to
//! all of them, and at the end of stdin closes each with 1000 and exits 0.

mod common;

use std::io::Write;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use duplex::{CloseCode, Message};

const STEP: Duration = Duration::from_secs(20);

/// A running `duplex listen 0`, killed when dropped.
struct Listen {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    url: String,
}

impl Drop for Listen {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Listen {
    fn start(extra: &[&str]) -> Listen {
        let mut child = Command::new(common::cli_run::bin())
            .args(["listen", "0"])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start duplex listen");
        let stdin = child.stdin.take();
        let stdout = common::lines_of(child.stdout.take().unwrap());
        let stderr = common::lines_of(child.stderr.take().unwrap());
        let line = stderr.recv_timeout(STEP).expect("a listening line");
        let addr = line
            .strip_prefix("listening on ws://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        let url = format!("ws://{addr}/any/path");
        Listen {
            child,
            stdin,
            stdout,
            stderr,
            url,
        }
    }

    /// Waits for the stderr line saying client `n` connected.
    fn wait_connected(&self, n: u64) {
        let want = format!("duplex: client {n} connected from ");
        loop {
            let line = self.stderr.recv_timeout(STEP).expect("a connect notice");
            if line.starts_with(&want) {
                return;
            }
        }
    }

    fn line(&self) -> String {
        self.stdout.recv_timeout(STEP).expect("a stdout line")
    }

    fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async move { tokio::time::timeout(STEP, f).await.expect("async step") })
}

#[test]
fn listen_prints_clients_messages_broadcasts_stdin_and_closes_1000_at_eof() {
    let mut listen = Listen::start(&[]);
    block_on(async {
        let mut a = duplex::connect(&listen.url).await.unwrap();
        listen.wait_connected(1);
        let mut b = duplex::connect(&listen.url).await.unwrap();
        listen.wait_connected(2);

        a.send("from a").await.unwrap();
        assert_eq!(listen.line(), "from a");
        b.send(vec![1u8, 2, 255]).await.unwrap();
        assert_eq!(listen.line(), "<binary 3 bytes: 0102ff>");

        listen.send_line("to everyone");
        for ws in [&mut a, &mut b] {
            assert_eq!(
                ws.recv().await.unwrap().unwrap(),
                Message::text("to everyone")
            );
        }

        // The end of stdin: each client gets close 1000.
        drop(listen.stdin.take());
        for ws in [&mut a, &mut b] {
            match ws.recv().await {
                Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Normal),
                other => panic!("expected close 1000, got {other:?}"),
            }
            while let Some(item) = ws.recv().await {
                item.unwrap();
            }
        }
    });
    let status = common::wait_for_exit(&mut listen.child, STEP).expect("duplex listen exits");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn listen_jsonl_names_the_client_and_takes_hex_input() {
    let mut listen = Listen::start(&["--jsonl", "--input", "hex"]);
    block_on(async {
        let mut a = duplex::connect(&listen.url).await.unwrap();
        listen.wait_connected(1);
        a.send("multi\nline").await.unwrap();
        let json: serde_json::Value = serde_json::from_str(&listen.line()).unwrap();
        assert_eq!(json["type"], "text");
        assert_eq!(json["text"], "multi\nline");
        assert_eq!(json["size"], 10);
        assert_eq!(json["client"], 1);

        listen.send_line("cafe");
        assert_eq!(
            a.recv().await.unwrap().unwrap(),
            Message::binary(vec![0xca, 0xfe])
        );
        a.close(None).await.unwrap();
        // The client's close, as JSON.
        let json: serde_json::Value = serde_json::from_str(&listen.line()).unwrap();
        assert_eq!(json["type"], "close");
        assert_eq!(json["code"], 1000);
        assert_eq!(json["client"], 1);
    });
    drop(listen.stdin.take());
    let status = common::wait_for_exit(&mut listen.child, STEP).expect("duplex listen exits");
    assert_eq!(status.code(), Some(0));
}

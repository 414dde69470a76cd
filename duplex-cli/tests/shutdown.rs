//! `duplex serve` shuts down gracefully on SIGTERM: every client, on
//! `/echo` and on `/chat/<room>`, gets close 1001, and the process exits 0
//! promptly.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use duplex::{CloseCode, Message};

/// The bound of one waiting step.
const STEP: Duration = Duration::from_secs(10);

use common::Process;

impl Process {
    /// What the process wrote to stderr so far.
    fn stderr(&self) -> String {
        self.stderr.try_iter().collect::<Vec<_>>().join("\n")
    }

    /// Waits for the process to exit, at most `limit`.
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

/// Starts `duplex serve --listen 127.0.0.1:0` and returns it with its
/// address, from the `listening on ws://...` line.
fn serve() -> (Process, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_duplex"));
    command.args(["serve", "--listen", "127.0.0.1:0"]);
    common::start_serve(command, STEP)
}

fn sigterm(process: &Process) {
    common::sigterm(&process.child);
}

const CLIENTS: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_every_client_with_1001_and_exits_0() {
    let (mut server, addr) = serve();

    // Half on /echo (each proves it is live with one echo), half in a chat
    // room; every client then reads until the end.
    let (ready_tx, mut ready) = tokio::sync::mpsc::unbounded_channel();
    let mut clients = tokio::task::JoinSet::new();
    for i in 0..CLIENTS {
        let path = if i % 2 == 0 { "/echo" } else { "/chat/x" };
        let url = format!("ws://{addr}{path}");
        let ready = ready_tx.clone();
        clients.spawn(async move {
            let mut ws = duplex::connect(&url).await.expect("connect");
            if path == "/echo" {
                ws.send(format!("hello {i}")).await.expect("send");
                match ws.recv().await {
                    Some(Ok(m)) => assert_eq!(m, Message::text(format!("hello {i}"))),
                    other => panic!("client {i}: expected the echo, got {other:?}"),
                }
            }
            ready.send(()).unwrap();
            let mut close = None;
            while let Some(item) = ws.recv().await {
                match item {
                    Ok(Message::Close(frame)) => close = frame.map(|f| f.code),
                    Ok(Message::Ping(_) | Message::Pong(_)) => {}
                    other => panic!("client {i} on {path}: unexpected {other:?}"),
                }
            }
            (i, path, close, ws.close_code())
        });
    }
    drop(ready_tx);
    let all_ready = async {
        for _ in 0..CLIENTS {
            ready.recv().await.expect("a client failed to connect");
        }
    };
    if tokio::time::timeout(STEP, all_ready).await.is_err() {
        panic!("the clients did not connect; stderr:\n{}", server.stderr());
    }

    let signalled = Instant::now();
    sigterm(&server);
    let mut closed = 0;
    let all_closed = async {
        while let Some(result) = clients.join_next().await {
            let (i, path, close, code) = match result {
                Ok(outcome) => outcome,
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            };
            assert_eq!(
                close,
                Some(CloseCode::Away),
                "client {i} on {path}: close frame"
            );
            assert_eq!(code, CloseCode::Away, "client {i} on {path}: close_code()");
            closed += 1;
        }
    };
    if tokio::time::timeout(Duration::from_secs(5), all_closed)
        .await
        .is_err()
    {
        panic!(
            "only {closed} of {CLIENTS} clients were closed within 5 s of SIGTERM; stderr:\n{}",
            server.stderr()
        );
    }
    let clients_closed = signalled.elapsed();
    let status = server.wait_exit(Duration::from_secs(5));
    let exited = signalled.elapsed();
    assert!(
        status.success(),
        "duplex serve exited with {status}; stderr:\n{}",
        server.stderr()
    );
    assert!(exited < Duration::from_secs(5), "exit took {exited:?}");
    eprintln!("SIGTERM: {CLIENTS} clients closed with 1001 in {clients_closed:?}, exit 0 after {exited:?}");
}

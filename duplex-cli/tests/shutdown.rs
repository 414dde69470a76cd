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

    /// All it wrote to stderr, once it has exited: to the end of the pipe.
    fn all_stderr(&self) -> String {
        let mut lines = Vec::new();
        while let Ok(line) = self.stderr.recv_timeout(STEP) {
            lines.push(line);
        }
        lines.join("\n")
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

/// Relayed messages queued for each client when the signal arrives.
const QUEUED: u32 = 10_000;
/// Their size: 8 MB in all, within the default queue limit (8 MiB), so
/// nobody overflows, whatever the kernels buffer; and more than they do
/// (Linux's send buffers grow to 4 MiB by default, `tcp_wmem`), so a lot
/// waits in the server's queues when the signal arrives.
const QUEUED_SIZE: usize = 800;

/// Connects with a small receive buffer (16 KiB), so that little of the
/// stream can wait in the client's kernel, and without compression, so
/// that the messages take their full size on the wire.
async fn connect_small_buffer(addr: &str, url: &str) -> duplex::WebSocket<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(16 << 10).unwrap();
    let tcp = socket.connect(addr.parse().unwrap()).await.unwrap();
    let target = duplex::Target::parse(url).unwrap();
    let config = duplex::Config {
        deflate: None,
        ..duplex::Config::default()
    };
    duplex::ClientBuilder::new(url)
        .config(config)
        .handshake(tcp, &target)
        .await
        .expect("connect")
}

/// The first round of relayed messages: 4.8 MB, more than Linux's send
/// buffers grow to by default (4 MiB).
const FIRST_ROUND: u32 = 6_000;

/// Linux's largest TCP send buffer (`tcp_wmem`'s maximum), if known.
fn max_send_buffer() -> Option<u64> {
    let wmem = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem").ok()?;
    wmem.split_whitespace().last()?.parse().ok()
}

fn relayed(seq: u32) -> Message {
    let mut data = vec![b'.'; QUEUED_SIZE];
    data[..10].copy_from_slice(format!("{seq:010}").as_bytes());
    Message::Binary(data.into())
}

fn relayed_seq(data: &[u8]) -> u32 {
    assert_eq!(
        data.len(),
        QUEUED_SIZE,
        "a relayed message of the wrong size"
    );
    std::str::from_utf8(&data[..10]).unwrap().parse().unwrap()
}

/// Reads to the end: how many whole relayed messages arrived (in order;
/// the text hellos of the room's forming are skipped), and the close
/// frame's code if one came.
async fn read_relayed(
    ws: &mut duplex::WebSocket<tokio::net::TcpStream>,
    who: &str,
) -> (u32, Option<CloseCode>) {
    let mut received = 0;
    let mut close = None;
    while let Some(item) = ws.recv().await {
        match item {
            Ok(Message::Binary(data)) => {
                assert!(close.is_none(), "{who}: data after the close frame");
                assert_eq!(relayed_seq(&data), received, "{who}: a gap in the relay");
                received += 1;
            }
            Ok(Message::Close(frame)) => close = frame.map(|f| f.code),
            Ok(_) | Err(_) => {}
        }
    }
    (received, close)
}

/// The count in `shutdown: N queued message(s) ... not delivered`.
fn undelivered_in(stderr: &str) -> Option<u64> {
    let line = stderr.lines().find(|l| l.contains("not delivered"))?;
    let after = &line[line.find("shutdown: ")? + "shutdown: ".len()..];
    after.split_whitespace().next()?.parse().ok()
}

/// What is queued for the clients when SIGTERM arrives is flushed within
/// the shutdown grace before the 1001; a client that never reads cannot
/// hold the exit up beyond the grace, and what could not be written to it
/// is counted in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_queued_relay_messages_before_1001_and_counts_the_rest() {
    let (mut server, addr) = serve();
    let url = format!("ws://{addr}/chat/flush");
    // Reads everything as it comes: when it has the last message, every
    // other member's queue has had it too.
    let mut fast = connect_small_buffer(&addr, &url).await;
    // Reads only once the server is shutting down.
    let mut late = connect_small_buffer(&addr, &url).await;
    // Never reads while the server runs.
    let mut never = connect_small_buffer(&addr, &url).await;
    let mut publisher = duplex::connect(&url).await.expect("connect");
    // Each reader is in the room once it gets a message sent after it
    // joined: the publisher says hello until each has heard one (the
    // extra hellos are text, skipped when reading the relay).
    for (ws, who) in [
        (&mut fast, "fast"),
        (&mut late, "late"),
        (&mut never, "never"),
    ] {
        let joined = async {
            loop {
                publisher.send(Message::text("hello")).await.unwrap();
                let heard = tokio::time::timeout(Duration::from_millis(200), ws.recv()).await;
                if let Ok(Some(Ok(Message::Text(_)))) = heard {
                    break;
                }
            }
        };
        tokio::time::timeout(STEP, joined)
            .await
            .unwrap_or_else(|_| panic!("the {who} reader never joined"));
    }
    // Two rounds: the first is more than the kernels buffer for a client
    // that does not read, so its task then waits on a full socket; the
    // second stays in the server's queues.
    let mut relayed_so_far = 0;
    for end in [FIRST_ROUND, QUEUED] {
        for seq in relayed_so_far..end {
            publisher.feed(relayed(seq)).unwrap();
            if seq % 256 == 255 {
                publisher.flush().await.unwrap();
            }
        }
        publisher.flush().await.unwrap();
        let all_relayed = async {
            while relayed_so_far < end {
                match fast.recv().await {
                    Some(Ok(Message::Binary(data))) => {
                        assert_eq!(relayed_seq(&data), relayed_so_far);
                        relayed_so_far += 1;
                    }
                    Some(Ok(_)) => {}
                    other => panic!("the fast reader after {relayed_so_far}: {other:?}"),
                }
            }
        };
        if tokio::time::timeout(STEP, all_relayed).await.is_err() {
            panic!("the relay did not finish; stderr:\n{}", server.stderr());
        }
    }

    let signalled = Instant::now();
    sigterm(&server);
    let late_read = tokio::time::timeout(STEP, read_relayed(&mut late, "the late reader"))
        .await
        .expect("the late reader did not finish");
    let late_took = signalled.elapsed();
    let status = server.wait_exit(STEP);
    let exited = signalled.elapsed();
    let stderr = server.all_stderr();
    // Now the client that never read: what the server wrote to it before
    // the grace ran out.
    let never_read = tokio::time::timeout(STEP, read_relayed(&mut never, "the never reader"))
        .await
        .expect("the never reader did not finish");
    let undelivered = undelivered_in(&stderr);
    eprintln!(
        "SIGTERM with {QUEUED} relayed messages queued: the late reader got {} then close {:?} \
         in {late_took:?}; the never reader got {} (close {:?}); the log counts {undelivered:?} \
         undelivered; exit {status} after {exited:?}",
        late_read.0, late_read.1, never_read.0, never_read.1
    );
    assert_eq!(
        late_read,
        (QUEUED, Some(CloseCode::Away)),
        "the late reader"
    );
    assert!(status.success(), "exit {status}; stderr:\n{stderr}");
    assert!(exited < STEP, "exit took {exited:?}");
    // No line: nothing was left undelivered.
    let undelivered = undelivered.unwrap_or(0);
    // Whatever the never reader did not get is in the count, exactly.
    assert_eq!(
        u64::from(never_read.0) + undelivered,
        u64::from(QUEUED),
        "stderr:\n{stderr}"
    );
    // Unless the kernel could buffer the first round, the second was left
    // in the server's queue.
    if max_send_buffer().is_some_and(|max| max < u64::from(FIRST_ROUND) * 800) {
        assert!(undelivered > 0, "the never reader got everything");
    }
    let _ = (fast.close(None).await, publisher.close(None).await);
}

//! `duplex serve`'s timeouts on the built binary, each at 1 s or less:
//! `--message-timeout` fails a client that trickles a frame with 1008,
//! `--keepalive` drops a client that sends data but no pongs,
//! `--idle-timeout` closes a quiet connection with 1001, `--write-timeout`
//! drops an `/echo` client that never reads, and bad values are refused
//! with a clear message.
//!
//! The misbehaving clients are raw TCP sockets (frames built here), so
//! they can do what a real client never would.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::Process;
use duplex::{CloseCode, Message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;

/// The bound of one waiting step.
const STEP: Duration = Duration::from_secs(15);
/// The timeouts under test.
const LIMIT: Duration = Duration::from_secs(1);
/// Scheduling slack on top of them.
const MARGIN: Duration = Duration::from_secs(4);

/// `duplex serve --listen 127.0.0.1:0 FLAGS...`, with its address.
fn serve(flags: &[&str]) -> (Process, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_duplex"));
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(flags);
    common::start_serve(command, STEP)
}

async fn within<F: std::future::Future>(limit: Duration, what: &str, f: F) -> F::Output {
    tokio::time::timeout(limit, f)
        .await
        .unwrap_or_else(|_| panic!("timed out after {limit:?}: {what}"))
}

/// Upgrades a raw connection on `path` (no extension offered).
async fn upgrade(addr: &str, path: &str) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.expect("write");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = within(STEP, "the 101", tcp.read(&mut byte))
            .await
            .expect("read");
        assert_eq!(n, 1, "closed during the handshake");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{:?}",
        String::from_utf8_lossy(&head)
    );
    tcp
}

/// A masked client frame (FIN set).
fn masked(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let key = [0x37, 0xfa, 0x21, 0x3d];
    let mut out = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n < 65536 => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    out
}

/// The next server frame as (opcode, payload); `None` at the end of the
/// stream or a reset.
async fn next_frame(rd: &mut OwnedReadHalf, buf: &mut Vec<u8>) -> Option<(u8, Vec<u8>)> {
    let mut chunk = [0u8; 8192];
    loop {
        if buf.len() >= 2 {
            let (len, at) = match buf[1] & 0x7f {
                126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
                127 if buf.len() >= 10 => (
                    u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize,
                    10,
                ),
                126 | 127 => (usize::MAX, 0),
                n => (n as usize, 2),
            };
            if len != usize::MAX && buf.len() >= at + len {
                let frame = (buf[0] & 0x0f, buf[at..at + len].to_vec());
                buf.drain(..at + len);
                return Some(frame);
            }
        }
        match rd.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn close_code(payload: &[u8]) -> u16 {
    assert!(payload.len() >= 2, "a close frame without a code");
    u16::from_be_bytes([payload[0], payload[1]])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_timeout_fails_a_trickled_frame_with_1008() {
    let (_server, addr) = serve(&["--message-timeout", "1"]);
    let (mut rd, mut wr) = upgrade(&addr, "/echo").await.into_split();
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&(1u64 << 20).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    wr.write_all(&header).await.unwrap();
    let started = Instant::now();
    let trickle = tokio::spawn(async move {
        while wr.write_all(&[0]).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let mut buf = Vec::new();
    let frame = within(LIMIT + MARGIN, "the close", next_frame(&mut rd, &mut buf)).await;
    let took = started.elapsed();
    let (opcode, payload) = frame.expect("a close frame");
    assert_eq!(opcode, 0x8);
    assert_eq!(close_code(&payload), 1008);
    assert!(took >= LIMIT, "cut off after only {took:?}");
    trickle.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_drops_a_client_that_sends_data_but_no_pongs() {
    let (_server, addr) = serve(&["--keepalive", "0.3"]);
    let tcp = upgrade(&addr, "/echo").await;
    let connected = Instant::now();
    let (mut rd, mut wr) = tcp.into_split();
    let talk = tokio::spawn(async move {
        while wr.write_all(&masked(0x1, b"still talking")).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let mut buf = Vec::new();
    let mut close = None;
    let mut pings = 0;
    within(
        Duration::from_millis(600) + MARGIN,
        "the server to give up",
        async {
            while let Some((opcode, payload)) = next_frame(&mut rd, &mut buf).await {
                match opcode {
                    0x8 => close = Some(close_code(&payload)),
                    0x9 => pings += 1,
                    _ => {}
                }
            }
        },
    )
    .await;
    let took = connected.elapsed();
    talk.abort();
    assert_eq!(pings, 1, "one ping, then the timeout");
    assert!(matches!(close, None | Some(1001)), "close {close:?}");
    assert!(
        took >= Duration::from_millis(600),
        "dropped after only {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_closes_a_quiet_connection_with_1001() {
    let (_server, addr) = serve(&["--idle-timeout", "1"]);
    let mut ws = duplex::connect(&format!("ws://{addr}/echo")).await.unwrap();
    ws.send("one message").await.unwrap();
    let sent = Instant::now();
    assert_eq!(
        within(STEP, "the echo", ws.recv()).await.unwrap().unwrap(),
        Message::text("one message")
    );
    match within(LIMIT + MARGIN, "the idle close", ws.recv()).await {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert_eq!(frame.code, CloseCode::Away);
            assert_eq!(frame.reason, "idle timeout");
        }
        other => panic!("expected the idle close, got {other:?}"),
    }
    assert!(
        sent.elapsed() >= LIMIT,
        "closed after only {:?}",
        sent.elapsed()
    );
    assert!(within(STEP, "the end", ws.recv()).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_timeout_drops_an_echo_client_that_never_reads() {
    let (_server, addr) = serve(&["--write-timeout", "1"]);
    let tcp = upgrade(&addr, "/echo").await;
    let (_rd, mut wr) = tcp.into_split();
    let frame = masked(0x2, &vec![7u8; 64 << 10]);
    let mut last_progress = Instant::now();
    // The server echoes until its socket is full, stops reading, and once
    // it gives up, our blocked write fails with a reset.
    let failed = within(STEP * 2, "the server to drop us", async {
        for _ in 0..1024 {
            if wr.write_all(&frame).await.is_err() {
                return true;
            }
            last_progress = Instant::now();
        }
        false
    })
    .await;
    assert!(
        failed,
        "64 MiB went through to a server that echoes to nobody"
    );
    let after = last_progress.elapsed();
    eprintln!("dropped {after:?} after our last write went through");
    assert!(
        after <= LIMIT + MARGIN,
        "dropped only {after:?} after the stall"
    );
}

#[test]
fn bad_timeout_values_are_refused_with_a_clear_message() {
    for (flag, value) in [
        ("--message-timeout", "-1"),
        ("--idle-timeout", "soon"),
        ("--write-timeout", "1e30"),
        ("--keepalive", "nan"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_duplex"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                &format!("{flag}={value}"),
            ])
            .output()
            .expect("run duplex serve");
        assert_eq!(output.status.code(), Some(2), "{flag}={value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(flag) && stderr.contains("is not a number of seconds"),
            "{flag}={value}: {stderr}"
        );
    }
}

//! Measures what idle connections cost a server: opens N connections to an
//! echo endpoint, sends one message on each and reads its echo (so each
//! direction of permessage-deflate has run once), then reads the server's
//! resident memory while all N sit idle, and again at intervals after they
//! all closed (does freed memory go back to the operating system?).
//!
//! ```text
//! cargo run --release -p duplex-ws --example memory_probe -- \
//!     --url ws://127.0.0.1:8080/echo --pid SERVER_PID [--connections 10000] \
//!     [--message chat|16k] [--no-deflate]
//! ```
//!
//! `scripts/memory.sh` starts `duplex serve` under each compression policy
//! and runs this probe against it; its figures are in the README. The
//! client's own connections use the library defaults, so they offer
//! permessage-deflate the way browsers do (`client_max_window_bits`).
//! Linux only: the server's memory is read from `/proc/PID/status`.

use std::time::{Duration, Instant};

use duplex::{ClientBuilder, Config, Message};
use tokio::task::JoinSet;

/// A chat message as a browser client would send it (about 150 bytes).
const CHAT: &str = r#"{"type":"message","room":"lobby","user":"alice-1234","text":"Are we still meeting at five? I booked the small room on the third floor.","ts":1733050000123}"#;

/// How many handshakes run at once: enough to keep the server busy,
/// few enough not to overflow the listen backlog.
const OPENING_AT_ONCE: usize = 256;

struct Args {
    url: String,
    pid: u32,
    connections: usize,
    message: String,
    deflate: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        url: "ws://127.0.0.1:8080/echo".into(),
        pid: 0,
        connections: 10_000,
        message: CHAT.into(),
        deflate: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => args.url = value()?,
            "--pid" => args.pid = value()?.parse().map_err(|e| format!("--pid: {e}"))?,
            "--connections" => {
                args.connections = value()?
                    .parse()
                    .map_err(|e| format!("--connections: {e}"))?
            }
            "--message" => {
                args.message = match value()?.as_str() {
                    "chat" => CHAT.into(),
                    // 16 KiB of chat-like text: compressible, not trivially.
                    "16k" => CHAT.repeat(16 * 1024 / CHAT.len() + 1)[..16 * 1024].into(),
                    other => return Err(format!("--message: chat or 16k, not {other}")),
                }
            }
            "--no-deflate" => args.deflate = false,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.pid == 0 {
        return Err("--pid SERVER_PID is required".into());
    }
    Ok(args)
}

/// The server's resident set size in bytes (`VmRSS`).
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib * 1024)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("memory_probe: {message}");
            std::process::exit(2);
        }
    };
    let mut config = Config::default();
    if !args.deflate {
        config.deflate = None;
    }
    let builder = ClientBuilder::new(args.url.as_str())
        .config(config)
        .connect_timeout(Duration::from_secs(30))
        .handshake_timeout(Duration::from_secs(30));
    let before = rss_bytes(args.pid);
    let started = Instant::now();

    let mut sockets = Vec::with_capacity(args.connections);
    let mut opening = JoinSet::new();
    let mut compressed = 0usize;
    let mut next = 0;
    while sockets.len() < args.connections {
        while next < args.connections && opening.len() < OPENING_AT_ONCE {
            let (builder, message) = (builder.clone(), args.message.clone());
            opening.spawn(async move {
                let mut ws = builder.connect().await?;
                ws.send(Message::text(message.clone())).await?;
                match ws.recv().await {
                    Some(Ok(Message::Text(echo))) if echo.as_str() == message => Ok(ws),
                    other => Err(duplex::Error::from(std::io::Error::other(format!(
                        "expected the echo, got {other:?}"
                    )))),
                }
            });
            next += 1;
        }
        match opening.join_next().await.expect("tasks are running") {
            Ok(Ok(ws)) => {
                compressed += usize::from(ws.is_compressed());
                sockets.push(ws);
            }
            Ok(Err(error)) => {
                eprintln!("memory_probe: connection {} failed: {error}", sockets.len());
                std::process::exit(1);
            }
            Err(panic) => panic!("{panic}"),
        }
    }
    let opened_in = started.elapsed();
    // Let the server's post-echo work (buffer release timers) settle.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle = rss_bytes(args.pid);
    let per_connection = idle.saturating_sub(before) as f64 / args.connections as f64;
    println!(
        "connections={} compressed={} opened_in={:.1}s rss_before={:.1}MiB rss_idle={:.1}MiB per_connection={:.2}KiB",
        args.connections,
        compressed,
        opened_in.as_secs_f64(),
        mib(before),
        mib(idle),
        per_connection / 1024.0
    );

    let mut closing = JoinSet::new();
    for mut ws in sockets {
        closing.spawn(async move { ws.close(None).await });
    }
    while closing.join_next().await.is_some() {}
    let closed = Instant::now();
    let mut report = String::from("after_close:");
    for at in [1u64, 2, 5, 10] {
        let wait = Duration::from_secs(at).saturating_sub(closed.elapsed());
        tokio::time::sleep(wait).await;
        report.push_str(&format!(" {at}s={:.1}MiB", mib(rss_bytes(args.pid))));
    }
    println!("{report}");
}

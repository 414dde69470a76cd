//! A slow-sender load: N raw WebSocket clients each start one large
//! binary frame and then send its payload one byte at a time, the way a
//! "slowloris" attacker holds a server's connections open with almost no
//! traffic. The clients never answer pings. After the hold time it reports
//! how many connections the server still holds.
//!
//! ```text
//! cargo run --release -p duplex-cli --example slowloris -- \
//!     ws://127.0.0.1:8080/echo --connections 2000 --hold 60
//! ```
//!
//! `scripts/slowloris.sh` starts `duplex serve` and runs this against it.
//!
//! The clients are hand-written on raw TCP (not the duplex engine), so
//! they can do what a real client never would. A connection counts as
//! released once the server has given it up: its socket is gone, which
//! the client sees as a reset or broken pipe, since it keeps trickling
//! after the server's close frame and FIN. A server that sends its close
//! frame and FIN but keeps draining the socket still holds it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{watch, Barrier, Semaphore};

/// Options.
#[derive(Parser)]
#[command(about = "Hold a WebSocket server's connections with slowly trickled frames")]
struct Args {
    /// ws:// URL (plain TCP only).
    url: String,
    /// Simultaneous connections.
    #[arg(long, short = 'c', default_value_t = 2000)]
    connections: usize,
    /// Length the frame header claims, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    frame: u64,
    /// Seconds between two trickled bytes.
    #[arg(long, default_value_t = 1.0)]
    every: f64,
    /// Seconds to hold after every connection has started its frame.
    #[arg(long, default_value_t = 60.0)]
    hold: f64,
    /// Connections opened at once while ramping up.
    #[arg(long, default_value_t = 100)]
    ramp: usize,
}

/// What happened to one connection, in seconds since the trickle began.
#[derive(Default, Clone, Copy)]
struct Outcome {
    /// The server's close frame (code, when), if any.
    close: Option<(u16, f64)>,
    /// The server's FIN.
    fin: Option<f64>,
    /// The server released the socket (reset or broken pipe).
    released: Option<f64>,
}

struct Shared {
    outcomes: Mutex<Vec<Outcome>>,
    failed_handshakes: AtomicU64,
    bytes_sent: AtomicU64,
}

fn main() {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    if let Err(e) = runtime.block_on(run(args)) {
        eprintln!("slowloris: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), String> {
    let rest = args
        .url
        .strip_prefix("ws://")
        .ok_or("the URL must start with ws://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (authority, path) = (authority.to_string(), path.to_string());
    let n = args.connections;
    let shared = Arc::new(Shared {
        outcomes: Mutex::new(vec![Outcome::default(); n]),
        failed_handshakes: AtomicU64::new(0),
        bytes_sent: AtomicU64::new(0),
    });
    // Everyone starts trickling at once, after the last handshake.
    let barrier = Arc::new(Barrier::new(n + 1));
    let ramp = Arc::new(Semaphore::new(args.ramp.max(1)));
    let (start_tx, start) = watch::channel(None::<Instant>);
    let ramp_began = Instant::now();
    for i in 0..n {
        let conn = Connection {
            index: i,
            authority: authority.clone(),
            path: path.clone(),
            frame: args.frame,
            every: Duration::from_secs_f64(args.every),
            shared: shared.clone(),
            barrier: barrier.clone(),
            ramp: ramp.clone(),
            start: start.clone(),
        };
        tokio::spawn(conn.run());
    }
    barrier.wait().await;
    let began = Instant::now();
    let _ = start_tx.send(Some(began));
    let failed = shared.failed_handshakes.load(Ordering::Relaxed);
    println!(
        "{} of {n} connections upgraded in {:.1} s ({failed} failed); each now trickles \
         1 byte every {} s of a {}-byte frame",
        n as u64 - failed,
        ramp_began.elapsed().as_secs_f64(),
        args.every,
        args.frame
    );
    let hold = Duration::from_secs_f64(args.hold);
    let mut tick = Duration::from_secs(10).min(hold);
    while began.elapsed() < hold {
        let left = hold.saturating_sub(began.elapsed());
        tick = tick.min(left);
        tokio::time::sleep(tick).await;
        let held = count_held(&shared, failed);
        println!(
            "  after {:>4.0} s: {held} held",
            began.elapsed().as_secs_f64()
        );
    }
    report(&shared, args.hold, failed);
    Ok(())
}

fn count_held(shared: &Shared, failed: u64) -> u64 {
    let outcomes = shared.outcomes.lock().unwrap();
    let released = outcomes.iter().filter(|o| o.released.is_some()).count() as u64;
    outcomes.len() as u64 - released - failed
}

fn report(shared: &Shared, hold: f64, failed: u64) {
    let outcomes = shared.outcomes.lock().unwrap().clone();
    let upgraded = outcomes.len() as u64 - failed;
    let held = outcomes.iter().filter(|o| o.released.is_none()).count() as u64 - failed;
    let mut codes: Vec<(u16, usize)> = Vec::new();
    for (code, _) in outcomes.iter().filter_map(|o| o.close) {
        match codes.iter_mut().find(|(c, _)| *c == code) {
            Some((_, count)) => *count += 1,
            None => codes.push((code, 1)),
        }
    }
    codes.sort();
    let times = |pick: fn(&Outcome) -> Option<f64>| {
        let mut t: Vec<f64> = outcomes.iter().filter_map(pick).collect();
        t.sort_by(f64::total_cmp);
        match (t.first(), t.get(t.len() / 2), t.last()) {
            (Some(a), Some(m), Some(b)) => {
                format!("{} (min {a:.1} s, median {m:.1} s, max {b:.1} s)", t.len())
            }
            _ => "0".to_string(),
        }
    };
    println!("result after {hold} s: {held} of {upgraded} upgraded connections still held");
    println!("  close frames from the server: {codes:?} (code, count)");
    println!("  closed by the server (FIN): {}", times(|o| o.fin));
    println!("  released by the server: {}", times(|o| o.released));
    println!(
        "  payload bytes trickled in all: {}",
        shared.bytes_sent.load(Ordering::Relaxed)
    );
}

struct Connection {
    index: usize,
    authority: String,
    path: String,
    frame: u64,
    every: Duration,
    shared: Arc<Shared>,
    barrier: Arc<Barrier>,
    ramp: Arc<Semaphore>,
    /// When the trickle begins, set once every connection is open.
    start: watch::Receiver<Option<Instant>>,
}

impl Connection {
    async fn run(mut self) {
        let permit = self
            .ramp
            .clone()
            .acquire_owned()
            .await
            .expect("open semaphore");
        let opened = self.open().await;
        drop(permit);
        let tcp = match opened {
            Ok(tcp) => Some(tcp),
            Err(e) => {
                if self
                    .shared
                    .failed_handshakes
                    .fetch_add(1, Ordering::Relaxed)
                    == 0
                {
                    eprintln!("slowloris: a connection failed: {e}");
                }
                None
            }
        };
        self.barrier.wait().await;
        let Some(tcp) = tcp else { return };
        let Ok(began) = self
            .start
            .wait_for(Option::is_some)
            .await
            .map(|t| (*t).unwrap_or_else(Instant::now))
        else {
            return;
        };
        self.trickle(tcp, began).await;
    }

    /// Connects, upgrades, and sends the frame header (masked binary frame,
    /// 64-bit length, mask key).
    async fn open(&self) -> Result<TcpStream, String> {
        let mut tcp = TcpStream::connect(&self.authority)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            self.path, self.authority
        );
        tcp.write_all(request.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match tcp.read(&mut byte).await {
                Ok(1) => head.push(byte[0]),
                _ => return Err("closed during the handshake".into()),
            }
        }
        if !head.starts_with(b"HTTP/1.1 101") {
            let line = String::from_utf8_lossy(&head);
            return Err(format!("no 101: {}", line.lines().next().unwrap_or("")));
        }
        let mut header = vec![0x82, 0x80 | 127];
        header.extend_from_slice(&self.frame.to_be_bytes());
        header.extend_from_slice(&[1, 2, 3, 4]);
        tcp.write_all(&header)
            .await
            .map_err(|e| format!("write: {e}"))?;
        Ok(tcp)
    }

    /// Sends one payload byte per interval while reading what the server
    /// sends, until the server releases the socket.
    async fn trickle(self, tcp: TcpStream, began: Instant) {
        let (mut rd, mut wr) = tcp.into_split();
        let since = move || began.elapsed().as_secs_f64();
        let shared = self.shared.clone();
        let index = self.index;
        let record = move |f: &dyn Fn(&mut Outcome)| {
            f(&mut shared.outcomes.lock().unwrap()[index]);
        };
        let read = async {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                match rd.read(&mut chunk).await {
                    Ok(0) => {
                        let at = since();
                        record(&|o| o.fin = o.fin.or(Some(at)));
                        // Keep trickling: the write side tells when the
                        // server lets the socket go.
                        std::future::pending::<()>().await;
                    }
                    Ok(n) => {
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(code) = close_code(&mut buf) {
                            let at = since();
                            record(&|o| o.close = o.close.or(Some((code, at))));
                        }
                    }
                    Err(_) => return,
                }
            }
        };
        let write = async {
            let mut sent = 0u64;
            let mut tick = tokio::time::interval(self.every);
            tick.tick().await;
            loop {
                tick.tick().await;
                // Past the frame's end the bytes are garbage: keep the
                // connection busy all the same.
                let byte = [(sent as u8) ^ 0x5a];
                if wr.write_all(&byte).await.is_err() {
                    return;
                }
                sent += 1;
                self.shared.bytes_sent.fetch_add(1, Ordering::Relaxed);
            }
        };
        tokio::select! {
            _ = read => {}
            _ = write => {}
        }
        let at = since();
        record(&|o| o.released = o.released.or(Some(at)));
    }
}

/// The code of the first close frame among the server frames at the front
/// of `buf`, consuming the frames parsed.
fn close_code(buf: &mut Vec<u8>) -> Option<u16> {
    loop {
        if buf.len() < 2 {
            return None;
        }
        let (len, at) = match buf[1] & 0x7f {
            126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
            127 if buf.len() >= 10 => {
                (u64::from_be_bytes(buf[2..10].try_into().ok()?) as usize, 10)
            }
            126 | 127 => return None,
            n => (n as usize, 2),
        };
        if buf.len() < at + len {
            return None;
        }
        let opcode = buf[0] & 0x0f;
        let code = (opcode == 0x8).then(|| match len {
            0 | 1 => 1005,
            _ => u16::from_be_bytes([buf[at], buf[at + 1]]),
        });
        buf.drain(..at + len);
        if code.is_some() {
            return code;
        }
    }
}

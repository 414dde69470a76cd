//! Helpers shared by the integration tests: a server on 127.0.0.1 port 0
//! (and the echo route), bounded waits, a raw WebSocket client that writes
//! frames byte by byte (independent of the engine under test), the
//! process's resident set size, and in [`battery`] the bad-input battery.
//! Each test binary uses only some of them, hence `allow(dead_code)`.
#![allow(dead_code)]

#[cfg(feature = "hyper")]
pub mod adapters;
pub mod battery;
pub mod peers;

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use duplex::{Config, Server, ServerHandle, ServerSocket, UpgradeRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// The default bound of one step of a test.
pub const STEP: Duration = Duration::from_secs(10);

/// The bound of a whole test (of the API tests: echo, closing, handlers).
pub const TEST: Duration = Duration::from_secs(60);

/// Awaits `f` for at most `limit`, panicking with `what` when it takes
/// longer.
pub async fn within<F: Future>(limit: Duration, what: &str, f: F) -> F::Output {
    match tokio::time::timeout(limit, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {limit:?}: {what}"),
    }
}

/// The echo route of `duplex serve`: every data message comes back.
pub async fn echo(mut ws: ServerSocket, _req: UpgradeRequest) {
    while let Some(Ok(message)) = ws.recv().await {
        if message.is_data() && ws.send(message).await.is_err() {
            break;
        }
    }
}

/// A server with [`echo`] on `/echo`.
pub fn echo_server() -> Server {
    Server::new().route("/echo", echo)
}

/// The default configuration without `permessage-deflate`.
pub fn no_deflate() -> Config {
    #[allow(unused_mut)]
    let mut config = Config::default();
    #[cfg(feature = "deflate")]
    {
        config.deflate = None;
    }
    config
}

/// A server running on its own task.
pub struct Running {
    pub addr: SocketAddr,
    pub handle: ServerHandle,
    task: JoinHandle<duplex::Result<()>>,
}

impl Running {
    /// Binds `server` to 127.0.0.1 port 0 and serves it on a task.
    pub async fn start(server: Server) -> Running {
        let bound = server.bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = bound.local_addr();
        let handle = bound.handle();
        let task = tokio::spawn(bound.serve());
        Running { addr, handle, task }
    }

    /// `ws://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// Waits until the server has no open connection left.
    pub async fn wait_idle(&self, limit: Duration) {
        let start = Instant::now();
        while self.handle.connections() > 0 {
            assert!(
                start.elapsed() < limit,
                "the server still has {} connection(s) after {limit:?}",
                self.handle.connections()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Whether `serve()` has returned.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Shuts the server down and waits for `serve()` to return.
    pub async fn stop(self) {
        self.handle.shutdown();
        within(STEP, "serve() to return after shutdown", self.task)
            .await
            .expect("the serve task panicked")
            .expect("serve() failed");
    }

    /// Waits for `serve()` to return (after a shutdown started elsewhere).
    pub async fn join(self, limit: Duration) {
        within(limit, "serve() to return", self.task)
            .await
            .expect("the serve task panicked")
            .expect("serve() failed");
    }
}

/// The key of RFC 6455 §1.3 and its accept value.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// A valid upgrade request for `path` (no extensions offered).
pub fn upgrade_request(path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// An HTTP response read to the end of the connection.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
    /// How the connection ended: `true` for a clean end of stream, `false`
    /// for a reset after the response.
    pub clean_eof: bool,
}

impl RawResponse {
    /// The first value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Sends `request` on a new connection and reads the response until the
/// server closes the connection (at most `limit`).
pub async fn http_exchange(addr: SocketAddr, request: &[u8], limit: Duration) -> RawResponse {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    // The server may answer (and close) before reading everything we send,
    // so write from a separate task and do not insist it succeeds.
    let (mut rd, mut wr) = tcp.split();
    let request = request.to_vec();
    let write = async move {
        let _ = wr.write_all(&request).await;
    };
    let read = async move {
        let mut data = Vec::new();
        let mut chunk = [0u8; 4096];
        let clean = loop {
            match rd.read(&mut chunk).await {
                Ok(0) => break true,
                Ok(n) => data.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break false,
                Err(e) => panic!("reading the response: {e}"),
            }
        };
        (data, clean)
    };
    let ((), (data, clean_eof)) = within(limit, "the server to answer and close", async {
        tokio::join!(write, read)
    })
    .await;
    parse_response(&data, clean_eof)
}

fn parse_response(data: &[u8], clean_eof: bool) -> RawResponse {
    let end = data
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "no complete HTTP response head in {:?}",
                String::from_utf8_lossy(data)
            )
        });
    let head = String::from_utf8_lossy(&data[..end]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {head:?}"));
    RawResponse {
        status,
        head,
        body: data[end + 4..].to_vec(),
        clean_eof,
    }
}

/// Builds one frame: `first` is the first header byte (FIN, RSV1-3 and
/// opcode), `mask` the masking key (clients must mask).
pub fn frame(first: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = frame_header(first, payload.len() as u64, mask);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(key) = mask {
        apply_mask(&mut out[start..], key);
    }
    out
}

/// Masks (or unmasks) `payload` with `key`, from its first byte.
pub fn apply_mask(payload: &mut [u8], key: [u8; 4]) {
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= key[i % 4];
    }
}

/// A frame header claiming `len` payload bytes (7-, 16- or 64-bit length).
pub fn frame_header(first: u8, len: u64, mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![first];
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    if len < 126 {
        out.push(mask_bit | len as u8);
    } else if len <= 0xffff {
        out.push(mask_bit | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&len.to_be_bytes());
    }
    if let Some(key) = mask {
        out.extend_from_slice(&key);
    }
    out
}

/// A masked client frame with a fixed key.
pub fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    frame(first, payload, Some([0x37, 0xfa, 0x21, 0x3d]))
}

/// A close payload: code and reason bytes.
pub fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason);
    p
}

/// A frame as read from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    pub fin: bool,
    pub rsv: u8,
    pub opcode: u8,
    pub masked: bool,
    pub payload: Vec<u8>,
}

impl RawFrame {
    /// The close code of a close frame (1005 if it has none).
    pub fn close_code(&self) -> u16 {
        assert_eq!(self.opcode, 0x8, "not a close frame: {self:?}");
        if self.payload.len() >= 2 {
            u16::from_be_bytes([self.payload[0], self.payload[1]])
        } else {
            1005
        }
    }

    pub fn close_reason(&self) -> String {
        String::from_utf8_lossy(self.payload.get(2..).unwrap_or_default()).into_owned()
    }
}

/// A WebSocket client made of raw bytes, for sending what a real client
/// never would.
pub struct RawClient {
    pub tcp: TcpStream,
    buf: Vec<u8>,
    /// The connection ended with a reset rather than a clean end of stream.
    pub reset: bool,
}

impl RawClient {
    /// Connects and completes a handshake for `path` (no extensions).
    pub async fn open(addr: SocketAddr, path: &str) -> RawClient {
        let mut tcp = within(STEP, "connect", TcpStream::connect(addr))
            .await
            .expect("connect");
        tcp.set_nodelay(true).expect("nodelay");
        tcp.write_all(upgrade_request(path).as_bytes())
            .await
            .expect("write the upgrade request");
        let mut client = RawClient {
            tcp,
            buf: Vec::new(),
            reset: false,
        };
        let head = within(STEP, "the 101 response", async {
            loop {
                if let Some(end) = client.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&client.buf[..end]).into_owned();
                    client.buf.drain(..end + 4);
                    return head;
                }
                assert!(client.fill().await > 0, "closed during the handshake");
            }
        })
        .await;
        assert!(
            head.starts_with("HTTP/1.1 101 "),
            "expected 101, got {head:?}"
        );
        assert!(
            head.contains(&format!("Sec-WebSocket-Accept: {ACCEPT}")),
            "wrong accept in {head:?}"
        );
        client
    }

    async fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 8192];
        match self.tcp.read(&mut chunk).await {
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                n
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                self.reset = true;
                0
            }
            Err(e) => panic!("read: {e}"),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.tcp.write_all(bytes).await.expect("write a frame");
    }

    /// Sends, ignoring a failure (the server may have closed already).
    pub async fn send_lenient(&mut self, bytes: &[u8]) {
        let _ = self.tcp.write_all(bytes).await;
    }

    /// Reads the next frame; `None` at the end of the stream.
    pub async fn read_frame(&mut self) -> Option<RawFrame> {
        loop {
            if let Some((frame, used)) = parse_frame(&self.buf) {
                self.buf.drain(..used);
                return Some(frame);
            }
            if self.fill().await == 0 {
                assert!(
                    self.buf.is_empty(),
                    "stream ended inside a frame: {:?}",
                    self.buf
                );
                return None;
            }
        }
    }

    /// Reads frames until a close frame (at most `limit`); returns it and
    /// the data frames seen before it.
    pub async fn expect_close(&mut self, limit: Duration) -> (RawFrame, Vec<RawFrame>) {
        within(limit, "the server's close frame", async {
            let mut before = Vec::new();
            loop {
                match self.read_frame().await {
                    Some(f) if f.opcode == 0x8 => {
                        assert!(!f.masked, "server frames must not be masked");
                        return (f, before);
                    }
                    Some(f) => before.push(f),
                    None => panic!("connection ended without a close frame (after {before:?})"),
                }
            }
        })
        .await
    }

    /// Checks the server closes the TCP connection within `limit` without
    /// sending anything more.
    pub async fn expect_eof(&mut self, limit: Duration) {
        within(limit, "the server to close the TCP connection", async {
            if let Some(f) = self.read_frame().await {
                panic!("expected the end of the stream, got {f:?}");
            }
        })
        .await;
        if self.reset {
            eprintln!("note: the server reset the connection instead of closing it cleanly");
        }
    }
}

/// Parses one server frame from the start of `buf`.
pub fn parse_frame(buf: &[u8]) -> Option<(RawFrame, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let masked = buf[1] & 0x80 != 0;
    let (len, mut at) = match buf[1] & 0x7f {
        126 => {
            if buf.len() < 4 {
                return None;
            }
            (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4)
        }
        127 => {
            if buf.len() < 10 {
                return None;
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(b) as usize, 10)
        }
        n => (n as usize, 2),
    };
    let mut key = None;
    if masked {
        if buf.len() < at + 4 {
            return None;
        }
        key = Some([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
        at += 4;
    }
    if buf.len() < at + len {
        return None;
    }
    let mut payload = buf[at..at + len].to_vec();
    if let Some(k) = key {
        apply_mask(&mut payload, k);
    }
    Some((
        RawFrame {
            fin: buf[0] & 0x80 != 0,
            rsv: (buf[0] >> 4) & 0x7,
            opcode: buf[0] & 0x0f,
            masked,
            payload,
        },
        at + len,
    ))
}

/// Text of exactly `n` bytes of UTF-8 mixing 1- to 4-byte characters.
pub fn text_of(n: usize, seed: u64) -> String {
    const PALETTE: [&str; 8] = ["a", "Z", "é", "ж", "✓", "中", "😀", "~"];
    let mut s = String::with_capacity(n);
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    while s.len() < n {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let c = PALETTE[(x >> 33) as usize % PALETTE.len()];
        if s.len() + c.len() <= n {
            s.push_str(c);
        } else {
            s.push('.');
        }
    }
    s
}

/// `n` bytes holding every byte value, then a seeded pattern.
pub fn binary_of(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed ^ 0x9e3779b97f4a7c15;
    (0..n)
        .map(|i| {
            if i < 256 {
                i as u8
            } else {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            }
        })
        .collect()
}

/// The resident set size of this process (the server under test and its
/// clients run in it), in bytes.
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("VmRSS in /proc/self/status");
    kib * 1024
}

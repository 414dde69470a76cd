//! The contract of the `duplex` command (see DESIGN.md), tested on the
//! built binary: `duplex serve` prints its address and serves `/healthz`,
//! `/` and `/echo`; `duplex connect` echoes stdin lines, shows binary
//! marked, fails with one line on stderr; SIGTERM closes clients with 1001
//! and exits 0.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use duplex::{CloseCode, Message, Server, ServerSocket, UpgradeRequest};

const BIN: &str = env!("CARGO_BIN_EXE_duplex");
/// The bound of any one wait in these tests.
const STEP: Duration = Duration::from_secs(15);

/// A child process that is killed if the test ends early.
struct Proc {
    child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Proc {
    /// Waits for the exit, at most `limit`.
    fn wait_for_exit(&mut self, limit: Duration) -> ExitStatus {
        common::wait_for_exit(&mut self.child, limit)
            .unwrap_or_else(|| panic!("the process did not exit within {limit:?}"))
    }

    fn terminate(&self) {
        common::sigterm(&self.child);
    }
}

/// A running `duplex serve` on a free port.
struct Serve {
    proc: Proc,
    addr: SocketAddr,
    first_line: String,
    stdout: mpsc::Receiver<String>,
}

fn serve() -> Serve {
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start duplex serve");
    let stdout = common::lines_of(child.stdout.take().unwrap());
    let proc = Proc { child };
    let first_line = stdout
        .recv_timeout(STEP)
        .expect("duplex serve printed no first line");
    let port = first_line
        .strip_prefix("listening on ws://127.0.0.1:")
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("unexpected first line {first_line:?}"));
    assert_ne!(port, 0);
    Serve {
        proc,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        first_line,
        stdout,
    }
}

/// A plain HTTP GET; returns status, head and body (read to the end).
fn http_get(addr: SocketAddr, path: &str) -> (u16, String, Vec<u8>) {
    let mut tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(STEP)).unwrap();
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut data = Vec::new();
    tcp.read_to_end(&mut data).expect("read the response");
    let end = data
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let head = String::from_utf8_lossy(&data[..end]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    (status, head, data[end + 4..].to_vec())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Runs `duplex connect ARGS` with `input` on stdin (closed afterwards),
/// bounded by `limit`.
fn connect(args: &[&str], input: Option<&str>, limit: Duration) -> Output {
    let mut child = Command::new(BIN)
        .arg("connect")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start duplex connect");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let input = input.map(str::to_string);
    let keep_stdin = thread::spawn(move || {
        if let Some(input) = input {
            let _ = stdin.write_all(input.as_bytes());
            drop(stdin);
            None
        } else {
            // Keep stdin open: the client ends when the server closes.
            Some(stdin)
        }
    });
    let mut proc = Proc { child };
    let status = proc.wait_for_exit(limit);
    drop(keep_stdin.join());
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts a failed `duplex connect`: non-zero exit and exactly one line
/// on stderr, which contains `needle` (case-insensitive); returns it.
fn assert_one_line_failure(output: &Output, needle: &str) -> String {
    let stderr = text(&output.stderr);
    assert!(
        !output.status.success(),
        "expected a failure, got {:?}; stderr {stderr:?}",
        output.status
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one stderr line, got {stderr:?}");
    assert!(
        lines[0].to_lowercase().contains(&needle.to_lowercase()),
        "stderr {:?} does not mention {needle:?}",
        lines[0]
    );
    lines[0].to_string()
}

fn lib_server(server: Server) -> common::LibServer {
    common::lib_server(server, STEP)
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async move {
            tokio::time::timeout(STEP, f)
                .await
                .expect("timed out in an async step")
        })
}

#[test]
fn serve_prints_its_address_and_serves_http_routes() {
    let server = serve();
    assert_eq!(
        server.first_line,
        format!("listening on ws://{}", server.addr)
    );

    let (status, head, body) = http_get(server.addr, "/healthz");
    assert_eq!(status, 200, "{head}");
    assert_eq!(text(&body).trim(), "ok");

    let (status, head, body) = http_get(server.addr, "/");
    assert_eq!(status, 200, "{head}");
    let content_type = header(&head, "content-type").unwrap_or_default();
    assert!(content_type.starts_with("text/html"), "{head}");
    let page = text(&body).to_lowercase();
    assert!(page.contains("<html"), "the page is not HTML: {page:.200}");

    let (status, head, _) = http_get(server.addr, "/no/such/thing");
    assert_eq!(status, 404, "{head}");
    // Nothing else was printed.
    assert!(server.stdout.try_recv().is_err());
}

#[test]
fn connect_echoes_stdin_lines_and_exits_0_at_the_end_of_stdin() {
    let server = serve();
    let url = format!("ws://{}/echo", server.addr);
    let input = "hello\nworld ✓\n\nlast line\n";
    let output = connect(&[&url], Some(input), STEP);
    assert!(
        output.status.success(),
        "exit {:?}, stderr {:?}",
        output.status,
        text(&output.stderr)
    );
    assert_eq!(text(&output.stdout), input);
    assert_eq!(text(&output.stderr), "", "nothing on stderr on success");

    // Without compression too.
    let output = connect(&[&url, "--no-compression"], Some("a\nb\n"), STEP);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout), "a\nb\n");
}

/// Sends binary, then text, then closes normally.
async fn binary_then_close(mut ws: ServerSocket, _req: UpgradeRequest) {
    let _ = ws.send(vec![0xdeu8, 0xad, 0xbe, 0xef]).await;
    let _ = ws.send("after the binary").await;
    let _ = ws.close(None).await;
}

#[test]
fn connect_shows_binary_marked_and_exits_0_on_a_normal_close() {
    let server = lib_server(Server::new().route("/bin", binary_then_close));
    let url = format!("ws://{}/bin", server.addr);
    let output = connect(&[&url], None, STEP);
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "exit {:?}, stderr {:?}",
        output.status,
        text(&output.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout:?}");
    assert!(
        lines[0].to_lowercase().contains("binary") && !lines[0].contains('\u{fffd}'),
        "binary is not clearly marked: {:?}",
        lines[0]
    );
    assert!(
        lines[0].to_lowercase().contains("deadbeef") || lines[0].contains('4'),
        "the binary line says nothing about the data: {:?}",
        lines[0]
    );
    assert_eq!(lines[1], "after the binary");
}

#[test]
fn connect_failures_exit_non_zero_with_one_line() {
    // A port nobody listens on.
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let refused = connect(&[&format!("ws://127.0.0.1:{port}/echo")], Some(""), STEP);
    assert_one_line_failure(&refused, "refused");

    let bad = connect(&["not a url"], Some(""), STEP);
    assert_one_line_failure(&bad, "url");
    let bad_scheme = connect(&["http://127.0.0.1:1/echo"], Some(""), STEP);
    assert_one_line_failure(&bad_scheme, "ws");

    let server = serve();
    let not_found = connect(
        &[&format!("ws://{}/no-such-path", server.addr)],
        Some(""),
        STEP,
    );
    assert_one_line_failure(&not_found, "404");
}

#[test]
fn connect_reports_an_abnormal_close() {
    // A server that upgrades and then vanishes without a close frame.
    let server = lib_server(Server::new().route(
        "/vanish",
        |ws: ServerSocket, _req: UpgradeRequest| async move {
            drop(ws);
        },
    ));
    let output = connect(&[&format!("ws://{}/vanish", server.addr)], None, STEP);
    assert_one_line_failure(&output, "abnormal");
}

#[test]
fn sigterm_closes_clients_with_1001_and_exits_0() {
    let mut server = serve();
    let url = format!("ws://{}/echo", server.addr);
    // A `duplex connect` client, kept connected by an open stdin; once its
    // line comes back it is surely upgraded.
    let mut child = Command::new(BIN)
        .args(["connect", &url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start duplex connect");
    let mut stdin = child.stdin.take().unwrap();
    let lines = common::lines_of(child.stdout.take().unwrap());
    let mut stderr = child.stderr.take().unwrap();
    let mut cli_client = Proc { child };
    writeln!(stdin, "ready").unwrap();
    stdin.flush().unwrap();
    assert_eq!(lines.recv_timeout(STEP).unwrap(), "ready");

    block_on(async {
        let mut ws = duplex::connect(&url).await.expect("connect");
        ws.send("ping?").await.unwrap();
        assert_eq!(ws.recv().await.unwrap().unwrap(), Message::text("ping?"));
        let sent = Instant::now();
        server.proc.terminate();
        match ws.recv().await {
            Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Away),
            other => panic!("expected close 1001, got {other:?}"),
        }
        while let Some(item) = ws.recv().await {
            item.unwrap();
        }
        assert_eq!(ws.close_code(), CloseCode::Away);
        drop(ws);
        let status = server.proc.wait_for_exit(Duration::from_secs(5));
        assert_eq!(status.code(), Some(0), "duplex serve exit status");
        assert!(sent.elapsed() < Duration::from_secs(5));
    });
    let status = cli_client.wait_for_exit(STEP);
    let mut err = String::new();
    let _ = stderr.read_to_string(&mut err);
    assert!(
        status.success(),
        "duplex connect should exit 0 when the server goes away (1001): {status:?} {err:?}"
    );
    drop(stdin);
}

/// Reads one (unmasked) server frame: first byte, payload.
fn read_frame(tcp: &mut TcpStream) -> std::io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 2];
    tcp.read_exact(&mut head)?;
    let len = match head[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            tcp.read_exact(&mut b)?;
            u16::from_be_bytes(b) as usize
        }
        127 => {
            let mut b = [0u8; 8];
            tcp.read_exact(&mut b)?;
            u64::from_be_bytes(b) as usize
        }
        n => n as usize,
    };
    let mut payload = vec![0u8; len];
    tcp.read_exact(&mut payload)?;
    Ok((head[0], payload))
}

#[test]
fn serve_answers_protocol_violations_with_a_close_code() {
    let server = serve();
    // (frame bytes after the upgrade, expected close code)
    let cases: [(&str, Vec<u8>, u16); 3] = [
        ("unmasked frame", vec![0x81, 0x02, b'h', b'i'], 1002),
        (
            "invalid UTF-8",
            vec![0x81, 0x82, 0, 0, 0, 0, 0xc3, 0x28],
            1007,
        ),
        (
            "frame of 2^62 bytes",
            vec![0x82, 0xff, 0x40, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4],
            1009,
        ),
    ];
    for (name, bytes, code) in cases {
        let mut tcp = TcpStream::connect(server.addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            tcp,
            "GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        )
        .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            tcp.read_exact(&mut byte).expect("the 101 response");
            head.push(byte[0]);
        }
        assert!(head.starts_with(b"HTTP/1.1 101 "), "{name}");
        tcp.write_all(&bytes).unwrap();
        let (first, payload) = read_frame(&mut tcp)
            .unwrap_or_else(|e| panic!("{name}: no close frame from duplex serve ({e})"));
        assert_eq!(first & 0x0f, 0x8, "{name}: expected a close frame");
        assert!(payload.len() >= 2, "{name}: close without a code");
        assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), code, "{name}");
        // Then the server closes the connection.
        let mut rest = Vec::new();
        let _ = tcp.read_to_end(&mut rest);
        assert!(rest.is_empty(), "{name}: data after the close: {rest:?}");
    }
}

//! Our client against a misbehaving server made of raw bytes: bad frames
//! from the server fail the connection with the right close code (sent
//! masked), bad handshake responses are refused, and `close()` gives up
//! after its timeout when the server never answers.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::battery::{assert_no_failures, named, run_cases};
use common::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A one-connection server made of raw bytes: reads the upgrade request
/// and answers with `response(key)`, then hands the stream to `then`.
async fn raw_server<R, T, Fut>(response: R, then: T) -> SocketAddr
where
    R: FnOnce(&str) -> String + Send + 'static,
    T: FnOnce(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if tokio::io::AsyncReadExt::read(&mut tcp, &mut byte)
                .await
                .unwrap_or(0)
                == 0
            {
                return;
            }
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        let key = head
            .lines()
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.trim()
                    .eq_ignore_ascii_case("sec-websocket-key")
                    .then(|| v.trim().to_string())
            })
            .unwrap_or_default();
        tcp.write_all(response(&key).as_bytes()).await.unwrap();
        then(tcp).await;
    });
    addr
}

fn accept_101(key: &str) -> String {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        duplex::proto::handshake::accept_key(key)
    )
}

/// Reads what the client sends until it closes, returning the frames.
async fn client_frames(mut tcp: TcpStream) -> Vec<RawFrame> {
    let mut data = Vec::new();
    let _ = within(
        STEP,
        "the client to close",
        tokio::io::AsyncReadExt::read_to_end(&mut tcp, &mut data),
    )
    .await;
    let mut frames = Vec::new();
    let mut at = 0;
    while let Some((f, used)) = parse_frame(&data[at..]) {
        frames.push(f);
        at += used;
    }
    frames
}

/// A server that sends `bytes` after the upgrade; our client must fail
/// the connection with `code` and report a protocol error.
async fn client_fails_with(bytes: Vec<u8>, code: u16) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let addr = raw_server(accept_101, move |mut tcp| async move {
        tcp.write_all(&bytes).await.unwrap();
        let _ = tx.send(client_frames(tcp).await);
    })
    .await;
    let mut ws = duplex::connect(&format!("ws://{addr}/"))
        .await
        .expect("handshake");
    within(STEP, "the client to fail the connection", async {
        match ws.recv().await {
            Some(Err(duplex::Error::Protocol(e))) => {
                assert_eq!(u16::from(e.close_code()), code, "{e}")
            }
            other => panic!("expected a protocol error, got {other:?}"),
        }
        // After the error the stream ends.
        while let Some(item) = ws.recv().await {
            if let Ok(m) = item {
                panic!("a message after the error: {m:?}");
            }
        }
    })
    .await;
    drop(ws);
    let frames = within(STEP, "the raw server", rx).await.unwrap();
    let close = frames
        .iter()
        .find(|f| f.opcode == 0x8)
        .unwrap_or_else(|| panic!("the client sent no close frame: {frames:?}"));
    assert!(close.masked, "client frames must be masked");
    assert_eq!(close.close_code(), code);
}

#[tokio::test]
async fn client_fails_bad_server_frames() {
    let cases = vec![
        named(
            "masked server frame",
            client_fails_with(masked(0x81, b"hi"), 1002),
        ),
        named(
            "invalid UTF-8 from the server",
            client_fails_with(frame(0x81, b"\xc3\x28", None), 1007),
        ),
        named(
            "reserved opcode from the server",
            client_fails_with(frame(0x85, b"", None), 1002),
        ),
        named(
            "compressed frame without deflate",
            client_fails_with(frame(0xC1, b"x", None), 1002),
        ),
    ];
    assert_no_failures(run_cases(cases).await);
}

/// Makes a handshake response from the client's key.
type ResponseFn = Box<dyn FnOnce(&str) -> String + Send>;

#[tokio::test]
async fn client_rejects_bad_handshake_responses() {
    let cases: Vec<(&str, ResponseFn)> = vec![
        (
            "wrong accept",
            Box::new(|_key: &str| {
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Accept: bm90IHRoZSByaWdodCBvbmU=\r\n\r\n"
                    .to_string()
            }),
        ),
        (
            "no Upgrade",
            Box::new(|key: &str| accept_101(key).replace("Upgrade: websocket\r\n", "")),
        ),
        (
            "an extension that was not offered",
            Box::new(|key: &str| {
                accept_101(key).replace(
                    "\r\n\r\n",
                    "\r\nSec-WebSocket-Extensions: x-unknown-extension\r\n\r\n",
                )
            }),
        ),
        (
            "a subprotocol that was not offered",
            Box::new(|key: &str| {
                accept_101(key).replace("\r\n\r\n", "\r\nSec-WebSocket-Protocol: chat\r\n\r\n")
            }),
        ),
        (
            "garbage",
            Box::new(|_key: &str| "SSH-2.0-OpenSSH\r\n\r\n".to_string()),
        ),
        (
            "200 OK",
            Box::new(|_key: &str| "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_string()),
        ),
    ];
    for (name, response) in cases {
        let addr = raw_server(response, |tcp| async move {
            let _ = client_frames(tcp).await;
        })
        .await;
        let result = within(
            STEP,
            name,
            duplex::ClientBuilder::new(format!("ws://{addr}/"))
                .config(no_deflate())
                .connect(),
        )
        .await;
        match result {
            Err(duplex::Error::Handshake(e)) => {
                if name == "200 OK" {
                    assert_eq!(e.status(), Some(200), "{name}: {e}");
                }
            }
            other => panic!("{name}: expected a handshake error, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn client_close_times_out_when_the_server_never_answers() {
    let addr = raw_server(accept_101, |tcp| async move {
        // Read and ignore everything, answer nothing, never close.
        let _ = client_frames(tcp).await;
    })
    .await;
    let mut ws = duplex::connect(&format!("ws://{addr}/")).await.unwrap();
    ws.set_close_timeout(Duration::from_millis(300));
    let start = Instant::now();
    let result = within(STEP, "close() to give up", ws.close(None)).await;
    assert!(
        matches!(result, Err(duplex::Error::Timeout(_))),
        "expected a timeout, got {result:?}"
    );
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "close() gave up after {waited:?}"
    );
}

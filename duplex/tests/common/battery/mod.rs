//! The bad-input battery: servers with a short handshake timeout, named
//! cases run one at a time with every failure collected, and the check
//! that a normal client is still served afterwards. [`handshakes`] and
//! [`frames`] hold the cases that more than one test file runs.

pub mod frames;
pub mod handshakes;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use duplex::{Message, Server};
use tokio::net::TcpStream;

use super::{echo, within, Running, STEP};

/// The handshake timeout of the servers under test.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_millis(400);
/// How long the server may take to close the TCP connection after its
/// close frame or error response.
pub const CLOSE_BOUND: Duration = Duration::from_secs(2);

/// A server with the `duplex serve` echo route on `/echo`.
pub fn server() -> Server {
    Server::new()
        .handshake_timeout(HANDSHAKE_TIMEOUT)
        .route("/echo", echo)
}

/// One case of a battery: its name and the check (not started yet).
pub type Case = (String, Pin<Box<dyn Future<Output = ()> + Send>>);

/// Names `check` as a [`Case`].
pub fn named(name: impl Into<String>, check: impl Future<Output = ()> + Send + 'static) -> Case {
    (name.into(), Box::pin(check))
}

/// Runs each named case on its own task and returns the failures (name and
/// panic message), so one test reports every broken case at once.
pub async fn run_cases(cases: Vec<Case>) -> Vec<String> {
    let mut failures = Vec::new();
    for (name, case) in cases {
        if let Err(e) = tokio::spawn(case).await {
            let why = match e.try_into_panic() {
                Ok(payload) => payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into()),
                Err(e) => e.to_string(),
            };
            failures.push(format!("{name}: {why}"));
        }
    }
    failures
}

/// Fails the test with every failure of [`run_cases`].
pub fn assert_no_failures(failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

/// A normal client still gets its echoes.
pub async fn assert_echo_works(running: &Running) {
    let mut ws = within(STEP, "connect", duplex::connect(&running.url("/echo")))
        .await
        .expect("a normal client can connect");
    within(STEP, "echoes", async {
        ws.send("still alive").await.unwrap();
        assert_eq!(
            ws.recv().await.unwrap().unwrap(),
            Message::text("still alive")
        );
        ws.send(vec![0u8, 1, 2, 255]).await.unwrap();
        assert_eq!(
            ws.recv().await.unwrap().unwrap(),
            Message::binary(vec![0u8, 1, 2, 255])
        );
        ws.close(None).await.unwrap();
    })
    .await;
}

/// Once the server has closed every connection, a normal client still gets
/// its echoes; then the server is stopped.
pub async fn assert_still_serving_then_stop(running: Running) {
    running.wait_idle(STEP).await;
    assert_echo_works(&running).await;
    running.stop().await;
}

/// Waits (for at most the handshake timeout and [`CLOSE_BOUND`]) for the
/// server to close `tcp`, on which it must send nothing.
pub async fn expect_dropped(tcp: &mut TcpStream, what: &str) {
    let mut buf = [0u8; 64];
    let n = within(
        HANDSHAKE_TIMEOUT + CLOSE_BOUND,
        what,
        tokio::io::AsyncReadExt::read(tcp, &mut buf),
    )
    .await;
    assert!(
        matches!(n, Ok(0)) || n.as_ref().is_err(),
        "expected the connection to be closed, got {n:?} {:?}",
        String::from_utf8_lossy(&buf)
    );
}

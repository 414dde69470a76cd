//! The bad-input battery: servers with a short handshake timeout, named
//! cases run one at a time with every failure collected, and the check
//! that a normal client is still served afterwards. [`handshakes`] and
//! [`frames`] hold the cases that more than one test file runs.

pub mod frames;
pub mod handshakes;

use std::time::Duration;

use duplex::{Message, Server};

use super::{echo, within, Running, STEP};

/// The handshake timeout of the servers under test.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_millis(400);
/// How long the server may take to close the TCP connection after its
/// close frame or error response.
pub const CLOSE_BOUND: Duration = Duration::from_secs(2);

pub fn server() -> Server {
    Server::new()
        .handshake_timeout(HANDSHAKE_TIMEOUT)
        .route("/echo", echo)
}

/// Runs each named case on its own task and returns the failures (name and
/// panic message), so one test reports every broken case at once.
pub async fn run_cases<F, Fut>(cases: Vec<(String, F)>) -> Vec<String>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut failures = Vec::new();
    for (name, case) in cases {
        if let Err(e) = tokio::spawn(case()).await {
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

pub type HsFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

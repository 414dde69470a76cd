//! The reconnecting client against a real server on 127.0.0.1 that stops
//! and comes back on the same port: backoff with jitter, messages queued
//! while disconnected and delivered after the reconnect, giving up after
//! `max_attempts` with the undelivered messages handed back, and the
//! backoff schedule itself.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{echo, within};
use duplex::reconnect::{ClientEvent, ReconnectPolicy, ReconnectingClient};
use duplex::{ClientBuilder, CloseCode, Message, Server, ServerHandle};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The bound of one waiting step.
const STEP: Duration = Duration::from_secs(10);

/// An echo server serving on a given listener.
struct EchoServer {
    handle: ServerHandle,
    task: JoinHandle<duplex::Result<()>>,
}

impl EchoServer {
    fn serve(listener: TcpListener) -> EchoServer {
        let bound = Server::new()
            .route("/echo", echo)
            .shutdown_grace(Duration::from_secs(2))
            .listen(listener);
        let handle = bound.handle();
        EchoServer {
            handle,
            task: tokio::spawn(bound.serve()),
        }
    }

    /// Shuts down (close 1001 to every client) and waits for `serve` to
    /// return, which releases the port.
    async fn stop(self) {
        self.handle.shutdown();
        within(STEP, "serve() to return", self.task)
            .await
            .expect("serve task")
            .expect("serve");
    }
}

/// Binds `addr` again once the previous listener is gone (`SO_REUSEADDR`
/// is set by tokio, so connections in TIME_WAIT do not prevent it).
async fn rebind(addr: SocketAddr) -> TcpListener {
    let start = Instant::now();
    loop {
        match TcpListener::bind(addr).await {
            Ok(listener) => return listener,
            Err(e) if start.elapsed() < STEP => {
                eprintln!("rebinding {addr}: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("cannot bind {addr} again: {e}"),
        }
    }
}

async fn next(client: &mut ReconnectingClient, what: &str) -> ClientEvent {
    within(STEP, what, client.next_event())
        .await
        .unwrap_or_else(|| panic!("the event stream ended while waiting for {what}"))
}

/// The delay before `attempt` without jitter.
fn nominal(policy: &ReconnectPolicy, attempt: u32) -> Duration {
    // Attempt 0 counts as the first; the exponent is clamped like the
    // library's (the cap is reached long before).
    let exponent = attempt.saturating_sub(1).min(64) as i32;
    let base = policy.initial.as_secs_f64() * policy.multiplier.powi(exponent);
    Duration::from_secs_f64(base.min(policy.max.as_secs_f64()))
}

/// Checks a delay against the policy: within the jitter of the nominal
/// delay, and never above `max * (1 + jitter)`.
fn check_delay(policy: &ReconnectPolicy, attempt: u32, delay: Duration) {
    let nominal = nominal(policy, attempt).as_secs_f64();
    let d = delay.as_secs_f64();
    let slack = 1e-6;
    assert!(
        d >= nominal * (1.0 - policy.jitter) - slack
            && d <= nominal * (1.0 + policy.jitter) + slack,
        "attempt {attempt}: delay {delay:?} is not {nominal}s +-{}",
        policy.jitter
    );
    assert!(d <= policy.max.as_secs_f64() * (1.0 + policy.jitter) + slack);
}

fn policy() -> ReconnectPolicy {
    ReconnectPolicy {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(500),
        multiplier: 2.0,
        jitter: 0.2,
        max_attempts: None,
        queue_limit: 1024,
        ..ReconnectPolicy::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_with_backoff_and_delivers_what_was_queued_while_down() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = EchoServer::serve(listener);
    let policy = policy();
    let mut client = ReconnectingClient::spawn(
        ClientBuilder::new(format!("ws://{addr}/echo")),
        policy.clone(),
    );

    match next(&mut client, "the first connection").await {
        ClientEvent::Connected { attempt: 0 } => {}
        other => panic!("expected Connected {{ attempt: 0 }}, got {other:?}"),
    }
    for i in 0..10 {
        client.send(format!("before-{i}")).unwrap();
    }
    for i in 0..10 {
        match next(&mut client, "an echo").await {
            ClientEvent::Message(m) => assert_eq!(m, Message::text(format!("before-{i}"))),
            other => panic!("expected echo {i}, got {other:?}"),
        }
    }

    // The server goes away: it says so with 1001.
    server.stop().await;
    match next(&mut client, "the disconnection").await {
        ClientEvent::Disconnected { code, .. } => assert_eq!(code, CloseCode::Away),
        other => panic!("expected Disconnected, got {other:?}"),
    }

    // Backoff while the server is down; what is sent meanwhile is queued.
    let mut delays = Vec::new();
    let mut failures = 0u32;
    let mut waiting_since: Option<(Instant, Duration)> = None;
    while delays.len() < 5 {
        match next(&mut client, "reconnect attempts").await {
            ClientEvent::Reconnecting { attempt, delay } => {
                assert_eq!(attempt as usize, delays.len() + 1, "attempts count up");
                check_delay(&policy, attempt, delay);
                delays.push(delay);
                waiting_since = Some((Instant::now(), delay));
                if attempt == 1 {
                    for i in 0..5 {
                        client.send(format!("while-down-{i}")).unwrap();
                    }
                }
            }
            ClientEvent::ConnectFailed { .. } => {
                failures += 1;
                // The attempt came after its delay, not before.
                let (since, delay) = waiting_since.expect("a delay before each attempt");
                let waited = since.elapsed();
                assert!(
                    waited + Duration::from_millis(20) >= delay,
                    "attempt after {waited:?}, before its delay {delay:?}"
                );
            }
            other => panic!("unexpected while the server is down: {other:?}"),
        }
    }
    // 50, 100, 200, 400, 500 ms nominal: growing until the cap, even with
    // +-20% jitter (a doubling beats 1.2/0.8).
    for pair in delays.windows(2).take(3) {
        assert!(pair[1] > pair[0], "the backoff does not grow: {delays:?}");
    }
    eprintln!("backoff while down: {delays:?}");

    // Back on the same port.
    let server = EchoServer::serve(rebind(addr).await);
    let restarted = Instant::now();
    let attempt = loop {
        match next(&mut client, "the reconnection").await {
            ClientEvent::Connected { attempt } => break attempt,
            ClientEvent::ConnectFailed { .. } => failures += 1,
            ClientEvent::Reconnecting { attempt, delay } => check_delay(&policy, attempt, delay),
            other => panic!("unexpected before the reconnection: {other:?}"),
        }
    };
    let took = restarted.elapsed();
    eprintln!("reconnected {took:?} after the restart, after {attempt} failed attempts");
    assert_eq!(attempt, failures, "Connected counts the failed attempts");
    // At most one full delay (max * 1.2 = 600 ms) plus the connect.
    assert!(took < Duration::from_secs(2), "reconnecting took {took:?}");

    for i in 0..5 {
        match next(&mut client, "the queued messages' echoes").await {
            ClientEvent::Message(m) => assert_eq!(m, Message::text(format!("while-down-{i}"))),
            other => panic!("expected the echo of while-down-{i}, got {other:?}"),
        }
    }

    client.close();
    match next(&mut client, "the close").await {
        ClientEvent::Disconnected { code, error } => {
            assert_eq!(code, CloseCode::Normal, "{error:?}");
        }
        other => panic!("expected Disconnected, got {other:?}"),
    }
    match next(&mut client, "the end").await {
        ClientEvent::Stopped {
            undelivered,
            gave_up,
        } => {
            assert!(undelivered.is_empty(), "undelivered: {undelivered:?}");
            assert!(!gave_up);
        }
        other => panic!("expected Stopped, got {other:?}"),
    }
    assert!(within(STEP, "the event stream to end", client.next_event())
        .await
        .is_none());
    server.stop().await;
}

/// A port nothing listens on.
async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test]
async fn gives_up_after_max_attempts_and_hands_back_the_queue() {
    let addr = closed_port().await;
    let policy = ReconnectPolicy {
        max_attempts: Some(3),
        ..policy()
    };
    let mut client = ReconnectingClient::spawn(
        ClientBuilder::new(format!("ws://{addr}/echo")),
        policy.clone(),
    );
    let queued: Vec<Message> = (0..3).map(|i| Message::text(format!("m{i}"))).collect();
    for m in &queued {
        client.send(m.clone()).unwrap();
    }
    let mut failures = 0;
    let (undelivered, gave_up) = loop {
        match next(&mut client, "the attempts").await {
            ClientEvent::ConnectFailed { .. } => failures += 1,
            ClientEvent::Reconnecting { attempt, delay } => check_delay(&policy, attempt, delay),
            ClientEvent::Stopped {
                undelivered,
                gave_up,
            } => break (undelivered, gave_up),
            other => panic!("unexpected without a server: {other:?}"),
        }
    };
    assert_eq!(failures, 3);
    assert!(gave_up);
    // Never lost silently: every queued message comes back, in order.
    assert_eq!(undelivered, queued);
    assert!(within(STEP, "the event stream to end", client.next_event())
        .await
        .is_none());
}

/// Once the client has stopped, nothing is sending any more: `send` must
/// refuse the message instead of queueing it where nothing will ever
/// write it or hand it back.
#[tokio::test]
async fn send_after_giving_up_is_refused() {
    let addr = closed_port().await;
    let policy = ReconnectPolicy {
        max_attempts: Some(1),
        ..policy()
    };
    let mut client =
        ReconnectingClient::spawn(ClientBuilder::new(format!("ws://{addr}/echo")), policy);
    loop {
        if let ClientEvent::Stopped { gave_up, .. } = next(&mut client, "giving up").await {
            assert!(gave_up);
            break;
        }
    }
    assert!(
        client.send("too late").is_err(),
        "send accepted a message after the client stopped: it is silently lost"
    );
}

/// Closing while disconnected, without a close grace, stops at once and
/// hands back what was queued.
#[tokio::test]
async fn close_while_disconnected_without_grace_hands_back_the_queue() {
    let addr = closed_port().await;
    let policy = ReconnectPolicy {
        initial: Duration::from_secs(5),
        max: Duration::from_secs(5),
        close_grace: Duration::ZERO,
        ..policy()
    };
    let mut client =
        ReconnectingClient::spawn(ClientBuilder::new(format!("ws://{addr}/echo")), policy);
    client.send("pending").unwrap();
    loop {
        match next(&mut client, "the first failure").await {
            ClientEvent::ConnectFailed { .. } => {}
            ClientEvent::Reconnecting { .. } => break,
            other => panic!("unexpected without a server: {other:?}"),
        }
    }
    // The close cuts the 5 s backoff short.
    let closing = Instant::now();
    client.close();
    match next(&mut client, "the stop").await {
        ClientEvent::Stopped {
            undelivered,
            gave_up,
        } => {
            assert_eq!(undelivered, [Message::text("pending")]);
            assert!(!gave_up);
        }
        other => panic!("expected Stopped, got {other:?}"),
    }
    assert!(closing.elapsed() < Duration::from_secs(2));
    assert!(client.send("after close").is_err());
}

#[test]
fn delay_grows_exponentially_up_to_max_within_the_jitter() {
    let policy = ReconnectPolicy {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(10),
        multiplier: 2.0,
        jitter: 0.2,
        ..ReconnectPolicy::default()
    };
    for attempt in 1..=12 {
        let samples: Vec<Duration> = (0..200).map(|_| policy.delay(attempt)).collect();
        for &d in &samples {
            check_delay(&policy, attempt, d);
        }
        // Jitter actually spreads the delays.
        let min = samples.iter().min().unwrap();
        let max = samples.iter().max().unwrap();
        let nominal = nominal(&policy, attempt);
        assert!(
            *max - *min > nominal / 10,
            "attempt {attempt}: no spread ({min:?}..{max:?})"
        );
    }
    // Nominal schedule: 100 ms doubling, capped at 10 s.
    assert_eq!(nominal(&policy, 1), Duration::from_millis(100));
    assert_eq!(nominal(&policy, 5), Duration::from_millis(1600));
    assert_eq!(nominal(&policy, 9), Duration::from_secs(10));
    // Huge attempt numbers stay at the cap and do not overflow.
    for attempt in [64, 1000, u32::MAX] {
        check_delay(&policy, attempt, policy.delay(attempt));
    }
    // Attempt 0 is treated as the first.
    check_delay(&policy, 1, policy.delay(0));
}

#[test]
fn delay_without_jitter_is_exact() {
    let policy = ReconnectPolicy {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(500),
        multiplier: 3.0,
        jitter: 0.0,
        ..ReconnectPolicy::default()
    };
    let delays: Vec<Duration> = (1..=5).map(|a| policy.delay(a)).collect();
    assert_eq!(delays, [50, 150, 450, 500, 500].map(Duration::from_millis));
}

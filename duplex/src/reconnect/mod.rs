//! A client that reconnects by itself, with exponential backoff and jitter.
//!
//! [`ReconnectingClient`] runs the connection on a task of its own. The
//! application sends with [`ReconnectingClient::send`], which never waits:
//! messages go to a bounded queue that survives reconnects, and reads
//! [`ClientEvent`]s: connected, message, disconnected, reconnecting, and
//! the messages that could not be delivered when it stops.
//!
//! Delivery is at least once, in order: a message leaves the queue only
//! once the server has confirmed it, and every new connection writes the
//! unconfirmed ones again, oldest first. The confirmation is WebSocket's
//! own: a ping sent after the messages, which the server answers once it
//! has read them, or the server's answer to the client's close. A message
//! may so arrive twice (the server read it, and the connection dropped
//! before its confirmation came back), but none is lost silently: what is
//! unconfirmed when the client stops is handed back in
//! [`ClientEvent::Stopped`]. (Written is not delivered: a server that
//! crashes loses what it had not read yet, and only a confirmation tells.)
//!
//! ```no_run
//! use duplex::reconnect::{ClientEvent, ReconnectPolicy, ReconnectingClient};
//! use duplex::{ClientBuilder, Message};
//!
//! # async fn run() {
//! let mut client = ReconnectingClient::spawn(
//!     ClientBuilder::new("ws://127.0.0.1:8080/chat/lobby"),
//!     ReconnectPolicy::default(),
//! );
//! client.send(Message::text("hello")).unwrap();
//! while let Some(event) = client.next_event().await {
//!     match event {
//!         ClientEvent::Message(message) => println!("{message:?}"),
//!         ClientEvent::Reconnecting { attempt, delay } => eprintln!("retry {attempt} in {delay:?}"),
//!         other => eprintln!("{other:?}"),
//!     }
//! }
//! # }
//! ```

mod backlog;
mod connection;

use std::sync::Arc;
use std::time::Duration;

use duplex_proto::{CloseCode, Message};
use rand::Rng;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::client::ClientBuilder;
use crate::error::{Error, Result};
use backlog::Backlog;

/// When and how often to reconnect.
#[derive(Debug, Clone)]
pub struct ReconnectPolicy {
    /// The first delay (default 250 ms).
    pub initial: Duration,
    /// The largest delay (default 5 s). Long enough that ±20% jitter
    /// spreads many clients' retries; short enough that a server back
    /// after an outage is found within seconds (with 30 s, a client fed
    /// lines against a server up 3 s / down 3.3 s kept missing its up
    /// times). socket.io's client caps its backoff at 5 s as well.
    pub max: Duration,
    /// How much each delay grows (default 2).
    pub multiplier: f64,
    /// Random spread of each delay, as a fraction (default 0.2 = ±20%), so
    /// that many clients do not come back at the same instant.
    pub jitter: f64,
    /// Give up after this many failed attempts in a row (default: never).
    pub max_attempts: Option<u32>,
    /// The most messages kept unconfirmed (default 1024): written or not,
    /// each stays until the server confirms it. Beyond that
    /// [`ReconnectingClient::send`] fails with [`Error::QueueFull`], and
    /// [`ReconnectingClient::send_when_room`] waits.
    pub queue_limit: usize,
    /// The backoff starts over from `initial` after a connection that
    /// lived: one over which a message went either way, or that stayed
    /// open this long (default 2 s). One that ends sooner, such as a server
    /// accepting and dropping every connection at once, does not reset it,
    /// so such a server is not hammered every `initial`.
    pub stable_after: Duration,
    /// How long [`ReconnectingClient::close`] keeps trying to deliver what
    /// is unconfirmed (default 5 s): it reconnects right away if
    /// disconnected, then with the backoff started over from `initial`,
    /// the last attempt at the end of the grace. Zero stops at once when
    /// disconnected.
    pub close_grace: Duration,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(5),
            multiplier: 2.0,
            jitter: 0.2,
            max_attempts: None,
            queue_limit: 1024,
            stable_after: Duration::from_secs(2),
            close_grace: Duration::from_secs(5),
        }
    }
}

impl ReconnectPolicy {
    /// The delay before attempt `attempt` (1-based), jitter included.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(64) as i32;
        let base = self.initial.as_secs_f64() * self.multiplier.powi(exponent);
        let capped = base.min(self.max.as_secs_f64());
        let spread = if self.jitter > 0.0 {
            rand::rng().random_range(-self.jitter..=self.jitter)
        } else {
            0.0
        };
        Duration::from_secs_f64((capped * (1.0 + spread)).max(0.0))
    }
}

/// What happens to a [`ReconnectingClient`].
#[derive(Debug)]
pub enum ClientEvent {
    /// A connection is open (after `attempt` failed tries; 0 on the first).
    Connected {
        /// Failed attempts before this success.
        attempt: u32,
    },
    /// A message from the server.
    Message(Message),
    /// The connection ended (`code` is the server's close code, or 1006).
    Disconnected {
        /// The close code.
        code: CloseCode,
        /// The error, if it ended with one.
        error: Option<String>,
    },
    /// A connection attempt failed.
    ConnectFailed {
        /// Why.
        error: String,
        /// Trying again cannot help ([`Error::is_permanent`]: a bad URL,
        /// a rejected certificate, a 4xx refusal other than 408/429): the
        /// client stops right after this event, with `gave_up` set.
        permanent: bool,
    },
    /// The next attempt starts after `delay`.
    Reconnecting {
        /// The attempt number since the last connection that lived
        /// (1-based).
        attempt: u32,
        /// The backoff delay.
        delay: Duration,
    },
    /// The client stopped (closed by the application, or it gave up);
    /// `undelivered` holds the messages the server has not confirmed.
    Stopped {
        /// Messages not confirmed, oldest first (some may have arrived).
        undelivered: Vec<Message>,
        /// Whether it gave up: after `max_attempts`, or at once on a
        /// permanent error (see [`ClientEvent::ConnectFailed`]).
        gave_up: bool,
    },
}

type ConnectHook = Arc<dyn Fn() -> Vec<Message> + Send + Sync>;

/// A client connection that comes back by itself. See the module docs.
pub struct ReconnectingClient {
    backlog: Arc<Backlog>,
    events: mpsc::UnboundedReceiver<ClientEvent>,
}

impl ReconnectingClient {
    /// Starts connecting in the background.
    pub fn spawn(builder: ClientBuilder, policy: ReconnectPolicy) -> ReconnectingClient {
        Self::spawn_with_hook(builder, policy, None)
    }

    /// Like [`ReconnectingClient::spawn`], with a hook whose messages are
    /// sent first on every (re)connection, e.g. to rejoin or authenticate.
    pub fn spawn_with_hook(
        builder: ClientBuilder,
        policy: ReconnectPolicy,
        on_connect: Option<ConnectHook>,
    ) -> ReconnectingClient {
        let backlog = Arc::new(Backlog::new(policy.queue_limit));
        let (tx, events) = mpsc::unbounded_channel();
        tokio::spawn(run(builder, policy, on_connect, backlog.clone(), tx));
        ReconnectingClient { backlog, events }
    }

    /// Queues a message; it is sent now if connected, or after the next
    /// reconnect. Fails with [`Error::QueueFull`] while
    /// [`ReconnectPolicy::queue_limit`] messages are unconfirmed, and with
    /// [`Error::Closed`] after [`ReconnectingClient::close`].
    pub fn send(&self, message: impl Into<Message>) -> Result<()> {
        self.backlog.push(message.into())
    }

    /// Like [`ReconnectingClient::send`], but waits for room instead of
    /// failing when the queue is full (backpressure for a producer that
    /// can wait, such as a reader of stdin).
    pub async fn send_when_room(&self, message: impl Into<Message>) -> Result<()> {
        self.backlog.push_when_room(message.into()).await
    }

    /// Delivers what is queued, closes normally and stops reconnecting;
    /// the last event is [`ClientEvent::Stopped`]. Disconnected, it keeps
    /// trying for [`ReconnectPolicy::close_grace`] first.
    pub fn close(&self) {
        self.backlog.close();
    }

    /// The next event; `None` after [`ClientEvent::Stopped`].
    pub async fn next_event(&mut self) -> Option<ClientEvent> {
        self.events.recv().await
    }
}

/// The end of the close grace, from the first time the client is seen
/// closing; `None` while it is not. The backoff then starts over, so that
/// the grace is spent on attempts, not on one long wait: measured against
/// a server up 1 s / down 1 s, a 3.9 s wait grown before the close spanned
/// both up times of a 5 s grace.
fn close_deadline(
    backlog: &Backlog,
    policy: &ReconnectPolicy,
    deadline: &mut Option<Instant>,
    retries: &mut u32,
) -> Option<Instant> {
    if deadline.is_none() && backlog.is_closing() {
        *deadline = Some(Instant::now() + policy.close_grace);
        *retries = 0;
    }
    *deadline
}

async fn run(
    builder: ClientBuilder,
    policy: ReconnectPolicy,
    on_connect: Option<ConnectHook>,
    backlog: Arc<Backlog>,
    events: mpsc::UnboundedSender<ClientEvent>,
) {
    let mut failures = 0u32;
    // Waits since the last connection that lived: the first is `initial`.
    let mut retries = 0u32;
    let mut closing: Option<Instant> = None;
    let gave_up = loop {
        if let Some(deadline) = close_deadline(&backlog, &policy, &mut closing, &mut retries) {
            if backlog.is_empty() || Instant::now() >= deadline {
                break false;
            }
        }
        let connected = match closing {
            Some(deadline) => tokio::time::timeout_at(deadline, builder.connect())
                .await
                .unwrap_or(Err(Error::Timeout(
                    "connecting when the close grace ran out",
                ))),
            None => builder.connect().await,
        };
        match connected {
            Ok(ws) => {
                let _ = events.send(ClientEvent::Connected { attempt: failures });
                failures = 0;
                let hello = on_connect.as_ref().map(|hook| hook()).unwrap_or_default();
                let ended =
                    connection::serve(ws, hello, &backlog, &events, policy.stable_after).await;
                if ended.lived {
                    retries = 0;
                }
                let _ = events.send(ClientEvent::Disconnected {
                    code: ended.code,
                    error: ended.error,
                });
                if ended.stop {
                    break false;
                }
            }
            Err(error) => {
                failures += 1;
                let permanent = error.is_permanent();
                let _ = events.send(ClientEvent::ConnectFailed {
                    error: error.to_string(),
                    permanent,
                });
                if permanent || policy.max_attempts.is_some_and(|max| failures >= max) {
                    break true;
                }
            }
        }
        retries += 1;
        let attempt = retries;
        let mut delay = policy.delay(attempt);
        if let Some(deadline) = close_deadline(&backlog, &policy, &mut closing, &mut retries) {
            // Closing: the last attempt comes at the end of the grace.
            let left = deadline.saturating_duration_since(Instant::now());
            if backlog.is_empty() || left.is_zero() {
                break false;
            }
            delay = delay.min(left);
        }
        let _ = events.send(ClientEvent::Reconnecting { attempt, delay });
        // A close cuts the wait short: one more attempt right away.
        let close_asked = async {
            loop {
                backlog.notify.notified().await;
                if backlog.is_closing() {
                    break;
                }
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = close_asked, if closing.is_none() => {}
        }
    };
    let undelivered = backlog.stop();
    let _ = events.send(ClientEvent::Stopped {
        undelivered,
        gave_up,
    });
}

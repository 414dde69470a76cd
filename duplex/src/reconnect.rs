//! A client that reconnects by itself, with exponential backoff and jitter.
//!
//! [`ReconnectingClient`] runs the connection on a task of its own. The
//! application sends with [`ReconnectingClient::send`], which never waits:
//! messages go to a bounded queue that survives reconnects, and reads
//! [`ClientEvent`]s: connected, message, disconnected, reconnecting, and
//! the messages that could not be delivered when it gives up.
//!
//! Delivery: a message leaves the queue only once written to a socket. If
//! the connection drops before or during the write, it stays queued and is
//! sent after the reconnect, so a message may arrive twice but is never
//! dropped silently: what is still queued when the client stops is handed
//! back in [`ClientEvent::Stopped`].
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

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use duplex_proto::{CloseCode, CloseFrame, Message};
use rand::Rng;
use tokio::sync::{mpsc, Notify};

use crate::client::{ClientBuilder, ClientSocket};
use crate::error::{Error, Result};

/// When and how often to reconnect.
#[derive(Debug, Clone)]
pub struct ReconnectPolicy {
    /// The first delay (default 250 ms).
    pub initial: Duration,
    /// The largest delay (default 30 s).
    pub max: Duration,
    /// How much each delay grows (default 2).
    pub multiplier: f64,
    /// Random spread of each delay, as a fraction (default 0.2 = ±20%), so
    /// that many clients do not come back at the same instant.
    pub jitter: f64,
    /// Give up after this many failed attempts in a row (default: never).
    pub max_attempts: Option<u32>,
    /// The most messages kept while disconnected (default 1024); `send`
    /// fails with [`Error::QueueFull`] beyond that.
    pub queue_limit: usize,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(30),
            multiplier: 2.0,
            jitter: 0.2,
            max_attempts: None,
            queue_limit: 1024,
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
    },
    /// The next attempt starts after `delay`.
    Reconnecting {
        /// The attempt number (1-based).
        attempt: u32,
        /// The backoff delay.
        delay: Duration,
    },
    /// The client stopped (closed by the application, or it gave up);
    /// `undelivered` holds the messages that were never written.
    Stopped {
        /// Messages still queued.
        undelivered: Vec<Message>,
        /// Whether it gave up after `max_attempts`.
        gave_up: bool,
    },
}

/// Messages waiting for a connection: sent as soon as one is up, kept
/// across reconnects.
struct Backlog {
    queue: Mutex<BacklogState>,
    notify: Notify,
    limit: usize,
}

#[derive(Default)]
struct BacklogState {
    messages: VecDeque<Message>,
    closing: bool,
}

impl Backlog {
    fn lock(&self) -> std::sync::MutexGuard<'_, BacklogState> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
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
        let backlog = Arc::new(Backlog {
            queue: Mutex::new(BacklogState::default()),
            notify: Notify::new(),
            limit: policy.queue_limit,
        });
        let (tx, events) = mpsc::unbounded_channel();
        tokio::spawn(run(builder, policy, on_connect, backlog.clone(), tx));
        ReconnectingClient { backlog, events }
    }

    /// Queues a message; it is sent now if connected, or after the next
    /// reconnect.
    pub fn send(&self, message: impl Into<Message>) -> Result<()> {
        let mut state = self.backlog.lock();
        if state.closing {
            return Err(Error::Closed);
        }
        if state.messages.len() >= self.backlog.limit {
            return Err(Error::QueueFull);
        }
        state.messages.push_back(message.into());
        drop(state);
        self.backlog.notify.notify_one();
        Ok(())
    }

    /// Sends what is queued, closes normally and stops reconnecting; the
    /// last event is [`ClientEvent::Stopped`].
    pub fn close(&self) {
        self.backlog.lock().closing = true;
        self.backlog.notify.notify_one();
    }

    /// The next event; `None` after [`ClientEvent::Stopped`].
    pub async fn next_event(&mut self) -> Option<ClientEvent> {
        self.events.recv().await
    }
}

async fn run(
    builder: ClientBuilder,
    policy: ReconnectPolicy,
    on_connect: Option<ConnectHook>,
    backlog: Arc<Backlog>,
    events: mpsc::UnboundedSender<ClientEvent>,
) {
    let mut failures = 0u32;
    // Waits since the last successful connection: the first is `initial`.
    let mut retries = 0u32;
    let gave_up = loop {
        if backlog.lock().closing && backlog.lock().messages.is_empty() {
            break false;
        }
        match builder.connect().await {
            Ok(ws) => {
                let _ = events.send(ClientEvent::Connected { attempt: failures });
                failures = 0;
                retries = 0;
                let hello = on_connect.as_ref().map(|hook| hook()).unwrap_or_default();
                let (code, error, stop) = serve(ws, hello, &backlog, &events).await;
                let _ = events.send(ClientEvent::Disconnected { code, error });
                if stop {
                    break false;
                }
            }
            Err(error) => {
                failures += 1;
                let _ = events.send(ClientEvent::ConnectFailed {
                    error: error.to_string(),
                });
                if policy.max_attempts.is_some_and(|max| failures >= max) {
                    break true;
                }
            }
        }
        if backlog.lock().closing {
            break false;
        }
        retries += 1;
        let attempt = retries;
        let delay = policy.delay(attempt);
        let _ = events.send(ClientEvent::Reconnecting { attempt, delay });
        // A close request cuts the wait short.
        let wait_closing = async {
            loop {
                backlog.notify.notified().await;
                if backlog.lock().closing {
                    break;
                }
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = wait_closing => break false,
        }
    };
    // Refuse later sends under the same lock that empties the queue, so no
    // message can slip in after it and be lost.
    let undelivered = {
        let mut state = backlog.lock();
        state.closing = true;
        state.messages.drain(..).collect()
    };
    let _ = events.send(ClientEvent::Stopped {
        undelivered,
        gave_up,
    });
}

/// Runs one connection; returns its close code, error, and whether the
/// client should stop (the application closed it).
async fn serve(
    mut ws: ClientSocket,
    hello: Vec<Message>,
    backlog: &Backlog,
    events: &mpsc::UnboundedSender<ClientEvent>,
) -> (CloseCode, Option<String>, bool) {
    for message in hello {
        if ws.feed(message).is_err() {
            break;
        }
    }
    loop {
        // Write what is queued; messages leave the queue only once written.
        let batch: Vec<Message> = backlog.lock().messages.iter().cloned().collect();
        if !batch.is_empty() {
            for message in &batch {
                if ws.feed(message.clone()).is_err() {
                    break;
                }
            }
            match ws.flush().await {
                Ok(()) => {
                    let mut state = backlog.lock();
                    let n = batch.len().min(state.messages.len());
                    state.messages.drain(..n);
                }
                Err(e) => return (ws.close_code(), Some(e.to_string()), false),
            }
        }
        if backlog.lock().closing {
            let _ = ws.close(Some(CloseFrame::new(CloseCode::Normal, ""))).await;
            return (ws.close_code(), None, true);
        }
        tokio::select! {
            item = ws.recv() => match item {
                Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => {
                    let _ = events.send(ClientEvent::Message(message));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    // Drain to the end so the close code is known.
                    while ws.recv().await.is_some() {}
                    return (ws.close_code(), Some(e.to_string()), false);
                }
                None => return (ws.close_code(), None, false),
            },
            _ = backlog.notify.notified() => {}
        }
    }
}

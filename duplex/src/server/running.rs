//! A listening server: the accept loop ([`BoundServer::serve`]) and its
//! graceful stop ([`ServerHandle::shutdown`]).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use futures_util::FutureExt;

use super::accept::{handle_connection, refuse_full};
use super::fd_limit::{is_out_of_descriptors, FIRST_ACCEPT_BACKOFF, MAX_ACCEPT_BACKOFF};
use super::state::ServerState;
use super::Server;
use crate::error::Result;
use crate::hub::Hub;
use crate::queue::QueueStats;
use crate::timeouts::TimeoutStats;
use crate::warn_limit::RateLimited;
use crate::websocket::DEFAULT_CLOSE_TIMEOUT;

/// A listening server; [`BoundServer::serve`] runs it.
pub struct BoundServer {
    listener: TcpListener,
    state: Arc<ServerState>,
}

impl std::fmt::Debug for BoundServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundServer")
            .field("local_addr", &self.listener.local_addr().ok())
            .finish_non_exhaustive()
    }
}

/// Stops a running server gracefully from anywhere.
///
/// ```no_run
/// use duplex::Server;
///
/// # async fn run() -> duplex::Result<()> {
/// let server = Server::new().bind("127.0.0.1:0").await?;
/// let handle = server.handle();
/// tokio::spawn(async move {
///     tokio::signal::ctrl_c().await.ok();
///     handle.shutdown(); // close 1001 to every client, then serve() returns
/// });
/// server.serve().await
/// # }
/// ```
#[derive(Clone)]
pub struct ServerHandle {
    state: Arc<ServerState>,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("connections", &self.connections())
            .finish_non_exhaustive()
    }
}

impl ServerHandle {
    /// Stops accepting, sends close 1001 to every client, waits for their
    /// answers (at most the shutdown grace), and makes `serve` return.
    ///
    /// A client on a [`Handler`](crate::Handler) route first gets what is
    /// queued for it (its session refuses new messages), then the 1001.
    /// Clients still open when the grace is over are given up: what was
    /// queued for them and not written is counted in
    /// [`QueueStats::unsent`], and `serve` logs one warning with the count
    /// before it returns. (A stream-API route owns its socket: what it has
    /// not flushed by then is its own to account for.)
    pub fn shutdown(&self) {
        self.state.stopping.store(true, Ordering::SeqCst);
        self.state.stop.notify_waiters();
        self.state.stop.notify_one();
    }

    /// How many connections are open (including those still in the
    /// handshake).
    pub fn connections(&self) -> usize {
        self.state.active.load(Ordering::Relaxed)
    }

    /// Counters of slow consumers closed, and of messages dropped or left
    /// unsent.
    pub fn queue_stats(&self) -> &QueueStats {
        self.state.hub.queue_stats()
    }

    /// Counters of the connections each timeout cut off.
    pub fn timeout_stats(&self) -> &TimeoutStats {
        self.state.hub.timeout_stats()
    }

    /// The hub the server's connections run in.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.state.hub
    }
}

impl BoundServer {
    pub(crate) fn new(
        listener: TcpListener,
        server: Server,
        hub: Arc<Hub>,
        max_connections: usize,
    ) -> BoundServer {
        BoundServer {
            listener,
            state: Arc::new(ServerState::new(server, hub, max_connections)),
        }
    }

    /// The connection cap in force (set, or derived from the descriptor
    /// limit).
    pub fn max_connections(&self) -> usize {
        self.state.max_connections
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// A handle to stop the server.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            state: self.state.clone(),
        }
    }

    /// Accepts connections until [`ServerHandle::shutdown`], then closes
    /// every connection with 1001 (within the shutdown grace, after what is
    /// queued for it) and returns.
    pub async fn serve(self) -> Result<()> {
        let state = self.state;
        let mut backoff = FIRST_ACCEPT_BACKOFF;
        loop {
            if state.stopping.load(Ordering::SeqCst) {
                break;
            }
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((tcp, addr)) => {
                        backoff = FIRST_ACCEPT_BACKOFF;
                        state.active.fetch_add(1, Ordering::SeqCst);
                        let state = state.clone();
                        tokio::spawn(async move {
                            let guard = ActiveGuard(state.clone());
                            handle_connection(&state, tcp, addr).await;
                            drop(guard);
                        });
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: keep serving,
                        // answer one waiting client with the spare descriptor,
                        // and back off while the error lasts.
                        static ACCEPT_FAILED: RateLimited = RateLimited::new();
                        ACCEPT_FAILED.warn(|left_out| {
                            tracing::warn!("accept failed: {e} ({left_out} more not logged)")
                        });
                        let refused = is_out_of_descriptors(&e)
                            && refuse_one_with_the_spare(&self.listener, &state);
                        tokio::time::sleep(backoff).await;
                        // A client was answered: the queue moves, no need
                        // to wait longer for the next.
                        if !refused {
                            backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                        }
                    }
                },
                _ = state.stop.notified() => {}
            }
        }
        drop(self.listener);
        shut_down(&state).await;
        Ok(())
    }
}

/// How long given-up connections get to count what they could not send
/// (they stop at once; only a handler's `on_message` still running delays
/// one).
const ABANDON_WAIT: Duration = Duration::from_secs(1);

/// The graceful stop: 1001 to every client after what is queued for it,
/// the grace for them to take it and answer, then the rest given up and
/// counted.
async fn shut_down(state: &Arc<ServerState>) {
    let unsent = &state.hub.queue_stats().unsent;
    let unsent_before = unsent.load(Ordering::Relaxed);
    let grace = state.server.shutdown_grace;
    // Clients that keep reading may use the whole grace (when longer than
    // the close timeout).
    state
        .hub
        .shutdown_within(Some(grace.max(DEFAULT_CLOSE_TIMEOUT)));
    let mut abandoned = 0;
    if tokio::time::timeout(grace, idle(state)).await.is_err() {
        let given_up = state.hub.abandon();
        abandoned = given_up.len();
        let _ = tokio::time::timeout(ABANDON_WAIT, async {
            for queue in &given_up {
                queue.finished().await;
            }
        })
        .await;
    }
    let lost = unsent.load(Ordering::Relaxed) - unsent_before;
    if lost > 0 {
        tracing::warn!(
            "shutdown: {lost} queued message(s) not delivered ({abandoned} client(s) still \
             open after the {grace:?} grace were given up)"
        );
    }
}

/// Waits until no connection is active.
async fn idle(state: &ServerState) {
    while state.active.load(Ordering::SeqCst) > 0 {
        let idle = state.idle.notified();
        if state.active.load(Ordering::SeqCst) == 0 {
            break;
        }
        idle.await;
    }
}

/// Lets the spare descriptor go to accept one waiting client and answer it
/// 503; the descriptor is taken back into reserve once that client is
/// gone. Returns whether a client was answered.
fn refuse_one_with_the_spare(listener: &TcpListener, state: &Arc<ServerState>) -> bool {
    let released = state
        .spare
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .release();
    let accepted = match released {
        true => listener.accept().now_or_never(),
        false => None,
    };
    let state = state.clone();
    match accepted {
        Some(Ok((tcp, _))) => {
            tokio::spawn(async move {
                refuse_full(tcp).await;
                state
                    .spare
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .restore();
            });
            true
        }
        _ => {
            state
                .spare
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .restore();
            false
        }
    }
}

/// Counts a connection as active for as long as its task runs.
struct ActiveGuard(Arc<ServerState>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

//! A listening server: the accept loop ([`BoundServer::serve`]) and its
//! graceful stop ([`ServerHandle::shutdown`]).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use super::accept::handle_connection;
use super::state::ServerState;
use super::Server;
use crate::error::Result;
use crate::hub::Hub;
use crate::queue::QueueStats;

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

    /// Counters of slow consumers closed and messages dropped.
    pub fn queue_stats(&self) -> &QueueStats {
        self.state.hub.queue_stats()
    }

    /// The hub the server's connections run in.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.state.hub
    }
}

impl BoundServer {
    pub(crate) fn new(listener: TcpListener, server: Server, hub: Arc<Hub>) -> BoundServer {
        BoundServer {
            listener,
            state: Arc::new(ServerState::new(server, hub)),
        }
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
    /// every connection with 1001 and returns.
    pub async fn serve(self) -> Result<()> {
        let state = self.state;
        loop {
            if state.stopping.load(Ordering::SeqCst) {
                break;
            }
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((tcp, addr)) => {
                        state.active.fetch_add(1, Ordering::SeqCst);
                        let state = state.clone();
                        tokio::spawn(async move {
                            let guard = ActiveGuard(state.clone());
                            handle_connection(&state, tcp, addr).await;
                            drop(guard);
                        });
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: keep serving.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                },
                _ = state.stop.notified() => {}
            }
        }
        drop(self.listener);
        state.hub.shutdown();
        let grace = state.server.shutdown_grace;
        let _ = tokio::time::timeout(grace, async {
            while state.active.load(Ordering::SeqCst) > 0 {
                let idle = state.idle.notified();
                if state.active.load(Ordering::SeqCst) == 0 {
                    break;
                }
                idle.await;
            }
        })
        .await;
        Ok(())
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

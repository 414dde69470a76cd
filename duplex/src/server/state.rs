//! [`ServerState`]: what a running server's accept loop and its
//! connection tasks share.

use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::fd_limit::Spare;
use super::Server;
use crate::hub::Hub;

/// What the accept loop and the connection tasks share.
pub(crate) struct ServerState {
    pub(crate) server: Server,
    pub(crate) hub: Arc<Hub>,
    /// The connection cap, resolved when the server started.
    pub(crate) max_connections: usize,
    /// A descriptor in reserve, to answer 503 when none is left.
    pub(crate) spare: Mutex<Spare>,
    /// Connections being served, including those still in the handshake.
    pub(crate) active: AtomicUsize,
    /// Notified when the last active connection ends.
    pub(crate) idle: Notify,
    /// Set by `ServerHandle::shutdown`; the accept loop then stops.
    pub(crate) stopping: AtomicBool,
    pub(crate) stop: Notify,
}

impl ServerState {
    pub(crate) fn new(server: Server, hub: Arc<Hub>, max_connections: usize) -> ServerState {
        ServerState {
            server,
            hub,
            max_connections,
            spare: Mutex::new(Spare::new()),
            active: AtomicUsize::new(0),
            idle: Notify::new(),
            stopping: AtomicBool::new(false),
            stop: Notify::new(),
        }
    }
}

//! A TCP proxy to put between a process and its server (a `duplex serve`
//! node and Redis), whose behaviour a test switches at run time: pass,
//! delay, black-hole, reset.
//!
//! It runs a current-thread tokio runtime on a thread of its own, so it
//! works the same from a sync or an async test; dropping it stops that
//! thread and closes every socket it holds before `drop` returns.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

/// What the proxy does with the bytes of its connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forwards both directions as they come.
    Pass,
    /// Forwards each chunk this long after it was read, in order, both
    /// directions (what was read before keeps its own due time).
    Delay(Duration),
    /// Accepts connections and keeps every socket open, but forwards
    /// nothing in either direction and reads nothing more: what is in
    /// flight waits in the proxy and the kernels' buffers and flows again
    /// once the mode allows it, as after a network partition heals (a
    /// peer's close is not seen before then either).
    BlackHole,
    /// Resets every connection (SO_LINGER 0, then close: an RST to both
    /// sides) and resets each new one as soon as it is accepted.
    Reset,
}

/// A running proxy on a free port of 127.0.0.1.
pub struct FaultProxy {
    addr: SocketAddr,
    target: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What the proxy's tasks share with the test.
struct Shared {
    mode: watch::Sender<Mode>,
    /// Bumped on every switch to [`Mode::Reset`], so that a connection
    /// resets even if the mode went back before its task looked.
    resets: watch::Sender<u64>,
    accepted: AtomicUsize,
    open: AtomicUsize,
}

impl FaultProxy {
    /// Starts a proxy to `target` (`HOST:PORT`), in [`Mode::Pass`].
    pub fn start(target: &str) -> FaultProxy {
        let target: SocketAddr = target
            .parse()
            .unwrap_or_else(|e| panic!("fault proxy target {target:?}: {e}"));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the fault proxy");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            mode: watch::Sender::new(Mode::Pass),
            resets: watch::Sender::new(0),
            accepted: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
        });
        let (stop, stopped) = oneshot::channel();
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("fault-proxy-{}", addr.port()))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("the fault proxy's runtime");
                runtime.block_on(async move {
                    let listener = TcpListener::from_std(listener).expect("tokio listener");
                    tokio::select! {
                        _ = accept_loop(listener, target, thread_shared) => {}
                        _ = stopped => {}
                    }
                });
                // Dropping the runtime drops every connection task and so
                // closes their sockets, before the thread ends.
                drop(runtime);
            })
            .expect("spawn the fault proxy thread");
        FaultProxy {
            addr,
            target,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `127.0.0.1:PORT`, the address to connect to instead of the target.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// `redis://127.0.0.1:PORT`, for a proxy in front of Redis.
    pub fn redis_url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// The address it forwards to.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Switches the mode; it applies to every current and new connection.
    pub fn set_mode(&self, mode: Mode) {
        self.shared.mode.send_replace(mode);
        if mode == Mode::Reset {
            self.shared.resets.send_modify(|n| *n += 1);
        }
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        *self.shared.mode.borrow()
    }

    /// [`Mode::Pass`].
    pub fn pass(&self) {
        self.set_mode(Mode::Pass);
    }

    /// [`Mode::Delay`] of `ms` milliseconds.
    pub fn delay(&self, ms: u64) {
        self.set_mode(Mode::Delay(Duration::from_millis(ms)));
    }

    /// [`Mode::BlackHole`].
    pub fn black_hole(&self) {
        self.set_mode(Mode::BlackHole);
    }

    /// [`Mode::Reset`].
    pub fn reset(&self) {
        self.set_mode(Mode::Reset);
    }

    /// How many connections it accepted so far (reset ones included).
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// How many connections it holds open now.
    pub fn open(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept_loop(listener: TcpListener, target: SocketAddr, shared: Arc<Shared>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            // EMFILE and the like: try again shortly.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        if *shared.mode.borrow() == Mode::Reset {
            reset(&client);
            continue;
        }
        tokio::spawn(connection(client, target, shared.clone()));
    }
}

/// Sends an RST when `stream` is dropped (SO_LINGER 0).
fn reset(stream: &TcpStream) {
    let _ = stream.set_zero_linger();
}

/// Counts an open connection for as long as it lives.
struct OpenGuard(Arc<Shared>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Serves one accepted connection until both directions end or a reset.
async fn connection(mut client: TcpStream, target: SocketAddr, shared: Arc<Shared>) {
    shared.open.fetch_add(1, Ordering::SeqCst);
    let _guard = OpenGuard(shared.clone());
    let mut resets = shared.resets.subscribe();
    let Ok(mut upstream) = TcpStream::connect(target).await else {
        // The target is down: the client sees its connection reset, as if
        // the target had refused it.
        reset(&client);
        return;
    };
    if *shared.mode.borrow() == Mode::Reset {
        reset(&client);
        reset(&upstream);
        return;
    }
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let reset_now = {
        let (client_read, client_write) = client.split();
        let (upstream_read, upstream_write) = upstream.split();
        let pipes = async {
            tokio::join!(
                pipe(client_read, upstream_write, shared.mode.subscribe()),
                pipe(upstream_read, client_write, shared.mode.subscribe()),
            )
        };
        tokio::select! {
            _ = pipes => false,
            _ = resets.changed() => true,
        }
    };
    if reset_now || *shared.mode.borrow() == Mode::Reset {
        reset(&client);
        reset(&upstream);
    }
}

/// Waits until the mode lets bytes move; `false` when the proxy is going.
async fn flowing(mode: &mut watch::Receiver<Mode>) -> bool {
    mode.wait_for(|m| *m != Mode::BlackHole).await.is_ok()
}

/// Copies one direction: a reader that stops reading in a black hole and
/// stamps each chunk with its due time, and a writer that waits for that
/// time (and for the black hole to end) before writing it.
async fn pipe<R, W>(mut from: R, mut to: W, mode: watch::Receiver<Mode>)
where
    R: AsyncReadExt + Unpin,
    W: AsyncWriteExt + Unpin,
{
    let (chunks, mut queued) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let mut read_mode = mode.clone();
    let reader = async move {
        let mut buf = vec![0; 16 * 1024];
        loop {
            if !flowing(&mut read_mode).await {
                return;
            }
            let n = tokio::select! {
                n = from.read(&mut buf) => n,
                // A black hole began while waiting: stop reading.
                _ = read_mode.wait_for(|m| *m == Mode::BlackHole) => continue,
            };
            let n = match n {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let delay = match *read_mode.borrow() {
                Mode::Delay(d) => d,
                _ => Duration::ZERO,
            };
            if chunks
                .send((Instant::now() + delay, buf[..n].to_vec()))
                .is_err()
            {
                return;
            }
        }
    };
    let mut write_mode = mode;
    let writer = async move {
        while let Some((due, chunk)) = queued.recv().await {
            tokio::time::sleep_until(due).await;
            if !flowing(&mut write_mode).await || to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        // The reader saw the end: pass it on (after what it read).
        if flowing(&mut write_mode).await {
            let _ = to.shutdown().await;
        }
    };
    tokio::join!(reader, writer);
}

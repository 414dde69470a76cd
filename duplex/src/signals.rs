//! [`Signals`]: what a connection shares beyond its engine.
//!
//! The wakers of a connection's two halves, and a close that someone else
//! (the server or hub, shutting down) asks for. The socket keeps only one
//! write waker, so the one it is given ([`Link::write_waker`]) wakes both
//! halves: the pongs and close replies the reader queues never steal the
//! writer's wake-up.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Wake, Waker};

use duplex_proto::CloseFrame;
use futures_util::task::AtomicWaker;

/// The wakers of a connection's halves and a close requested from outside.
#[derive(Default)]
pub(crate) struct Signals {
    pub(crate) read: AtomicWaker,
    pub(crate) reader_write: AtomicWaker,
    pub(crate) writer_write: AtomicWaker,
    /// Set while a close was asked for and not yet started; checked (one
    /// load) by every `recv` and `flush`.
    close_requested: AtomicBool,
    close_request: Mutex<Option<Box<CloseFrame>>>,
}

impl Wake for Signals {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.wake_writers();
    }
}

impl Signals {
    /// Asks the connection's task to start the close handshake with
    /// `frame` (unless it started one already) and wakes it.
    pub(crate) fn start_close(&self, frame: CloseFrame) {
        *self.close_request.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(frame));
        self.close_requested.store(true, Ordering::Release);
        self.read.wake();
        self.wake_writers();
    }

    /// Whether a close was asked for and not yet taken.
    pub(crate) fn close_pending(&self) -> bool {
        self.close_requested.load(Ordering::Acquire)
    }

    /// The close asked for, once (cheap when there is none).
    #[inline]
    pub(crate) fn take_close_request(&self) -> Option<CloseFrame> {
        let requested = &self.close_requested;
        if requested.load(Ordering::Relaxed) && requested.swap(false, Ordering::Acquire) {
            let request = self.close_request.lock().map(|mut r| r.take());
            if let Ok(Some(frame)) = request {
                return Some(*frame);
            }
        }
        None
    }

    /// Wakes both halves' writers (the socket's one write waker).
    fn wake_writers(&self) {
        self.reader_write.wake();
        self.writer_write.wake();
    }
}

/// The signals and the write waker made from them, beside the engine.
pub(crate) struct Link {
    pub(crate) signals: Arc<Signals>,
    pub(crate) write_waker: Waker,
}

impl Link {
    pub(crate) fn new() -> Link {
        let signals = Arc::new(Signals::default());
        Link {
            write_waker: Waker::from(signals.clone()),
            signals,
        }
    }
}

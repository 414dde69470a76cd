//! Giving memory back to the operating system after connections close.
//!
//! mimalloc returns freed pages to the OS only while a thread keeps
//! allocating or collects its heap; a server whose clients just left is
//! idle, so without a nudge their memory stays resident. Measured with
//! 10,000 compressing connections that kept per-connection zlib state
//! (`--compression-memory per-connection`): 4,537 MiB was still resident
//! 10 s after all of them had closed.
//!
//! [`watch`] notices when many connections have gone and bumps an epoch;
//! each runtime thread, the next time it parks (has nothing to do), sees
//! the new epoch and collects its own heap ([`collect_if_asked`]). Parking
//! threads are idle by definition, so the collection costs no latency.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use duplex::ServerHandle;

/// Bumped each time enough connections have closed to be worth a
/// collection.
static EPOCH: AtomicU64 = AtomicU64::new(0);

/// How often the connection count is looked at.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Collect after this many connections have closed since the last time
/// (or an eighth of the peak, if that is more): a few closes free too
/// little to be worth walking every heap.
const MIN_CLOSED: usize = 64;

thread_local! {
    static SEEN: Cell<u64> = const { Cell::new(0) };
}

/// For the runtime's `on_thread_park`: collects this thread's heap if
/// connections have closed since it last did.
pub fn collect_if_asked() {
    let epoch = EPOCH.load(Ordering::Relaxed);
    if SEEN.with(|seen| seen.replace(epoch)) != epoch {
        // SAFETY: mi_collect only walks this thread's own heap.
        unsafe { libmimalloc_sys::mi_collect(true) };
    }
}

/// Watches the server and asks every runtime thread to collect when many
/// of its connections have closed.
pub async fn watch(server: ServerHandle) {
    let mut peak = 0usize;
    let mut ticker = tokio::time::interval(CHECK_EVERY);
    loop {
        ticker.tick().await;
        let open = server.connections();
        peak = peak.max(open);
        if peak - open >= MIN_CLOSED.max(peak / 8) {
            EPOCH.fetch_add(1, Ordering::Relaxed);
            // The calling thread parks soon; the others as they idle.
            peak = open;
        }
    }
}

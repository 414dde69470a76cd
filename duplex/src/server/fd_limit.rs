//! Running out of file descriptors without hanging.
//!
//! Every connection holds a descriptor, and a process has a limit
//! (`RLIMIT_NOFILE`). At that limit `accept` fails with `EMFILE`: the
//! pending clients, `/healthz` included, would wait in the kernel's queue
//! and hear nothing, while the accept loop spins on the error. So:
//!
//! - the default connection cap is derived from the limit, leaving a
//!   reserve for the listener, the runtime, logs and outgoing connections;
//!   a client over the cap gets a `503` (see `accept.rs`);
//! - one descriptor is kept in reserve ([`Spare`]): when `accept` fails for
//!   lack of descriptors anyway (a cap set above the limit, descriptors
//!   used elsewhere in the process), it is let go for a moment to accept
//!   one waiting client and tell it `503`, instead of leaving it hanging;
//! - accept errors back off, and their warnings are rate-limited.

use std::time::Duration;

/// The connection cap used when none is set and the descriptor limit is
/// unknown or unlimited.
const FALLBACK_MAX_CONNECTIONS: usize = 100_000;

/// The first pause after a failed `accept`; it doubles up to
/// [`MAX_ACCEPT_BACKOFF`] while `accept` keeps failing.
pub(crate) const FIRST_ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// The longest pause between two failed `accept`s.
pub(crate) const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// The default connection cap: the soft descriptor limit minus a reserve
/// of 5% (at least 16 descriptors) for everything else the process opens.
pub(crate) fn default_max_connections() -> usize {
    match soft_fd_limit() {
        Some(limit) => {
            let reserve = (limit / 20).max(16);
            limit.saturating_sub(reserve).max(1)
        }
        None => FALLBACK_MAX_CONNECTIONS,
    }
}

#[cfg(unix)]
fn soft_fd_limit() -> Option<usize> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given, which lives
    // for the whole call.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    if rc != 0 || limit.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    usize::try_from(limit.rlim_cur).ok()
}

#[cfg(not(unix))]
fn soft_fd_limit() -> Option<usize> {
    None
}

/// Whether an `accept` error means the process or the system is out of
/// descriptors.
pub(crate) fn is_out_of_descriptors(error: &std::io::Error) -> bool {
    #[cfg(unix)]
    return matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE));
    #[cfg(not(unix))]
    {
        let _ = error;
        false
    }
}

/// One descriptor held in reserve for answering a client when none is
/// left.
#[derive(Debug)]
pub(crate) struct Spare {
    file: Option<std::fs::File>,
}

impl Spare {
    pub(crate) fn new() -> Spare {
        let mut spare = Spare { file: None };
        spare.restore();
        spare
    }

    /// Lets the reserved descriptor go; `false` if there was none.
    pub(crate) fn release(&mut self) -> bool {
        self.file.take().is_some()
    }

    /// Takes a descriptor into reserve again (once one is free).
    pub(crate) fn restore(&mut self) {
        if self.file.is_none() {
            self.file = std::fs::File::open(if cfg!(unix) { "/dev/null" } else { "NUL" }).ok();
        }
    }
}

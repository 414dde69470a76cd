//! Warnings that may repeat many times a second (a failing `accept`,
//! garbage TLS handshakes) are logged at most once per interval, with a
//! count of the ones left out, so that a flood cannot fill the log.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The shortest time between two lines of the same warning.
pub(crate) const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// One rate-limited warning.
pub(crate) struct RateLimited {
    /// When it was last logged, and how many were left out since.
    state: Mutex<(Option<Instant>, u64)>,
}

impl RateLimited {
    pub(crate) const fn new() -> RateLimited {
        RateLimited {
            state: Mutex::new((None, 0)),
        }
    }

    /// Calls `log` with the number of warnings left out since the last
    /// line, unless a line was logged less than [`WARN_INTERVAL`] ago.
    pub(crate) fn warn(&self, log: impl FnOnce(u64)) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        match state.0 {
            Some(last) if now.duration_since(last) < WARN_INTERVAL => state.1 += 1,
            _ => {
                let suppressed = std::mem::take(&mut state.1);
                state.0 = Some(now);
                drop(state);
                log(suppressed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_counted_not_logged() {
        let warning = RateLimited::new();
        let mut lines = Vec::new();
        for _ in 0..5 {
            warning.warn(|suppressed| lines.push(suppressed));
        }
        assert_eq!(lines, vec![0]);
        // Pretend the interval passed: the next line reports the 4 left out.
        warning.state.lock().unwrap().0 = Some(Instant::now() - WARN_INTERVAL);
        warning.warn(|suppressed| lines.push(suppressed));
        assert_eq!(lines, vec![0, 4]);
    }
}

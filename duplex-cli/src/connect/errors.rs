//! Failures of `duplex connect`, as the one line it prints.

use duplex::Error;

/// The one-line reason for a failed connection to `url`.
pub(super) fn describe(url: &str, error: Error) -> String {
    match error {
        Error::Handshake(e) => match e.status() {
            Some(status) => format!("{url}: handshake rejected: HTTP {status} ({})", e.message()),
            None => format!("{url}: handshake failed: {}", e.message()),
        },
        Error::Io(e) => format!("{url}: {e}"),
        other => format!("{url}: {other}"),
    }
}

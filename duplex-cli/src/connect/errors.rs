//! Failures of `duplex connect`, as the one line it prints: the library's
//! description, plus what to do where the user can act (certificates).

use duplex::Error;

/// The most characters of a refusal's body shown.
const BODY_SHOWN: usize = 300;

/// The one-line reason for a failed connection to `url`.
pub(crate) fn describe(url: &str, error: Error) -> String {
    match error {
        Error::Handshake(e) => {
            let mut line = match e.status() {
                Some(status) => format!("{url}: handshake rejected: HTTP {status} ({})", e.message()),
                None => format!("{url}: handshake failed: {}", e.message()),
            };
            if let Some(body) = e.body() {
                line.push_str(": ");
                line.push_str(&one_line(body));
            }
            line
        }
        Error::Tls(why) if why.is_certificate() => format!(
            "{url}: TLS: {why}; to trust its issuer use --ca CERT.pem, or skip the check with --insecure (testing only)",
            why = why.what()
        ),
        Error::Io(e) => format!("{url}: {e}"),
        Error::Url(why) => format!("bad URL: {why}"),
        other => format!("{url}: {other}"),
    }
}

/// `text` on one line (whitespace runs as one space), shortened.
fn one_line(text: &str) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match joined.char_indices().nth(BODY_SHOWN) {
        Some((end, _)) => format!("{}…", &joined[..end]),
        None => joined,
    }
}

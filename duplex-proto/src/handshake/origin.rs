//! Origin allow-lists (RFC 6455 §10.2, RFC 6454): a browser names the page
//! that opened a WebSocket in `Origin`, so a server that serves only its
//! own pages can refuse the others with 403 before the upgrade.
//!
//! Origins are compared in their RFC 6454 §6.2 serialisation: scheme and
//! host lowercased, the scheme's default port (80 for http/ws, 443 for
//! https/wss) left out, no path. A request without `Origin` comes from a
//! non-browser client, which could send any value anyway, so it passes.

use crate::error::HandshakeError;

/// The origins whose pages may open a WebSocket.
///
/// ```
/// use duplex_proto::handshake::AllowedOrigins;
///
/// let allowed = AllowedOrigins::new(["https://Example.com:443"]);
/// assert!(allowed.allows(Some("https://example.com")));
/// assert!(!allowed.allows(Some("https://evil.example")));
/// assert!(allowed.allows(None)); // not a browser
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedOrigins {
    /// Serialised origins; entries that are no origin are kept as given
    /// (lowercased), so they match only the very same header value.
    origins: Vec<String>,
}

impl AllowedOrigins {
    /// An allow-list of `origins` (`scheme://host[:port]`).
    pub fn new<I, S>(origins: I) -> AllowedOrigins
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        AllowedOrigins {
            origins: origins.into_iter().map(|o| normalise(o.as_ref())).collect(),
        }
    }

    /// The origins as they are compared.
    pub fn origins(&self) -> &[String] {
        &self.origins
    }

    /// Whether a request with this `Origin` header (`None`: without one)
    /// may upgrade.
    pub fn allows(&self, origin: Option<&str>) -> bool {
        match origin {
            None => true,
            Some(origin) => {
                let origin = normalise(origin);
                self.origins.contains(&origin)
            }
        }
    }

    /// [`allows`](Self::allows) as the handshake's answer: a refusal is a
    /// 403 naming the origin.
    pub fn check(&self, origin: Option<&str>) -> Result<(), HandshakeError> {
        if self.allows(origin) {
            return Ok(());
        }
        Err(HandshakeError::new(
            403,
            format!(
                "origin {} is not allowed",
                origin.unwrap_or_default().trim()
            ),
        ))
    }
}

/// The RFC 6454 §6.2 serialisation of `origin`: `scheme://host[:port]`
/// lowercased, the default port left out. Anything else (e.g. `null`,
/// sent by sandboxed pages) is only trimmed and lowercased.
fn normalise(origin: &str) -> String {
    let origin = origin.trim().to_ascii_lowercase();
    let Some((scheme, rest)) = origin.split_once("://") else {
        return origin;
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
        return origin;
    }
    // The port follows the last ':' unless that ':' is inside an IPv6
    // literal (`[::1]`).
    let (host, port) = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => (&authority[..i], Some(&authority[i + 1..])),
        _ => (authority, None),
    };
    let default = match scheme {
        "http" | "ws" => Some("80"),
        "https" | "wss" => Some("443"),
        _ => None,
    };
    match port {
        Some(port) if Some(port) != default && !port.is_empty() => {
            format!("{scheme}://{host}:{port}")
        }
        _ => format!("{scheme}://{host}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_serialisation_follows_rfc_6454() {
        // RFC 6454 §3.2.1 / §6.2: scheme and host lowercased, default
        // port omitted, explicit other port kept.
        assert_eq!(normalise("http://example.com/"), "http://example.com");
        assert_eq!(normalise("http://example.com:80"), "http://example.com");
        assert_eq!(normalise("HTTP://EXAMPLE.COM"), "http://example.com");
        assert_eq!(normalise("https://example.com:443"), "https://example.com");
        assert_eq!(
            normalise("http://example.com:8080"),
            "http://example.com:8080"
        );
        assert_eq!(
            normalise("https://example.com:80"),
            "https://example.com:80"
        );
        assert_eq!(normalise("http://[::1]:8080"), "http://[::1]:8080");
        assert_eq!(normalise("http://[::1]"), "http://[::1]");
        assert_eq!(normalise("null"), "null");
    }

    #[test]
    fn origin_allow_list_decides() {
        let allowed = AllowedOrigins::new(["http://example.com", "https://app.example:8443"]);
        // RFC 6454 §3.2.1's examples: same origin as http://example.com/.
        assert!(allowed.allows(Some("http://example.com")));
        assert!(allowed.allows(Some("http://example.com:80")));
        assert!(allowed.allows(Some("HTTP://Example.COM")));
        assert!(allowed.allows(Some("https://app.example:8443")));
        // ... and different origins.
        assert!(!allowed.allows(Some("http://example.com:8080")));
        assert!(!allowed.allows(Some("http://www.example.com")));
        assert!(!allowed.allows(Some("https://example.com")));
        assert!(!allowed.allows(Some("https://app.example")));
        assert!(!allowed.allows(Some("null")));
        assert!(!allowed.allows(Some("")));
        // No header: no browser.
        assert!(allowed.allows(None));
    }

    #[test]
    fn origin_refusal_is_403_naming_it() {
        let allowed = AllowedOrigins::new(["http://example.com"]);
        assert!(allowed.check(Some("http://example.com")).is_ok());
        let refused = allowed.check(Some("http://evil.example")).unwrap_err();
        assert_eq!(refused.status(), Some(403));
        assert!(refused.message().contains("http://evil.example"));
        assert!(AllowedOrigins::default()
            .check(Some("http://a.example"))
            .is_err());
        assert!(AllowedOrigins::default().check(None).is_ok());
    }
}

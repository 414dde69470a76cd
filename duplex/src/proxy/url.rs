//! [`Proxy`]: a proxy URL, parsed and checked once.

use std::borrow::Cow;

use super::error::ProxyError;

/// How a proxy is spoken to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyKind {
    /// An HTTP proxy: `CONNECT host:port` opens the tunnel (`http://`, or
    /// a URL without a scheme, as curl reads one).
    Http,
    /// SOCKS5 resolving the target's name here and sending its address
    /// (`socks5://`).
    Socks5,
    /// SOCKS5 sending the target's name for the proxy to resolve
    /// (`socks5h://`): the only way to reach names that resolve only on
    /// the proxy's side.
    Socks5h,
}

/// A proxy URL: kind, address and optional credentials (the URL's
/// user info, percent-decoded). Credentials never appear in its `Debug`
/// or `Display` forms, nor in errors.
///
/// ```
/// let proxy = duplex::proxy::Proxy::parse("http://user:secret@127.0.0.1:3128").unwrap();
/// assert_eq!(proxy.to_string(), "http://127.0.0.1:3128");
/// assert_eq!(proxy.kind(), duplex::proxy::ProxyKind::Http);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    kind: ProxyKind,
    host: String,
    port: u16,
    credentials: Option<(String, String)>,
}

impl Proxy {
    /// Parses `http://[user:password@]host[:port]` (port 80 by default;
    /// `host:port` alone means `http://`), `socks5://...` or
    /// `socks5h://...` (port 1080 by default).
    pub fn parse(url: &str) -> Result<Proxy, ProxyError> {
        let bad = |why: &str| ProxyError::url(redact(url), why);
        let with_scheme: Cow<'_, str> = if url.contains("://") {
            Cow::Borrowed(url)
        } else {
            Cow::Owned(format!("http://{url}"))
        };
        let parsed = ::url::Url::parse(&with_scheme).map_err(|e| bad(&e.to_string()))?;
        let (kind, default_port) = match parsed.scheme() {
            "http" => (ProxyKind::Http, 80),
            "socks5" => (ProxyKind::Socks5, 1080),
            "socks5h" => (ProxyKind::Socks5h, 1080),
            "https" => {
                return Err(bad(
                    "TLS to the proxy (https://) is not supported: use an http:// proxy URL \
                     (wss:// stays encrypted end to end inside the tunnel)",
                ))
            }
            other => {
                return Err(bad(&format!(
                    "scheme {other} is not one of http, socks5, socks5h"
                )))
            }
        };
        let host = match parsed.host() {
            Some(::url::Host::Domain(d)) if !d.is_empty() => d.to_string(),
            Some(::url::Host::Ipv4(ip)) => ip.to_string(),
            Some(::url::Host::Ipv6(ip)) => ip.to_string(),
            _ => return Err(bad("no host")),
        };
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| bad("the user info is not UTF-8"))
        };
        let credentials = match (parsed.username(), parsed.password()) {
            ("", None) => None,
            (user, password) => Some((decode(user)?, decode(password.unwrap_or(""))?)),
        };
        Ok(Proxy {
            kind,
            host,
            port: parsed.port().unwrap_or(default_port),
            credentials,
        })
    }

    /// The protocol spoken to the proxy.
    pub fn kind(&self) -> ProxyKind {
        self.kind
    }

    /// The proxy's host name or address (IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The user name and password from the URL, if it had any.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.credentials
            .as_ref()
            .map(|(user, password)| (user.as_str(), password.as_str()))
    }
}

impl std::fmt::Display for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = match self.kind {
            ProxyKind::Http => "http",
            ProxyKind::Socks5 => "socks5",
            ProxyKind::Socks5h => "socks5h",
        };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("url", &self.to_string())
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<hidden>"),
            )
            .finish()
    }
}

/// `url` without the user info, for error messages.
fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if scheme.is_empty() {
        format!("{host}{tail}")
    } else {
        format!("{scheme}://{host}{tail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_ports_and_credentials() {
        let p = Proxy::parse("http://127.0.0.1:3128").unwrap();
        assert_eq!(
            (p.kind(), p.host(), p.port()),
            (ProxyKind::Http, "127.0.0.1", 3128)
        );
        assert_eq!(p.credentials(), None);
        let p = Proxy::parse("proxy.example:8080").unwrap();
        assert_eq!(
            (p.kind(), p.host(), p.port()),
            (ProxyKind::Http, "proxy.example", 8080)
        );
        assert_eq!(Proxy::parse("http://proxy.example").unwrap().port(), 80);
        let p = Proxy::parse("socks5://[::1]").unwrap();
        assert_eq!(
            (p.kind(), p.host(), p.port()),
            (ProxyKind::Socks5, "::1", 1080)
        );
        assert_eq!(p.to_string(), "socks5://[::1]:1080");
        let p = Proxy::parse("socks5h://a%40b:p%3Ass@127.0.0.1:9050/").unwrap();
        assert_eq!(p.kind(), ProxyKind::Socks5h);
        assert_eq!(p.credentials(), Some(("a@b", "p:ss")));
        let p = Proxy::parse("http://user@127.0.0.1:1").unwrap();
        assert_eq!(p.credentials(), Some(("user", "")));
    }

    #[test]
    fn refusals_never_show_the_password() {
        for url in [
            "https://u:secret@proxy:443",
            "socks4://u:secret@proxy",
            "ftp://u:secret@h",
        ] {
            let e = Proxy::parse(url).unwrap_err().to_string();
            assert!(!e.contains("secret"), "{e}");
            assert!(e.contains("proxy") || e.contains("h"), "{e}");
        }
        assert!(Proxy::parse("https://proxy:443")
            .unwrap_err()
            .to_string()
            .contains("not supported"));
        let debug = format!("{:?}", Proxy::parse("http://u:secret@h:1").unwrap());
        assert!(!debug.contains("secret"), "{debug}");
        assert_eq!(redact("http://u:p@h:1/x"), "http://h:1/x");
        assert_eq!(redact("u:p@h:1"), "h:1");
    }
}

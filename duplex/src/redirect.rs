//! Following HTTP redirects of the opening handshake (see
//! [`ClientBuilder::follow_redirects`](crate::ClientBuilder::follow_redirects)).
//!
//! Servers move endpoints (`/ws` to `/ws/v2`, `ws://` to `wss://`) and
//! answer the old URL with a redirect; browsers do not follow them for
//! WebSockets, but Python `websockets` and websocat do. Only 301, 302, 307
//! and 308 are followed; the `Location` may be relative, and `http(s)://`
//! in it means `ws(s)://`.

use duplex_proto::handshake::Headers;

use crate::error::{Error, Failure, Result};

/// Whether `status` is a redirect the client follows.
pub(crate) fn is_redirect(status: Option<u16>) -> bool {
    matches!(status, Some(301 | 302 | 307 | 308))
}

/// The URL a redirect from `from` to `location` leads to, as `ws://` or
/// `wss://`.
pub(crate) fn resolve(from: &str, location: &str) -> Result<String> {
    let base = url::Url::parse(from).map_err(|e| Error::Url(Failure::caused_by(from, e)))?;
    let mut next = base.join(location.trim()).map_err(|e| {
        Error::Url(Failure::caused_by(
            format!("redirect to {location:?} from {from}"),
            e,
        ))
    })?;
    let scheme = match next.scheme() {
        "ws" | "http" => "ws",
        "wss" | "https" => "wss",
        other => {
            return Err(Error::Url(Failure::new(format!(
                "redirect from {from} to a {other}:// URL"
            ))))
        }
    };
    // http, https, ws and wss are all "special" schemes: switching
    // between them is allowed.
    next.set_scheme(scheme)
        .map_err(|()| Error::Url(Failure::new(format!("redirect to {location:?}"))))?;
    next.set_fragment(None);
    Ok(next.into())
}

/// The request headers to send after a redirect from `from` to `to`:
/// all of them on the same host and port, without credentials
/// (`Authorization`, `Cookie`) on another, as curl does.
pub(crate) fn headers_for(from: &str, to: &str, headers: &Headers) -> Headers {
    let origin = |url: &str| {
        url::Url::parse(url)
            .ok()
            .map(|u| (u.host_str().map(str::to_string), u.port_or_known_default()))
    };
    if origin(from) == origin(to) {
        return headers.clone();
    }
    let mut kept = Headers::default();
    for (name, value) in headers.iter() {
        if !name.eq_ignore_ascii_case("authorization") && !name.eq_ignore_ascii_case("cookie") {
            kept.push(name, value);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_resolve_to_websocket_urls() {
        let from = "ws://a:1/old?x=1";
        assert_eq!(resolve(from, "/new").unwrap(), "ws://a:1/new");
        assert_eq!(resolve(from, "next").unwrap(), "ws://a:1/next");
        assert_eq!(resolve(from, "https://b/x").unwrap(), "wss://b/x");
        assert_eq!(resolve(from, "http://b:2/x").unwrap(), "ws://b:2/x");
        assert_eq!(resolve(from, "wss://c/y").unwrap(), "wss://c/y");
        assert!(resolve(from, "ftp://c/y").is_err());
        assert!(is_redirect(Some(308)) && !is_redirect(Some(303)) && !is_redirect(None));
    }

    #[test]
    fn credentials_stay_on_their_host() {
        let mut headers = Headers::default();
        headers.push("Authorization", "Bearer t");
        headers.push("X-Trace", "1");
        let same = headers_for("ws://a:1/x", "ws://a:1/y", &headers);
        assert_eq!(same.get("authorization"), Some("Bearer t"));
        let other = headers_for("ws://a:1/x", "ws://b:1/y", &headers);
        assert_eq!(other.get("authorization"), None);
        assert_eq!(other.get("x-trace"), Some("1"));
    }
}

//! Which proxy the environment picks for a target, the way curl and
//! Python `websockets` read it. A pure function of a variable lookup, so
//! it is tested without touching the process environment.
//!
//! The order:
//!
//! 1. a loopback target (`localhost`, `*.localhost`, `127.0.0.0/8`, `::1`)
//!    is never proxied;
//! 2. `no_proxy` (else `NO_PROXY`): a comma-separated list of `*`, host
//!    names (`example.com` and `.example.com` both match the name and every
//!    name under it), IP addresses, CIDR ranges (`10.0.0.0/8`), each with an
//!    optional `:port` (`[::1]:8080` for IPv6) — a match means no proxy;
//! 3. by scheme: `wss_proxy` for `wss://`, `ws_proxy` for `ws://`;
//! 4. then `https_proxy` for `wss://`, `http_proxy` for `ws://`;
//! 5. then `all_proxy`.
//!
//! For each name the lower-case variable wins over the upper-case one
//! (curl's order); a variable set to the empty string counts as unset.

use std::net::IpAddr;

/// The proxy the environment picked: the variable it came from and its
/// value (a proxy URL, not yet parsed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvProxy {
    /// The variable, e.g. `https_proxy`.
    pub variable: &'static str,
    /// Its value.
    pub url: String,
}

/// The proxy for a `ws://` (`tls` false) or `wss://` target `host:port`
/// according to the variables `var` looks up (`|name| std::env::var(name).ok()`
/// for the real environment); `None` for a direct connection. The rules
/// are in the [module documentation](crate::proxy).
///
/// ```
/// use duplex::proxy::from_environment;
/// let env = |name: &str| match name {
///     "https_proxy" => Some("http://proxy.internal:3128".to_string()),
///     "no_proxy" => Some(".corp.example".to_string()),
///     _ => None,
/// };
/// let chosen = from_environment(true, "chat.example.org", 443, env).unwrap();
/// assert_eq!((chosen.variable, chosen.url.as_str()), ("https_proxy", "http://proxy.internal:3128"));
/// assert_eq!(from_environment(true, "db.corp.example", 443, env), None);
/// assert_eq!(from_environment(true, "127.0.0.1", 443, env), None);
/// ```
pub fn from_environment(
    tls: bool,
    host: &str,
    port: u16,
    var: impl Fn(&str) -> Option<String>,
) -> Option<EnvProxy> {
    if is_loopback(host) {
        return None;
    }
    let first = |names: &[&'static str]| {
        names.iter().find_map(|&name| {
            var(name)
                .filter(|value| !value.trim().is_empty())
                .map(|value| (name, value))
        })
    };
    if let Some((_, list)) = first(&["no_proxy", "NO_PROXY"]) {
        if bypasses(&list, host, port) {
            return None;
        }
    }
    let names: &[&'static str] = if tls {
        &[
            "wss_proxy",
            "WSS_PROXY",
            "https_proxy",
            "HTTPS_PROXY",
            "all_proxy",
            "ALL_PROXY",
        ]
    } else {
        &[
            "ws_proxy",
            "WS_PROXY",
            "http_proxy",
            "HTTP_PROXY",
            "all_proxy",
            "ALL_PROXY",
        ]
    };
    first(names).map(|(variable, url)| EnvProxy {
        variable,
        url: url.trim().to_string(),
    })
}

/// Whether `host` (a name, or an address without brackets) is this
/// machine's loopback: `localhost`, a name under `.localhost` (RFC 6761),
/// `127.0.0.0/8` or `::1` (also as `::ffff:127.x.y.z`).
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host == "localhost" || host.ends_with(".localhost") {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip.is_loopback(),
        Ok(IpAddr::V6(ip)) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => false,
    }
}

/// Whether a `no_proxy` list says `host:port` goes direct.
fn bypasses(list: &str, host: &str, port: u16) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let host_ip = host.parse::<IpAddr>().ok();
    list.split(',').map(str::trim).any(|entry| {
        if entry == "*" {
            return true;
        }
        let (pattern, entry_port) = split_port(entry);
        if pattern.is_empty() || entry_port.is_some_and(|p| p != port) {
            return false;
        }
        match host_ip {
            Some(ip) => ip_matches(pattern, ip),
            None => {
                let pattern = pattern.trim_start_matches("*.").trim_start_matches('.');
                let pattern = pattern.trim_end_matches('.').to_ascii_lowercase();
                !pattern.is_empty()
                    && (host == pattern
                        || host
                            .strip_suffix(&pattern)
                            .is_some_and(|rest| rest.ends_with('.')))
            }
        }
    })
}

/// Splits `host:port`, `[v6]:port` or `[v6]`; a bare IPv6 address (more
/// than one colon) has no port, and neither has an entry whose port is
/// not a number.
fn split_port(entry: &str) -> (&str, Option<u16>) {
    if let Some(rest) = entry.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((ip, "")) => (ip, None),
            Some((ip, port)) => match port.strip_prefix(':').and_then(|p| p.parse().ok()) {
                Some(port) => (ip, Some(port)),
                None => (entry, None),
            },
            None => (entry, None),
        };
    }
    match entry.split_once(':') {
        Some((host, port)) if !port.contains(':') => match port.parse() {
            Ok(port) => (host, Some(port)),
            Err(_) => (entry, None),
        },
        _ => (entry, None),
    }
}

/// Whether `ip` is the address `pattern` or inside the range `pattern`
/// (`addr/bits`).
fn ip_matches(pattern: &str, ip: IpAddr) -> bool {
    let (addr, bits) = match pattern.split_once('/') {
        Some((addr, bits)) => match bits.parse::<u32>() {
            Ok(bits) => (addr, Some(bits)),
            Err(_) => return false,
        },
        None => (pattern, None),
    };
    let Ok(net) = addr.parse::<IpAddr>() else {
        return false;
    };
    match (net, ip) {
        (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_equal(
            u32::from(net).into(),
            u32::from(ip).into(),
            bits.unwrap_or(32),
            32,
        ),
        (IpAddr::V6(net), IpAddr::V6(ip)) => {
            prefix_equal(net.into(), ip.into(), bits.unwrap_or(128), 128)
        }
        _ => false,
    }
}

/// Whether the first `bits` of two `width`-bit numbers agree.
fn prefix_equal(a: u128, b: u128, bits: u32, width: u32) -> bool {
    if bits > width {
        return false;
    }
    let shift = width - bits;
    shift >= 128 || (a >> shift) == (b >> shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        }
    }

    fn pick(tls: bool, host: &str, port: u16, vars: &[(&str, &str)]) -> Option<String> {
        from_environment(tls, host, port, env(vars)).map(|p| format!("{}={}", p.variable, p.url))
    }

    #[test]
    fn the_order_of_the_variables() {
        let all = [
            ("wss_proxy", "A"),
            ("https_proxy", "B"),
            ("ws_proxy", "C"),
            ("http_proxy", "D"),
            ("all_proxy", "E"),
        ];
        assert_eq!(pick(true, "example.org", 443, &all).unwrap(), "wss_proxy=A");
        assert_eq!(pick(false, "example.org", 80, &all).unwrap(), "ws_proxy=C");
        assert_eq!(
            pick(true, "example.org", 443, &all[1..]).unwrap(),
            "https_proxy=B"
        );
        assert_eq!(
            pick(false, "example.org", 80, &all[3..]).unwrap(),
            "http_proxy=D"
        );
        assert_eq!(
            pick(true, "example.org", 443, &all[4..]).unwrap(),
            "all_proxy=E"
        );
        assert_eq!(
            pick(false, "example.org", 80, &all[4..]).unwrap(),
            "all_proxy=E"
        );
        // The other scheme's variables never apply.
        assert_eq!(
            pick(
                true,
                "example.org",
                443,
                &[("ws_proxy", "C"), ("http_proxy", "D")]
            ),
            None
        );
        assert_eq!(
            pick(
                false,
                "example.org",
                80,
                &[("wss_proxy", "A"), ("https_proxy", "B")]
            ),
            None
        );
        assert_eq!(pick(false, "example.org", 80, &[]), None);
    }

    #[test]
    fn lower_case_wins_and_empty_is_unset() {
        let vars = [("HTTP_PROXY", "upper"), ("http_proxy", "lower")];
        assert_eq!(
            pick(false, "example.org", 80, &vars).unwrap(),
            "http_proxy=lower"
        );
        let vars = [("HTTP_PROXY", "upper")];
        assert_eq!(
            pick(false, "example.org", 80, &vars).unwrap(),
            "HTTP_PROXY=upper"
        );
        let vars = [("ws_proxy", ""), ("ALL_PROXY", " all ")];
        assert_eq!(
            pick(false, "example.org", 80, &vars).unwrap(),
            "ALL_PROXY=all"
        );
        let vars = [
            ("no_proxy", "other.org"),
            ("NO_PROXY", "*"),
            ("all_proxy", "P"),
        ];
        assert!(
            pick(false, "example.org", 80, &vars).is_some(),
            "no_proxy shadows NO_PROXY"
        );
        let vars = [("no_proxy", ""), ("NO_PROXY", "*"), ("all_proxy", "P")];
        assert_eq!(
            pick(false, "example.org", 80, &vars),
            None,
            "empty no_proxy is unset"
        );
    }

    #[test]
    fn loopback_is_never_proxied() {
        let vars = [("all_proxy", "P")];
        for host in [
            "localhost",
            "LOCALHOST.",
            "app.localhost",
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "::ffff:127.0.0.1",
        ] {
            assert_eq!(pick(false, host, 80, &vars), None, "{host}");
        }
        for host in [
            "localhost.example",
            "128.0.0.1",
            "0.0.0.0",
            "::2",
            "mylocalhost",
        ] {
            assert!(pick(false, host, 80, &vars).is_some(), "{host}");
        }
    }

    #[test]
    fn no_proxy_entries() {
        let bypass = |list: &str, host: &str, port: u16| {
            pick(true, host, port, &[("NO_PROXY", list), ("all_proxy", "P")]).is_none()
        };
        assert!(bypass("*", "anything.example", 443));
        assert!(bypass("example.com", "example.com", 443));
        assert!(bypass("example.com", "www.Example.COM", 443));
        assert!(bypass(".example.com", "example.com", 443));
        assert!(bypass("*.example.com", "a.b.example.com", 443));
        assert!(!bypass("example.com", "badexample.com", 443));
        assert!(!bypass("www.example.com", "example.com", 443));
        assert!(bypass("other.org, example.com:443", "example.com", 443));
        assert!(!bypass("example.com:8443", "example.com", 443));
        assert!(bypass("10.1.2.3", "10.1.2.3", 443));
        assert!(!bypass("10.1.2.3", "10.1.2.4", 443));
        assert!(bypass("10.0.0.0/8", "10.200.0.1", 443));
        assert!(!bypass("10.0.0.0/8", "11.0.0.1", 443));
        assert!(bypass("0.0.0.0/0", "192.0.2.1", 443));
        assert!(bypass("fd00::/8", "fd12::1", 443));
        assert!(bypass("2001:db8::1", "2001:db8::1", 443));
        assert!(bypass("[2001:db8::1]:443", "2001:db8::1", 443));
        assert!(!bypass("[2001:db8::1]:80", "2001:db8::1", 443));
        assert!(
            !bypass("10.0.0.0/8", "ten.example", 443),
            "a range never matches a name"
        );
        assert!(
            !bypass("example.com", "93.184.216.34", 443),
            "a name never matches an address"
        );
        assert!(!bypass(" , ,", "example.com", 443));
        assert!(!bypass("10.0.0.0/40", "10.0.0.1", 443));
    }

    #[test]
    fn ports_in_entries() {
        assert_eq!(split_port("host:80"), ("host", Some(80)));
        assert_eq!(split_port("host"), ("host", None));
        assert_eq!(split_port("::1"), ("::1", None));
        assert_eq!(split_port("[::1]"), ("::1", None));
        assert_eq!(split_port("[::1]:9"), ("::1", Some(9)));
        assert_eq!(split_port("host:x"), ("host:x", None));
    }
}

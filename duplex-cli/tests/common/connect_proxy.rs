//! An in-test HTTP `CONNECT` proxy: records every request (target and
//! `Proxy-Authorization`), checks Basic credentials when given some, can
//! refuse with a chosen status, and tunnels to 127.0.0.1 at the requested
//! port whatever host name was asked for.
#![allow(dead_code)]

use std::io::Write;
use std::net::TcpStream;
use std::sync::{Arc, Mutex};

use base64::Engine as _;

use super::proxy_relay::{connect_local, read_head, relay, AcceptLoop};

/// One `CONNECT` the proxy received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    /// The request line's method.
    pub method: String,
    /// The authority asked for, `host:port`.
    pub target: String,
    /// The `Proxy-Authorization` header, if sent.
    pub authorization: Option<String>,
}

/// How the proxy answers.
#[derive(Clone, Default)]
struct Policy {
    credentials: Option<(String, String)>,
    refuse: Option<u16>,
}

/// A running proxy; stopped when dropped.
pub struct ConnectProxy {
    accept: AcceptLoop,
    log: Arc<Mutex<Vec<ConnectRequest>>>,
}

impl ConnectProxy {
    /// A proxy that lets everyone through.
    pub fn start() -> ConnectProxy {
        ConnectProxy::with_policy(Policy::default())
    }

    /// A proxy that wants these Basic credentials (407 otherwise).
    pub fn with_credentials(user: &str, password: &str) -> ConnectProxy {
        ConnectProxy::with_policy(Policy {
            credentials: Some((user.into(), password.into())),
            ..Policy::default()
        })
    }

    /// A proxy that answers every `CONNECT` with `status`.
    pub fn refusing(status: u16) -> ConnectProxy {
        ConnectProxy::with_policy(Policy {
            refuse: Some(status),
            ..Policy::default()
        })
    }

    fn with_policy(policy: Policy) -> ConnectProxy {
        let log = Arc::new(Mutex::new(Vec::new()));
        let accept = AcceptLoop::start({
            let log = log.clone();
            move |stream| handle(stream, &policy, &log)
        });
        ConnectProxy { accept, log }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.accept.addr)
    }

    /// `http://USER:PASSWORD@127.0.0.1:PORT`
    pub fn url_with(&self, user: &str, password: &str) -> String {
        format!("http://{user}:{password}@{}", self.accept.addr)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<ConnectRequest> {
        self.log.lock().unwrap().clone()
    }

    /// The targets of every request so far.
    pub fn targets(&self) -> Vec<String> {
        self.requests().into_iter().map(|r| r.target).collect()
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "Connection established",
        403 => "Forbidden",
        405 => "Method Not Allowed",
        407 => "Proxy Authentication Required",
        502 => "Bad Gateway",
        _ => "Refused",
    }
}

fn answer(stream: &mut TcpStream, status: u16, extra: &str) {
    let body = format!("{status} from the test proxy\n");
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        reason(status),
        body.len()
    );
}

fn handle(mut stream: TcpStream, policy: &Policy, log: &Mutex<Vec<ConnectRequest>>) {
    let Some(head) = read_head(&mut stream, 16 * 1024) else {
        return;
    };
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_string();
    let target = first.next().unwrap_or("").to_string();
    let authorization = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("proxy-authorization"))
        .map(|(_, value)| value.trim().to_string());
    log.lock().unwrap().push(ConnectRequest {
        method: method.clone(),
        target: target.clone(),
        authorization: authorization.clone(),
    });
    if method != "CONNECT" {
        return answer(&mut stream, 405, "");
    }
    if let Some(status) = policy.refuse {
        return answer(&mut stream, status, "");
    }
    if let Some((user, password)) = &policy.credentials {
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        if authorization.as_deref() != Some(expected.as_str()) {
            return answer(
                &mut stream,
                407,
                "Proxy-Authenticate: Basic realm=\"duplex test\"\r\n",
            );
        }
    }
    let port = target
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse::<u16>().ok());
    let Some(Ok(upstream)) = port.map(connect_local) else {
        return answer(&mut stream, 502, "");
    };
    if stream
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .is_err()
    {
        return;
    }
    relay(stream, upstream);
}

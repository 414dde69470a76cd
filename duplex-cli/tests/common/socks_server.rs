//! An in-test SOCKS5 server (RFC 1928, RFC 1929 credentials when asked
//! for): records whether each request named the target by domain name or
//! by address, and tunnels to 127.0.0.1 at the requested port whatever
//! the target was.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpStream};
use std::sync::{Arc, Mutex};

use super::proxy_relay::{connect_local, relay, AcceptLoop};

/// How a request named its target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocksTarget {
    /// By name (address type 3): the proxy was to resolve it.
    Domain(String),
    /// By address (types 1 and 4): the client resolved it.
    Ip(IpAddr),
}

/// One `CONNECT` the server received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocksRequest {
    pub target: SocksTarget,
    pub port: u16,
    /// The user name, when the client authenticated.
    pub user: Option<String>,
}

/// A running server; stopped when dropped.
pub struct SocksServer {
    accept: AcceptLoop,
    log: Arc<Mutex<Vec<SocksRequest>>>,
}

impl SocksServer {
    /// A server without authentication.
    pub fn start() -> SocksServer {
        SocksServer::with(None)
    }

    /// A server that wants these credentials (RFC 1929).
    pub fn with_credentials(user: &str, password: &str) -> SocksServer {
        SocksServer::with(Some((user.into(), password.into())))
    }

    fn with(credentials: Option<(String, String)>) -> SocksServer {
        let log = Arc::new(Mutex::new(Vec::new()));
        let accept = AcceptLoop::start({
            let log = log.clone();
            move |stream| {
                let _ = handle(stream, credentials.as_ref(), &log);
            }
        });
        SocksServer { accept, log }
    }

    /// `SCHEME://127.0.0.1:PORT`, e.g. with `socks5h`.
    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://{}", self.accept.addr)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<SocksRequest> {
        self.log.lock().unwrap().clone()
    }
}

fn read_bytes(stream: &mut TcpStream, n: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    stream.read_exact(&mut buf)?;
    Ok(buf)
}

fn handle(
    mut stream: TcpStream,
    credentials: Option<&(String, String)>,
    log: &Mutex<Vec<SocksRequest>>,
) -> std::io::Result<()> {
    let greeting = read_bytes(&mut stream, 2)?;
    if greeting[0] != 5 {
        return Ok(());
    }
    let methods = read_bytes(&mut stream, greeting[1] as usize)?;
    let mut user = None;
    match credentials {
        Some((want_user, want_password)) if methods.contains(&2) => {
            stream.write_all(&[5, 2])?;
            let head = read_bytes(&mut stream, 2)?;
            let name =
                String::from_utf8_lossy(&read_bytes(&mut stream, head[1] as usize)?).into_owned();
            let len = read_bytes(&mut stream, 1)?[0] as usize;
            let password = String::from_utf8_lossy(&read_bytes(&mut stream, len)?).into_owned();
            if &name != want_user || &password != want_password {
                return stream.write_all(&[1, 1]);
            }
            stream.write_all(&[1, 0])?;
            user = Some(name);
        }
        None if methods.contains(&0) => stream.write_all(&[5, 0])?,
        _ => return stream.write_all(&[5, 0xff]),
    }
    let request = read_bytes(&mut stream, 4)?;
    let target = match request[3] {
        1 => {
            let b = read_bytes(&mut stream, 4)?;
            SocksTarget::Ip(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])))
        }
        3 => {
            let len = read_bytes(&mut stream, 1)?[0] as usize;
            SocksTarget::Domain(
                String::from_utf8_lossy(&read_bytes(&mut stream, len)?).into_owned(),
            )
        }
        4 => {
            let b: [u8; 16] = read_bytes(&mut stream, 16)?.try_into().unwrap();
            SocksTarget::Ip(IpAddr::V6(Ipv6Addr::from(b)))
        }
        _ => return Ok(()),
    };
    let p = read_bytes(&mut stream, 2)?;
    let port = u16::from_be_bytes([p[0], p[1]]);
    log.lock()
        .unwrap()
        .push(SocksRequest { target, port, user });
    if request[1] != 1 {
        // Command not supported.
        return stream.write_all(&[5, 7, 0, 1, 0, 0, 0, 0, 0, 0]);
    }
    match connect_local(port) {
        Ok(upstream) => {
            stream.write_all(&[5, 0, 0, 1, 127, 0, 0, 1, 0, 0])?;
            relay(stream, upstream);
        }
        // Connection refused.
        Err(_) => stream.write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0])?,
    }
    Ok(())
}

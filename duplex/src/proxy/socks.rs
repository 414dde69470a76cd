//! The SOCKS5 tunnel (RFC 1928, user/password from RFC 1929), spoken by
//! the `tokio-socks` crate.

use std::net::SocketAddr;

use tokio::net::TcpStream;
use tokio_socks::tcp::Socks5Stream;
use tokio_socks::TargetAddr;

use super::error::ProxyError;
use super::url::{Proxy, ProxyKind};

/// Asks `proxy` (connected as `tcp`) for a tunnel to `host:port`:
/// `socks5://` sends the address `host` resolves to here, `socks5h://`
/// sends the name itself (an IP literal goes as an address either way).
pub(super) async fn tunnel(
    proxy: &Proxy,
    tcp: TcpStream,
    host: &str,
    port: u16,
) -> Result<TcpStream, ProxyError> {
    let target = match (host.parse::<std::net::IpAddr>(), proxy.kind()) {
        (Ok(ip), _) => TargetAddr::Ip(SocketAddr::new(ip, port)),
        (Err(_), ProxyKind::Socks5h) => TargetAddr::Domain(host.into(), port),
        (Err(_), _) => TargetAddr::Ip(resolve(host, port).await.map_err(|e| {
            ProxyError::Socks {
                proxy: proxy.to_string(),
                source: format!(
                    "resolving {host} here (socks5:// resolves locally; socks5h:// lets the proxy do it): {e}"
                )
                .into(),
            }
        })?),
    };
    let socks = |e: tokio_socks::Error| ProxyError::Socks {
        proxy: proxy.to_string(),
        source: Box::new(e),
    };
    let stream = match proxy.credentials() {
        Some((user, password)) => {
            Socks5Stream::connect_with_password_and_socket(tcp, target, user, password)
                .await
                .map_err(socks)?
        }
        None => Socks5Stream::connect_with_socket(tcp, target)
            .await
            .map_err(socks)?,
    };
    Ok(stream.into_inner())
}

/// The first address `host` resolves to.
async fn resolve(host: &str, port: u16) -> std::io::Result<SocketAddr> {
    tokio::net::lookup_host((host, port))
        .await?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address"))
}

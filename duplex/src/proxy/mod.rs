//! Client proxies: HTTP `CONNECT` and SOCKS5, chosen explicitly or from
//! the environment as curl and Python `websockets` do.
//!
//! - [`Proxy`]: a parsed proxy URL (`http://`, `socks5://`, `socks5h://`).
//! - [`from_environment`]: which proxy the usual variables (`no_proxy`,
//!   `wss_proxy`/`ws_proxy`, `https_proxy`/`http_proxy`, `all_proxy`)
//!   pick for a target.
//! - [`ProxyError`]: what a proxy refused or failed, naming the proxy.
//!
//! Both kinds hand back the TCP connection to the proxy as a tunnel to the
//! target; TLS for `wss://` then runs end to end inside it, with the
//! target's name for SNI and the certificate check.

mod env;
mod error;
mod http_connect;
mod socks;
mod url;

pub use env::{from_environment, is_loopback, EnvProxy};
pub use error::ProxyError;
pub use url::{Proxy, ProxyKind};

use tokio::net::TcpStream;

/// Opens a TCP connection to `host:port` through `proxy`: the returned
/// stream carries the target's bytes.
pub(crate) async fn tunnel(proxy: &Proxy, host: &str, port: u16) -> Result<TcpStream, ProxyError> {
    let tcp = TcpStream::connect((proxy.host(), proxy.port()))
        .await
        .map_err(|e| ProxyError::unreachable(proxy, e))?;
    tcp.set_nodelay(true)
        .map_err(|e| ProxyError::unreachable(proxy, e))?;
    match proxy.kind() {
        ProxyKind::Http => http_connect::tunnel(proxy, tcp, host, port).await,
        ProxyKind::Socks5 | ProxyKind::Socks5h => socks::tunnel(proxy, tcp, host, port).await,
    }
}

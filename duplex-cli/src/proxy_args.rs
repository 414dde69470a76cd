//! `--proxy URL | --no-proxy` of `duplex connect`: the library decides
//! everything else (see `duplex::proxy`).

use clap::Args;
use duplex::ClientBuilder;

/// How `duplex connect` picks a proxy; without either flag, from the
/// environment as curl does.
#[derive(Args, Debug, Clone, Default)]
pub struct ProxyArgs {
    /// Connect through this proxy: http://[USER:PASSWORD@]HOST:PORT (HTTP
    /// CONNECT), socks5://HOST:PORT (the target's name resolved here) or
    /// socks5h://HOST:PORT (resolved by the proxy). Applies to loopback
    /// targets too. Default: the environment's no_proxy, wss_proxy /
    /// ws_proxy, https_proxy / http_proxy, all_proxy (never for loopback).
    #[arg(long, value_name = "URL", conflicts_with = "no_proxy")]
    pub proxy: Option<String>,
    /// Connect directly, whatever the proxy environment variables say.
    #[arg(long)]
    pub no_proxy: bool,
}

impl ProxyArgs {
    /// `builder` with this choice applied.
    pub fn apply(&self, builder: ClientBuilder) -> ClientBuilder {
        match (&self.proxy, self.no_proxy) {
            (Some(url), _) => builder.proxy(url),
            (None, true) => builder.no_proxy(),
            (None, false) => builder,
        }
    }
}

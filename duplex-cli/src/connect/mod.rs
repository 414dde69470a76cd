//! `duplex connect URL`: stdin lines out as text messages, received
//! messages printed; `--echo` sends every message straight back.

//!
//! One file per concern: the options ([`args`]), one connection
//! ([`session`]), `--reconnect` ([`reconnecting`]), printing ([`output`])
//! and the failure line ([`errors`]).

mod args;
mod errors;
mod output;
mod reconnecting;
mod session;

use std::time::Duration;

use duplex::reconnect::{ReconnectPolicy, ReconnectingClient};
use duplex::{ClientBuilder, Config};

pub use args::ConnectArgs;
use errors::describe;
use reconnecting::reconnecting;
use session::{echo, interactive};

/// Runs `duplex connect`.
pub async fn run(args: ConnectArgs) -> Result<(), String> {
    let mut config = Config::default();
    if args.no_compression {
        config.deflate = None;
    }
    let mut builder = ClientBuilder::new(&args.url)
        .config(config)
        .connect_timeout(std::time::Duration::from_secs_f64(args.timeout))
        .danger_accept_invalid_certs(args.insecure);
    for header in &args.headers {
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| format!("header {header:?} is not `Name: value`"))?;
        builder = builder.header(name.trim(), value.trim());
    }
    for protocol in &args.protocols {
        builder = builder.protocol(protocol);
    }
    if let Some(ca) = &args.ca {
        let pem = std::fs::read(ca).map_err(|e| format!("reading {}: {e}", ca.display()))?;
        builder = builder
            .add_root_certificates_pem(&pem)
            .map_err(|e| e.to_string())?;
    }
    if args.insecure {
        eprintln!("duplex: warning: --insecure: the server's certificate is not verified");
    }
    if let Some(secs) = args.keepalive {
        let every = Duration::from_secs_f64(secs);
        builder = builder.keepalive(every, every);
    }
    if args.reconnect {
        let policy = ReconnectPolicy {
            max_attempts: args.max_attempts,
            max: seconds("--max-backoff", args.max_backoff)?,
            close_grace: seconds("--close-grace", args.close_grace)?,
            ..ReconnectPolicy::default()
        };
        return reconnecting(ReconnectingClient::spawn(builder, policy), args.echo).await;
    }
    let ws = builder
        .connect()
        .await
        .map_err(|e| describe(&args.url, e))?;
    if args.echo {
        echo(ws).await
    } else {
        interactive(ws).await
    }
}

/// A number of seconds given on the command line.
fn seconds(flag: &str, secs: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{flag} {secs}: not a number of seconds"))
}

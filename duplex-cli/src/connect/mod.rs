//! `duplex connect URL`: stdin lines out as text messages, received
//! messages printed; `--echo` sends every message straight back.

//!
//! One file per concern: the options ([`args`]), the input and output
//! options shared with `duplex listen` ([`formats`]), slash commands
//! ([`commands`]), one connection ([`session`]), `--reconnect`
//! ([`reconnecting`]), printing ([`output`]), `-v` ([`verbose`]) and the
//! failure line ([`errors`]).

mod args;
pub(crate) mod commands;
mod errors;
pub(crate) mod formats;
pub(crate) mod output;
mod reconnecting;
mod session;
mod verbose;

use std::io::IsTerminal;

use std::time::Duration;

use duplex::reconnect::{ReconnectPolicy, ReconnectingClient};
use duplex::{ClientBuilder, Config};

pub use args::ConnectArgs;
use errors::describe;
use output::Printer;
use reconnecting::reconnecting;
use session::{echo, interactive, Session};

/// Runs `duplex connect`.
pub async fn run(args: ConnectArgs) -> Result<(), String> {
    let mut config = Config::default();
    if args.no_compression {
        config.deflate = None;
    }
    let mut builder = ClientBuilder::new(&args.url)
        .config(config)
        .timeout(seconds("--timeout", args.timeout)?)
        .connect_timeout(seconds("--timeout", args.timeout)?)
        .handshake_timeout(seconds("--timeout", args.timeout)?)
        .follow_redirects(args.max_redirects)
        .danger_accept_invalid_certs(args.insecure);
    if args.verbose {
        builder = verbose::inspect(builder);
    }
    let printer = Printer::new(args.output);
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
    builder = args.proxy.apply(builder);
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
        let client = ReconnectingClient::spawn(builder, policy);
        return reconnecting(client, &args.url, args.echo, args.input, printer).await;
    }
    let ws = builder
        .connect()
        .await
        .map_err(|e| describe(&args.url, e))?;
    if args.verbose {
        eprintln!(
            "* connected; subprotocol {}, permessage-deflate {}",
            ws.protocol().unwrap_or("none"),
            if ws.is_compressed() { "on" } else { "off" }
        );
    }
    if args.echo {
        return echo(ws, printer).await;
    }
    let slash = !args.no_slash && (args.slash || std::io::stdin().is_terminal());
    let session = Session {
        printer,
        input: args.input,
        slash,
        once: args.once,
    };
    interactive(ws, session).await
}

/// A number of seconds given on the command line.
fn seconds(flag: &str, secs: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{flag} {secs}: not a number of seconds"))
}

//! The options of `duplex connect`, in one struct so that new flags merge
//! as new fields.

use std::path::PathBuf;

use clap::Args;

use super::formats::{InputArgs, OutputArgs};

/// Options of `duplex connect`.
#[derive(Args)]
pub struct ConnectArgs {
    /// ws:// or wss:// URL.
    pub(super) url: String,
    /// Send every received message back (same type) instead of reading stdin.
    #[arg(long)]
    pub(super) echo: bool,
    /// Extra request header, `Name: value` (repeatable).
    #[arg(long = "header", short = 'H')]
    pub(super) headers: Vec<String>,
    /// Subprotocol to offer (repeatable).
    #[arg(long = "protocol")]
    pub(super) protocols: Vec<String>,
    /// Extra trusted root certificate (PEM) for wss://.
    #[arg(long)]
    pub(super) ca: Option<PathBuf>,
    /// Accept any TLS certificate (testing only: no protection at all).
    #[arg(long)]
    pub(super) insecure: bool,
    /// Do not offer permessage-deflate.
    #[arg(long)]
    pub(super) no_compression: bool,
    /// Limit, in seconds, of the whole connection setup: TCP, TLS, the
    /// HTTP upgrade and any redirects together.
    #[arg(long, default_value_t = 10.0)]
    pub(super) timeout: f64,
    /// Reconnect with exponential backoff when the connection drops;
    /// lines typed meanwhile are queued and sent after the reconnect, and
    /// each line is sent again until the server confirms it (so a line may
    /// arrive twice, but none is lost).
    #[arg(long)]
    pub(super) reconnect: bool,
    /// With --reconnect: give up after this many failed attempts in a row.
    #[arg(long)]
    pub(super) max_attempts: Option<u32>,
    /// With --reconnect: the longest wait between attempts, in seconds.
    #[arg(long, default_value_t = 5.0)]
    pub(super) max_backoff: f64,
    /// With --reconnect: at the end of stdin, keep trying this many
    /// seconds to deliver the lines the server has not confirmed.
    #[arg(long, default_value_t = 5.0)]
    pub(super) close_grace: f64,
    /// Ping the server this many seconds after connecting and after each
    /// answer, and give up when its pong does not arrive within as many
    /// seconds again.
    #[arg(long)]
    pub(super) keepalive: Option<f64>,
    /// One-shot: send stdin's messages, print as many replies as messages
    /// were sent (one if stdin was empty), then close with 1000 and exit 0.
    #[arg(short = '1', long, conflicts_with_all = ["echo", "reconnect"])]
    pub(super) once: bool,
    /// Slash commands on stdin (/ping [data], /pong [data],
    /// /close [code [reason]]; `//x` sends `/x`). On by default when stdin
    /// is a terminal; off otherwise, so piped lines are sent as they are.
    #[arg(long, overrides_with = "no_slash")]
    pub(super) slash: bool,
    /// No slash commands, even on a terminal: every line is sent as it is.
    #[arg(long)]
    pub(super) no_slash: bool,
    /// Print the handshake's request and response headers (and redirects)
    /// on stderr, `>` before what was sent and `<` before what came back.
    #[arg(short = 'v', long)]
    pub(super) verbose: bool,
    /// Follow at most this many redirects (301, 302, 307, 308); 0 makes a
    /// redirect an error.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub(super) max_redirects: usize,
    #[command(flatten)]
    pub(super) input: InputArgs,
    #[command(flatten)]
    pub(super) output: OutputArgs,
    #[command(flatten)]
    pub(super) proxy: crate::proxy_args::ProxyArgs,
}

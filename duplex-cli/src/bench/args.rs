//! The options of `duplex bench`, both modes' (the fan-out ones under
//! their own heading), and their checks. Below both modes, which read them.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use duplex::{ClientBuilder, Config};

/// How the fan-out mode works, below the options in `duplex bench --help`.
pub(crate) const FANOUT_HELP: &str = "\
Fan-out mode: member k of room r connects to URL (r + k) mod (number of URLs); the first
--publishers members of each room also publish. Before publishing, the first member on each URL of
each room sends probes until every member has heard every such prober (so nobody publishes before
everyone has joined). Latency is send -> delivery on the bench's one clock; rates and latency count
the measured window, loss/duplicates/order the whole run. Exits 1 on any lost (unless --allow-loss),
duplicated, reordered, own-echoed or foreign delivery, and when nothing was delivered.

Example (5,000 publishes/s into rooms of 9, 45,000 deliveries/s):
  duplex bench --fanout ws://127.0.0.1:8080/chat/ --rooms 556 --members 9 --rate 5000/s -d 10";

/// Options of `duplex bench`.
#[derive(Args)]
pub struct BenchArgs {
    /// ws:// or wss:// URL of an echo endpoint; with --fanout, one or more
    /// room URLs (one per node), e.g. ws://127.0.0.1:8080/chat/
    #[arg(required = true, num_args = 1.., value_name = "URL")]
    pub(crate) urls: Vec<String>,
    /// Fan-out mode: rooms of members publishing to each other through the
    /// URLs' relay, every delivery checked (options below).
    #[arg(long)]
    pub(crate) fanout: bool,
    /// Parallel connections.
    #[arg(long, short = 'c', default_value_t = 10, conflicts_with = "fanout")]
    pub(super) connections: usize,
    /// Message size in bytes (with --fanout at least 20, the header).
    #[arg(long, short = 's', default_value_t = 20)]
    pub(crate) size: usize,
    /// Measured duration in seconds.
    #[arg(long, short = 'd', default_value_t = 5.0)]
    pub(crate) duration: f64,
    /// Warm-up before measuring, in seconds.
    #[arg(long, default_value_t = 1.0)]
    pub(crate) warmup: f64,
    /// Messages in flight per connection.
    #[arg(long, default_value_t = 1, conflicts_with = "fanout")]
    pub(super) inflight: usize,
    /// Send text messages instead of binary.
    #[arg(long, conflicts_with = "fanout")]
    pub(super) text: bool,
    /// Offer permessage-deflate (the payload is compressible text).
    #[arg(long)]
    pub(crate) compress: bool,
    /// Accept any TLS certificate (testing only).
    #[arg(long)]
    pub(crate) insecure: bool,
    /// Extra trusted root certificate (PEM) for wss://, as in `duplex connect`.
    #[arg(long, value_name = "CERT.pem")]
    pub(crate) ca: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub(crate) json: bool,
    /// Hide the progress bar.
    #[arg(long)]
    pub(crate) quiet: bool,
    /// Connect through this proxy (http://, socks5://, socks5h://; see
    /// `duplex connect --help`). Without it bench connects directly: the
    /// proxy environment variables are never used.
    #[arg(long, value_name = "URL")]
    pub(crate) proxy: Option<String>,
    #[command(flatten)]
    pub(crate) fan: FanoutArgs,
}

impl BenchArgs {
    /// A client for `url` with the shared connection options; fails when
    /// `--ca` cannot be read.
    pub(crate) fn client(&self, url: &str) -> Result<ClientBuilder, String> {
        let mut config = Config::default();
        if !self.compress {
            config.deflate = None;
        }
        let mut builder = ClientBuilder::new(url)
            .config(config)
            .danger_accept_invalid_certs(self.insecure);
        if let Some(ca) = &self.ca {
            let pem = std::fs::read(ca).map_err(|e| format!("reading {}: {e}", ca.display()))?;
            builder = builder
                .add_root_certificates_pem(&pem)
                .map_err(|e| format!("{}: {e}", ca.display()))?;
        }
        // A benchmark goes through a proxy only when told, never from
        // the environment.
        Ok(match &self.proxy {
            Some(proxy) => builder.proxy(proxy),
            None => builder.no_proxy(),
        })
    }

    /// The warm-up and the measured duration, checked.
    pub(crate) fn phases(&self) -> Result<(Duration, Duration), String> {
        Ok((
            seconds("--warmup", self.warmup)?,
            seconds("--duration", self.duration)?,
        ))
    }
}

/// `value` seconds as a duration; an error naming `flag` if it is negative
/// or not a number.
pub(crate) fn seconds(flag: &str, value: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| format!("{flag} {value}: not a number of seconds"))
}

/// The options of the fan-out mode (with `--fanout`).
#[derive(Args)]
#[command(next_help_heading = "Fan-out mode (with --fanout)")]
pub struct FanoutArgs {
    /// Rooms, named PREFIX0, PREFIX1, ... A URL that contains {room} gets
    /// the name there; one that ends in / gets it appended; any other URL
    /// is used as it is for every room.
    #[arg(long, default_value_t = 1, requires = "fanout")]
    pub(crate) rooms: usize,
    /// Members per room (each one receives every other member's publishes).
    #[arg(long, default_value_t = 10, requires = "fanout")]
    pub(crate) members: usize,
    /// Members per room that also publish.
    #[arg(long, default_value_t = 1, requires = "fanout")]
    pub(crate) publishers: usize,
    /// Publishes per second in all rooms together ("5000" or "5000/s"),
    /// spread evenly over the publishers and paced by the clock (open loop).
    #[arg(long, default_value = "100", value_parser = parse_rate, requires = "fanout")]
    pub(crate) rate: f64,
    /// Seconds to wait after the last publish for deliveries still on the
    /// way; what has not arrived then is lost.
    #[arg(long, default_value_t = 2.0, requires = "fanout")]
    pub(crate) drain: f64,
    /// Seconds the join probes may take before the run fails.
    #[arg(long, default_value_t = 10.0, requires = "fanout")]
    pub(crate) join_timeout: f64,
    /// Instead of probing, wait SECS after connecting (for a relay that
    /// would not pass a probe on, or to see how a plain wait fares).
    #[arg(long, value_name = "SECS", requires = "fanout")]
    pub(crate) settle: Option<f64>,
    /// Exit 0 despite lost deliveries and dropped connections (duplicates,
    /// reordering, own echoes and strays still fail the run).
    #[arg(long, requires = "fanout")]
    pub(crate) allow_loss: bool,
    /// The rooms' name prefix.
    #[arg(
        long,
        default_value = "bench-",
        value_name = "PREFIX",
        requires = "fanout"
    )]
    pub(crate) room_prefix: String,
}

/// "5000" or "5000/s": publishes per second.
fn parse_rate(text: &str) -> Result<f64, String> {
    let number = text.strip_suffix("/s").unwrap_or(text);
    match number.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!(
            "{text:?} is not a positive rate (e.g. 5000 or 5000/s)"
        )),
    }
}

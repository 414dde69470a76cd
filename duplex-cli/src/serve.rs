//! `duplex serve`: the chat page, `/echo`, `/chat/<room>`, `/healthz` and
//! `GET /presence/<room>`; with `--publish-token`, `POST /publish/<room>`
//! (see `publish.rs`).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use duplex::backplane::{Backplane, RedisBackplane, RedisOptions};
use duplex::proto::deflate::{DeflateConfig, DeflateMemory};
use duplex::{Config, HttpResponse, Relay, Rooms, Server, ServerSocket, Timeouts};

/// Options of `duplex serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// PEM certificate chain: serve wss:// (with --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Do not accept permessage-deflate.
    #[arg(long)]
    no_compression: bool,
    /// What compression may cost per connection: `shared` answers without
    /// context takeover so no zlib state outlives a message (about 5 KiB per
    /// idle connection); `per-connection` keeps context takeover for a
    /// better ratio (about 464 KiB per connection at the default window).
    #[arg(long, value_enum, default_value_t = CompressionMemory::Shared)]
    compression_memory: CompressionMemory,
    /// Largest LZ77 window (log2 bytes, 9..=15) the server compresses
    /// with, also asked of clients that offer `client_max_window_bits`.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u8).range(9..=15))]
    compression_window_bits: u8,
    /// zlib memory level (1..=9) of a compressor a connection keeps (with
    /// `--compression-memory per-connection`); 1 saves ~63 KiB each.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u8).range(1..=9))]
    compression_mem_level: u8,
    /// Ping clients this many seconds after they connect and after each
    /// answer, and drop those whose pong does not arrive within as many
    /// seconds again (data does not count as an answer).
    #[arg(long, value_name = "SECS", value_parser = seconds)]
    keepalive: Option<Duration>,
    /// Seconds within which a message must arrive whole once its first
    /// byte has; a slower one closes the connection with 1008 (0 = off).
    #[arg(long, value_name = "SECS", value_parser = seconds, default_value = "30")]
    message_timeout: Duration,
    /// Close connections with 1001 after this many seconds without a data
    /// message either way (0, the default, = off).
    #[arg(long, value_name = "SECS", value_parser = seconds, default_value = "0")]
    idle_timeout: Duration,
    /// Drop connections whose writes make no progress for this many
    /// seconds: the client stopped reading (0 = off).
    #[arg(long, value_name = "SECS", value_parser = seconds, default_value = "30")]
    write_timeout: Duration,
    /// Worker threads (default: the cores this process may use; 1 runs a
    /// single-threaded runtime).
    #[arg(long)]
    threads: Option<usize>,
    /// The most simultaneous connections; more get HTTP 503 (default: the
    /// open-file limit less a reserve of 5%, at least 16).
    #[arg(long)]
    max_connections: Option<usize>,
    /// Largest message accepted, in bytes (suffixes K, M, G: powers of
    /// 1024); a longer one closes the connection with 1009.
    #[arg(long, default_value = "16M", value_parser = parse_size)]
    max_message_size: usize,
    /// The most payload all connections together may buffer (suffixes K,
    /// M, G): beyond it an incoming message closes its connection with
    /// 1009 and an outgoing one is handled like a full queue.
    #[arg(long, default_value = "512M", value_parser = parse_size)]
    memory_budget: usize,
    /// Seconds a shutdown (SIGINT, SIGTERM) gives clients to take what is
    /// queued for them and answer the close 1001; what is still unsent
    /// then is dropped and counted in one warning.
    #[arg(long, value_name = "SECS", value_parser = seconds, default_value = "3")]
    shutdown_grace: Duration,
    /// Rooms span every `duplex serve` on this Redis:
    /// redis://[:PASSWORD@]HOST[:PORT][/DB] or rediss://... (TLS). Give it
    /// several times, or with --redis-cluster, for a Redis Cluster.
    #[arg(long, value_name = "URL")]
    redis: Vec<String>,
    /// The --redis URLs are nodes of a Redis Cluster (7 or newer): rooms
    /// use sharded pub/sub.
    #[arg(long, requires = "redis")]
    redis_cluster: bool,
    /// This node's name in logs, stats and presence (default: random).
    #[arg(long, requires = "redis")]
    node_id: Option<String>,
    /// Prefix of the Redis channels and keys; nodes with the same prefix
    /// share rooms.
    #[arg(long, requires = "redis", default_value = "duplex")]
    redis_prefix: String,
    /// PEM CA that the certificates of rediss:// servers are checked
    /// against (default: the system's roots).
    #[arg(long, value_name = "CA.pem", requires = "redis")]
    redis_ca: Option<PathBuf>,
    /// A member who joins a room first receives its last N messages, then
    /// the live ones (with --redis: the room's history across nodes, kept
    /// in a Redis stream; without: as long as the room has members).
    #[arg(long, value_name = "N", default_value_t = 0)]
    history: usize,
    /// Seconds a node's presence record (who is in a room) stays valid in
    /// Redis without being renewed: a crashed node's members are gone
    /// from the other nodes' presence within this (at least 1).
    #[arg(long, value_name = "SECS", requires = "redis", value_parser = seconds, default_value = "15")]
    presence_ttl: Duration,
    /// Enable `POST /publish/<room>` for requests with `Authorization:
    /// Bearer TOKEN`: the body (at most --max-message-size) becomes one
    /// message to the room's members. Also read from
    /// DUPLEX_PUBLISH_TOKEN, which other users cannot see in the process
    /// list.
    #[arg(long, value_name = "TOKEN", env = "DUPLEX_PUBLISH_TOKEN", hide_env_values = true,
          value_parser = crate::publish::parse_token)]
    publish_token: Option<crate::publish::PublishToken>,
    /// Let only pages of this origin (scheme://host[:port]) open a
    /// WebSocket; repeat for more. Browsers on other origins get 403;
    /// clients that send no Origin are not browsers and pass. Default:
    /// every origin.
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    allow_origin: Vec<String>,
    /// A subprotocol the server speaks; repeat for more, most preferred
    /// first. The first of these that the client offers is agreed.
    #[arg(long = "subprotocol", value_name = "NAME")]
    subprotocol: Vec<String>,
}

/// A size in bytes, with an optional K, M or G suffix (powers of 1024).
fn parse_size(text: &str) -> Result<usize, String> {
    let (digits, shift) = match text.trim().to_ascii_uppercase() {
        t if t.ends_with('G') => (t[..t.len() - 1].to_string(), 30),
        t if t.ends_with('M') => (t[..t.len() - 1].to_string(), 20),
        t if t.ends_with('K') => (t[..t.len() - 1].to_string(), 10),
        t => (t, 0),
    };
    let number: usize = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size (a number, optionally with K, M or G)"))?;
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{text} is too large"))
}

/// `--compression-memory`: [`DeflateMemory`] on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum CompressionMemory {
    Shared,
    PerConnection,
}

impl ServeArgs {
    /// The permessage-deflate settings, `None` with `--no-compression`.
    fn deflate(&self) -> Option<DeflateConfig> {
        if self.no_compression {
            return None;
        }
        Some(DeflateConfig {
            memory: match self.compression_memory {
                CompressionMemory::Shared => DeflateMemory::Shared,
                CompressionMemory::PerConnection => DeflateMemory::PerConnection,
            },
            server_max_window_bits: self.compression_window_bits,
            client_max_window_bits: self.compression_window_bits,
            mem_level: self.compression_mem_level,
            ..DeflateConfig::default()
        })
    }

    /// How many runtime threads to use.
    pub fn threads(&self) -> usize {
        self.threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1)
    }
}

pub async fn run(args: ServeArgs) -> Result<(), String> {
    let config = Config {
        deflate: args.deflate(),
        ..Config::default()
    }
    .with_max_message_size(args.max_message_size);
    let backplane = start_backplane(&args)?;
    let rooms = Rooms::new().with_history(args.history);
    let rooms = match &backplane {
        Some(backplane) => rooms.spanning(backplane.clone()),
        None => Arc::new(rooms),
    };
    let presence = rooms.clone();
    let mut server = Server::new()
        .config(config)
        .rooms(rooms)
        // The request is not needed: drop it before the connection's
        // long-lived future is built.
        .route("/echo", |ws, _request| echo(ws))
        .handler("/chat/{room}", Relay::for_request)
        .http("/healthz", |_| HttpResponse::text(200, "ok"))
        .http("/", |_| HttpResponse::html(crate::page::chat()))
        .http_async("/presence/{room}", move |request| {
            presence_json(presence.clone(), request.param("room").unwrap_or_default())
        })
        .protocols(args.subprotocol.iter().cloned());
    if !args.allow_origin.is_empty() {
        server = server.allowed_origins(&args.allow_origin);
    }
    if let Some(backplane) = &backplane {
        let backplane = backplane.clone();
        server = server.http("/backplane", move |_| {
            let json = backplane.stats().counters().to_json(backplane.node_id());
            HttpResponse::json(200, json)
        });
    }
    if let Some(token) = args.publish_token.clone() {
        server = server
            .http_with_body(crate::publish::PATTERN, crate::publish::route(token))
            .max_request_body(args.max_message_size);
    }
    server = server.memory_budget(args.memory_budget);
    if let Some(max) = args.max_connections {
        server = server.max_connections(max);
    }
    server = server.shutdown_grace(args.shutdown_grace);
    if let Some(every) = args.keepalive {
        server = server.keepalive(every, every);
    }
    let off_if_zero = |d: Duration| (!d.is_zero()).then_some(d);
    server = server.timeouts(Timeouts {
        message: off_if_zero(args.message_timeout),
        idle: off_if_zero(args.idle_timeout),
        write: off_if_zero(args.write_timeout),
    });
    let scheme = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let cert =
                std::fs::read(cert).map_err(|e| format!("reading {}: {e}", cert.display()))?;
            let key = std::fs::read(key).map_err(|e| format!("reading {}: {e}", key.display()))?;
            server =
                server.tls(duplex::tls::server_config(&cert, &key).map_err(|e| e.to_string())?);
            "wss"
        }
        _ => "ws",
    };
    let bound = server
        .bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    println!("listening on {scheme}://{}", bound.local_addr());
    let _ = std::io::stdout().flush();
    tokio::spawn(crate::memory_release::watch(bound.handle()));
    let handle = bound.handle();
    tokio::spawn(async move {
        wait_for_signal().await;
        handle.shutdown();
    });
    bound.serve().await.map_err(|e| e.to_string())
}

/// `GET /presence/<room>`: who is in the room on every node, as JSON
/// (`partial` when Redis could not be asked). Async: the other nodes'
/// part is one Redis read, awaited on this request's own task.
fn presence_json(
    rooms: Arc<Rooms>,
    room: &str,
) -> impl std::future::Future<Output = HttpResponse> + Send + 'static {
    let room = room.to_string();
    async move {
        let everywhere = rooms.presence_everywhere(&room).await;
        HttpResponse::json(200, everywhere.to_json(&room)).with_header("Cache-Control", "no-store")
    }
}

/// The Redis backplane of `--redis`, if given.
fn start_backplane(args: &ServeArgs) -> Result<Option<Arc<RedisBackplane>>, String> {
    if args.redis.is_empty() {
        return Ok(None);
    }
    let mut options = if args.redis_cluster || args.redis.len() > 1 {
        RedisOptions::cluster(args.redis.iter().cloned())
    } else {
        RedisOptions::new(args.redis[0].clone())
    }
    .prefix(args.redis_prefix.clone())
    .history(args.history)
    .presence_ttl(args.presence_ttl);
    if let Some(node_id) = &args.node_id {
        options = options.node_id(node_id.clone());
    }
    if let Some(ca) = &args.redis_ca {
        let pem = std::fs::read(ca).map_err(|e| format!("reading {}: {e}", ca.display()))?;
        options = options.ca_pem(pem);
    }
    RedisBackplane::start(options)
        .map(Some)
        .map_err(|e| format!("--redis: {e}"))
}

/// Echoes every data message back unchanged, batching replies to messages
/// that arrived together into one write. The rest of a batch is lent from
/// the read buffer rather than received as owned messages.
async fn echo(mut ws: ServerSocket) {
    while let Some(Ok(message)) = ws.recv().await {
        let mut next = Some(message);
        while let Some(message) = next {
            if message.is_data() && ws.feed(message).is_err() {
                return;
            }
            let lent = ws.lend_buffered(|message, outbox| {
                // Fails only once closing, which the next recv reports.
                let _ = outbox.send(message);
            });
            if lent.is_err() {
                break;
            }
            next = match ws.try_recv_buffered() {
                Some(Ok(message)) => Some(message),
                Some(Err(_)) => break,
                None => None,
            };
        }
        if ws.flush().await.is_err() {
            break;
        }
    }
}

/// A number of seconds (fractions allowed), refused with a clear message
/// when negative, not a number or too large.
fn seconds(arg: &str) -> Result<Duration, String> {
    let secs: f64 = arg
        .parse()
        .map_err(|_| format!("{arg:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs)
        .map_err(|_| format!("{arg:?} is not a number of seconds from 0 up"))
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the process is stopped the default way.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

//! `duplex serve`: the chat page, `/echo`, `/chat/<room>` and `/healthz`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use duplex::Relay;
use duplex::{Config, HttpResponse, Server, ServerSocket};

/// The chat page, embedded at build time.
const CHAT_PAGE: &str = include_str!("page/chat.html");

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
    /// Ping clients after this many seconds of silence and drop those that
    /// do not answer within as many seconds again.
    #[arg(long)]
    keepalive: Option<f64>,
    /// Worker threads (default: the cores this process may use; 1 runs a
    /// single-threaded runtime).
    #[arg(long)]
    threads: Option<usize>,
    /// The most simultaneous connections; more get HTTP 503 (default: the
    /// open-file limit less a reserve of 5%, at least 16).
    #[arg(long)]
    max_connections: Option<usize>,
    /// Largest message accepted, in bytes.
    #[arg(long, default_value_t = 64 << 20)]
    max_message_size: usize,
    /// Seconds a shutdown (SIGINT, SIGTERM) gives clients to take what is
    /// queued for them and answer the close 1001; what is still unsent
    /// then is dropped and counted in one warning.
    #[arg(long, default_value_t = 3.0)]
    shutdown_grace: f64,
}

impl ServeArgs {
    /// How many runtime threads to use.
    pub fn threads(&self) -> usize {
        self.threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1)
    }
}

pub async fn run(args: ServeArgs) -> Result<(), String> {
    let mut config = Config {
        max_message_size: args.max_message_size,
        max_frame_size: args.max_message_size,
        ..Config::default()
    };
    if args.no_compression {
        config.deflate = None;
    }
    let mut server = Server::new()
        .config(config)
        // The request is not needed: drop it before the connection's
        // long-lived future is built.
        .route("/echo", |ws, _request| echo(ws))
        .handler("/chat/{room}", Relay::for_request)
        .http("/healthz", |_| HttpResponse::text(200, "ok"))
        .http("/", |_| HttpResponse::html(CHAT_PAGE));
    if let Some(max) = args.max_connections {
        server = server.max_connections(max);
    }
    let grace = std::time::Duration::try_from_secs_f64(args.shutdown_grace).map_err(|_| {
        format!(
            "--shutdown-grace {}: not a number of seconds",
            args.shutdown_grace
        )
    })?;
    server = server.shutdown_grace(grace);
    if let Some(secs) = args.keepalive {
        let every = std::time::Duration::from_secs_f64(secs);
        server = server.keepalive(every, every);
    }
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
    let handle = bound.handle();
    tokio::spawn(async move {
        wait_for_signal().await;
        handle.shutdown();
    });
    bound.serve().await.map_err(|e| e.to_string())
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

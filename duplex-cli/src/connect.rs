//! `duplex connect URL`: stdin lines out as text messages, received
//! messages printed; `--echo` sends every message straight back.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use std::time::Duration;

use duplex::reconnect::{ClientEvent, ReconnectPolicy, ReconnectingClient};
use duplex::{ClientBuilder, CloseCode, Config, Error, Message};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Options of `duplex connect`.
#[derive(Args)]
pub struct ConnectArgs {
    /// ws:// or wss:// URL.
    url: String,
    /// Send every received message back (same type) instead of reading stdin.
    #[arg(long)]
    echo: bool,
    /// Extra request header, `Name: value` (repeatable).
    #[arg(long = "header", short = 'H')]
    headers: Vec<String>,
    /// Subprotocol to offer (repeatable).
    #[arg(long = "protocol")]
    protocols: Vec<String>,
    /// Extra trusted root certificate (PEM) for wss://.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Accept any TLS certificate (testing only: no protection at all).
    #[arg(long)]
    insecure: bool,
    /// Do not offer permessage-deflate.
    #[arg(long)]
    no_compression: bool,
    /// Connect timeout in seconds.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Reconnect with exponential backoff when the connection drops;
    /// lines typed meanwhile are queued and sent after the reconnect, and
    /// each line is sent again until the server confirms it (so a line may
    /// arrive twice, but none is lost).
    #[arg(long)]
    reconnect: bool,
    /// With --reconnect: give up after this many failed attempts in a row.
    #[arg(long)]
    max_attempts: Option<u32>,
    /// With --reconnect: the longest wait between attempts, in seconds.
    #[arg(long, default_value_t = 5.0)]
    max_backoff: f64,
    /// With --reconnect: at the end of stdin, keep trying this many
    /// seconds to deliver the lines the server has not confirmed.
    #[arg(long, default_value_t = 5.0)]
    close_grace: f64,
    /// Ping the server this many seconds after connecting and after each
    /// answer, and give up when its pong does not arrive within as many
    /// seconds again.
    #[arg(long)]
    keepalive: Option<f64>,
    #[command(flatten)]
    proxy: crate::proxy_args::ProxyArgs,
}

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

/// `--reconnect`: the same contract on top of the reconnecting client.
/// Lines wait for room in its queue (reading stdin pauses meanwhile), so
/// none is refused.
async fn reconnecting(mut client: ReconnectingClient, echo: bool) -> Result<(), String> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = !echo;
    let mut out = std::io::stdout();
    loop {
        tokio::select! {
            line = lines.next_line(), if stdin_open => match line {
                Ok(Some(line)) => {
                    if let Err(e) = client.send_when_room(Message::text(line)).await {
                        eprintln!("duplex: message not queued: {e}");
                    }
                }
                Ok(None) | Err(_) => {
                    stdin_open = false;
                    client.close();
                }
            },
            event = client.next_event() => match event {
                Some(ClientEvent::Message(message)) => {
                    if echo {
                        if let Err(e) = client.send(message) {
                            eprintln!("duplex: echo not queued: {e}");
                        }
                    } else {
                        print_message(&mut out, &message);
                    }
                }
                Some(ClientEvent::Connected { .. }) => eprintln!("duplex: connected"),
                Some(ClientEvent::Disconnected { code, error }) => match error {
                    Some(error) => eprintln!("duplex: disconnected ({code}): {error}"),
                    None => eprintln!("duplex: disconnected ({code})"),
                },
                Some(ClientEvent::ConnectFailed { error }) => eprintln!("duplex: connect failed: {error}"),
                Some(ClientEvent::Reconnecting { attempt, delay }) => {
                    eprintln!("duplex: reconnecting (attempt {attempt}) in {} ms", delay.as_millis());
                }
                Some(ClientEvent::Stopped { undelivered, gave_up }) => {
                    return match (undelivered.len(), gave_up) {
                        (0, false) => Ok(()),
                        (n, true) => Err(format!("gave up reconnecting; {n} message(s) not delivered")),
                        (n, false) => Err(format!("{n} message(s) not delivered")),
                    };
                }
                None => return Ok(()),
            },
        }
    }
}

fn print_message(out: &mut std::io::Stdout, message: &Message) {
    match message {
        Message::Text(text) => {
            let _ = writeln!(out, "{text}");
        }
        Message::Binary(data) => {
            let _ = writeln!(out, "<binary {} bytes: {}>", data.len(), hex_preview(data));
        }
        _ => return,
    }
    let _ = out.flush();
}

fn describe(url: &str, error: Error) -> String {
    match error {
        Error::Handshake(e) => match e.status() {
            Some(status) => format!("{url}: handshake rejected: HTTP {status} ({})", e.message()),
            None => format!("{url}: handshake failed: {}", e.message()),
        },
        Error::Io(e) => format!("{url}: {e}"),
        other => format!("{url}: {other}"),
    }
}

async fn echo(mut ws: duplex::ClientSocket) -> Result<(), String> {
    while let Some(item) = ws.recv().await {
        match item {
            Ok(message) if message.is_data() => {
                if ws.send(message).await.is_err() {
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    finish(&ws)
}

async fn interactive(ws: duplex::ClientSocket) -> Result<(), String> {
    let (mut reader, mut writer) = ws.split();
    let printer = tokio::spawn(async move {
        let mut out = std::io::stdout();
        while let Some(item) = reader.recv().await {
            match item {
                Ok(message) => print_message(&mut out, &message),
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(reader)
    });
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut printer = printer;
    let result = loop {
        tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(line)) => {
                    if writer.send(Message::text(line)).await.is_err() {
                        break None;
                    }
                }
                Ok(None) | Err(_) => {
                    let _ = writer.close(None).await;
                    break None;
                }
            },
            done = &mut printer => break Some(done),
        }
    };
    let done = match result {
        Some(done) => done,
        None => match tokio::time::timeout(duplex::DEFAULT_CLOSE_TIMEOUT, printer).await {
            Ok(done) => done,
            Err(_) => return Err("timed out waiting for the server's close".into()),
        },
    };
    let reader = done.map_err(|e| e.to_string())??;
    let ws = duplex::WebSocket::reunite(reader, writer).ok_or("internal: halves do not match")?;
    finish(&ws)
}

/// Exit status from how the connection ended: a normal close (1000, or
/// 1001 when the server shuts down) is success.
fn finish(ws: &duplex::ClientSocket) -> Result<(), String> {
    match ws.close_code() {
        CloseCode::Normal | CloseCode::Away | CloseCode::NoStatus => Ok(()),
        CloseCode::Abnormal => Err("connection closed abnormally (no close frame)".into()),
        code => {
            let reason = ws.close_frame().map(|f| f.reason).unwrap_or_default();
            Err(format!("server closed the connection with {code} {reason}")
                .trim_end()
                .to_string())
        }
    }
}

fn hex_preview(data: &[u8]) -> String {
    let mut text: String = data.iter().take(32).map(|b| format!("{b:02x}")).collect();
    if data.len() > 32 {
        text.push('…');
    }
    text
}

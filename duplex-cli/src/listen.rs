//! `duplex listen PORT|ADDR`: a WebSocket server for testing clients, as
//! `websocat -s` offers. Accepts any number of clients on any path,
//! prints what each sends (the output formats of `duplex connect`; with
//! `--jsonl` each object has `client`, the client's number), sends every
//! stdin line to all connected clients, and at the end of stdin closes
//! every client with 1000, waits for their close frames (at most the close
//! timeout) and exits 0.
//!
//! stdout carries only messages; the `listening on ws://HOST:PORT` line
//! and the clients' comings and goings are on stderr.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use clap::Args;
use duplex::{Message, Server, ServerSocket, UpgradeRequest};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{mpsc, Notify};

use crate::connect::formats::{InputArgs, OutputArgs};
use crate::connect::output::Printer;

/// Options of `duplex listen`.
#[derive(Args)]
pub struct ListenArgs {
    /// PORT (on 127.0.0.1; 0 picks a free one) or ADDR:PORT.
    addr: String,
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    output: OutputArgs,
}

/// What the stdin reader asks of one client's task.
enum Order {
    Send(Message),
    Close,
}

/// The connected clients, by number.
#[derive(Default)]
struct Clients {
    senders: Mutex<HashMap<u64, mpsc::UnboundedSender<Order>>>,
    next: AtomicU64,
    /// Woken when a client leaves.
    left: Notify,
}

impl Clients {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, mpsc::UnboundedSender<Order>>> {
        self.senders.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn broadcast(&self, message: &Message) -> usize {
        let senders = self.lock();
        for sender in senders.values() {
            let _ = sender.send(Order::Send(message.clone()));
        }
        senders.len()
    }
}

/// Runs `duplex listen`.
pub async fn run(args: ListenArgs) -> Result<(), String> {
    let addr = if args.addr.parse::<u16>().is_ok() {
        format!("127.0.0.1:{}", args.addr)
    } else {
        args.addr.clone()
    };
    let clients = Arc::new(Clients::default());
    let printer = Printer::new(args.output);
    let server = Server::new().route("/*", {
        let clients = clients.clone();
        move |ws, req| serve_client(ws, req, clients.clone(), printer)
    });
    let bound = server
        .bind(addr.as_str())
        .await
        .map_err(|e| format!("listening on {addr}: {e}"))?;
    eprintln!("listening on ws://{}", bound.local_addr());
    let handle = bound.handle();
    let serving = tokio::spawn(bound.serve());

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        match args.input.message(line) {
            Ok(message) => {
                if clients.broadcast(&message) == 0 {
                    eprintln!("duplex: no client connected; line not sent");
                }
            }
            Err(why) => eprintln!("duplex: line not sent: {why}"),
        }
    }
    for sender in clients.lock().values() {
        let _ = sender.send(Order::Close);
    }
    let all_left = async {
        loop {
            let notified = clients.left.notified();
            if clients.lock().is_empty() {
                break;
            }
            notified.await;
        }
    };
    let waited = tokio::time::timeout(
        duplex::DEFAULT_CLOSE_TIMEOUT + std::time::Duration::from_secs(1),
        all_left,
    )
    .await;
    handle.shutdown();
    let _ = serving.await;
    match waited {
        Ok(()) => Ok(()),
        Err(_) => Err("some clients did not answer the close in time".into()),
    }
}

/// One client: prints what it sends, sends what stdin gives.
async fn serve_client(
    mut ws: ServerSocket,
    req: UpgradeRequest,
    clients: Arc<Clients>,
    printer: Printer,
) {
    let id = clients.next.fetch_add(1, Ordering::Relaxed) + 1;
    let (tx, mut orders) = mpsc::unbounded_channel();
    clients.lock().insert(id, tx);
    let peer = req
        .remote_addr()
        .map_or_else(|| "?".to_string(), |a| a.to_string());
    eprintln!("duplex: client {id} connected from {peer} ({})", req.path());
    loop {
        tokio::select! {
            item = ws.recv() => match item {
                Some(Ok(message)) => printer.print(&message, Some(id)),
                Some(Err(e)) => {
                    eprintln!("duplex: client {id}: {e}");
                    break;
                }
                None => break,
            },
            order = orders.recv() => match order {
                Some(Order::Send(message)) => {
                    if ws.send(message).await.is_err() {
                        break;
                    }
                }
                Some(Order::Close) | None => {
                    let _ = ws.close(None).await;
                    break;
                }
            },
        }
    }
    eprintln!("duplex: client {id} disconnected ({})", ws.close_code());
    clients.lock().remove(&id);
    clients.left.notify_waiters();
}

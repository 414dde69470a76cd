//! `duplex bench URL`: N connections ping-ponging messages against an echo
//! server, with a progress bar and a latency report; `--fanout` hands over
//! to the fan-out mode ([`fanout`]); both share the options ([`args`]) and
//! helpers ([`common`]).
//!
//! Each connection keeps `--inflight` messages outstanding and sends the
//! next one as each echo arrives (a closed loop), checking every echo's
//! type, length and content. Figures count only the window after the
//! warm-up.

mod args;
mod common;
mod fanout;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use duplex::{Message, Utf8Bytes};
use hdrhistogram::Histogram;

pub(crate) use args::{BenchArgs, FANOUT_HELP};
use common::{latency_histogram, open_all, progress_bar, FirstError, Percentiles};

/// Error counters, by kind.
#[derive(Default)]
struct Errors {
    connect: AtomicU64,
    mismatch: AtomicU64,
    closed: AtomicU64,
    protocol: AtomicU64,
}

impl Errors {
    fn total(&self) -> u64 {
        self.connect.load(Ordering::Relaxed)
            + self.mismatch.load(Ordering::Relaxed)
            + self.closed.load(Ordering::Relaxed)
            + self.protocol.load(Ordering::Relaxed)
    }
}

struct Shared {
    measuring: AtomicBool,
    stop: AtomicBool,
    /// Echoes completed inside the measured window.
    echoes: AtomicU64,
    /// Echoes completed since the start (for the progress bar).
    progress: AtomicU64,
    errors: Errors,
    histogram: Mutex<Histogram<u64>>,
    first_error: FirstError,
}

impl Shared {
    fn note_error(&self, counter: &AtomicU64, what: String) {
        counter.fetch_add(1, Ordering::Relaxed);
        self.first_error.note(what);
    }
}

/// A payload of `size` bytes: printable ASCII for text (and compression),
/// every byte value for binary.
fn payload(size: usize, text: bool) -> Message {
    if text {
        let body: String = (0..size).map(|i| (b'a' + (i % 26) as u8) as char).collect();
        Message::Text(Utf8Bytes::from(body))
    } else {
        Message::Binary(Bytes::from(
            (0..size).map(|i| (i % 251) as u8).collect::<Vec<u8>>(),
        ))
    }
}

pub async fn run(args: BenchArgs) -> Result<(), String> {
    if args.fanout {
        return fanout::run(&args).await;
    }
    if args.urls.len() != 1 {
        return Err("the echo bench takes one URL (several are for --fanout)".into());
    }
    if args.connections == 0 || args.inflight == 0 {
        return Err("--connections and --inflight must be at least 1".into());
    }
    let (warmup, measured) = args.phases()?;
    let histogram = latency_histogram();
    let shared = Arc::new(Shared {
        measuring: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        echoes: AtomicU64::new(0),
        progress: AtomicU64::new(0),
        errors: Errors::default(),
        histogram: Mutex::new(histogram),
        first_error: FirstError::default(),
    });
    let builder = args.client(&args.urls[0])?;
    let message = payload(args.size, args.text);

    // Open every connection first, then start.
    let mut sockets = Vec::with_capacity(args.connections);
    for opened in open_all(vec![builder; args.connections]).await {
        match opened {
            Ok(ws) => sockets.push(ws),
            Err(e) => shared.note_error(&shared.errors.connect, e),
        }
    }
    if sockets.is_empty() {
        let first = shared.first_error.get();
        return Err(first.unwrap_or_else(|| "no connection could be opened".into()));
    }
    let connected = sockets.len();
    let compressed = sockets.iter().filter(|ws| ws.is_compressed()).count();
    let workers: Vec<_> = sockets
        .into_iter()
        .map(|ws| tokio::spawn(drive(ws, message.clone(), args.inflight, shared.clone())))
        .collect();

    let bar = progress_bar(args.quiet || args.json, args.warmup + args.duration)?;
    let start = Instant::now();
    let total = warmup + measured;
    let mut last = (Instant::now(), 0u64);
    let mut measure_start = start;
    while start.elapsed() < total {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if !shared.measuring.load(Ordering::Relaxed) && start.elapsed() >= warmup {
            measure_start = Instant::now();
            shared.measuring.store(true, Ordering::Relaxed);
        }
        let done = shared.progress.load(Ordering::Relaxed);
        let rate = (done - last.1) as f64 / last.0.elapsed().as_secs_f64();
        last = (Instant::now(), done);
        let phase = if shared.measuring.load(Ordering::Relaxed) {
            "measuring"
        } else {
            "warming up"
        };
        bar.set_position((start.elapsed().as_secs_f64() * 10.0) as u64);
        bar.set_message(format!(
            "{phase}: {:.0} msg/s, errors {}",
            rate,
            shared.errors.total()
        ));
    }
    shared.measuring.store(false, Ordering::Relaxed);
    let elapsed = measure_start.elapsed().as_secs_f64();
    shared.stop.store(true, Ordering::Relaxed);
    bar.finish_and_clear();
    for worker in workers {
        let _ = tokio::time::timeout(Duration::from_secs(5), worker).await;
    }
    report(&args, &shared, connected, compressed, elapsed);
    if shared.errors.mismatch.load(Ordering::Relaxed) > 0 {
        let first = shared.first_error.get();
        return Err(format!(
            "{} does not echo: {}",
            args.urls[0],
            first.unwrap_or_default()
        ));
    }
    if shared.progress.load(Ordering::Relaxed) == 0 {
        return Err(format!(
            "nothing came back from {} in {:.1} s: is it an echo endpoint?",
            args.urls[0],
            warmup.as_secs_f64() + elapsed
        ));
    }
    if shared.echoes.load(Ordering::Relaxed) == 0 {
        return Err("no echo completed inside the measured window".into());
    }
    if shared.errors.total() > 0 {
        let first = shared.first_error.get();
        return Err(format!(
            "the run had {} error(s); first: {}",
            shared.errors.total(),
            first.unwrap_or_default()
        ));
    }
    Ok(())
}

/// One connection's closed loop.
async fn drive(
    mut ws: duplex::ClientSocket,
    message: Message,
    inflight: usize,
    shared: Arc<Shared>,
) {
    let mut sent: VecDeque<Instant> = VecDeque::with_capacity(inflight);
    let mut local = latency_histogram();
    let mut local_echoes = 0u64;
    for _ in 0..inflight {
        if ws.feed(message.clone()).is_err() {
            break;
        }
        sent.push_back(Instant::now());
    }
    if let Err(e) = ws.flush().await {
        shared.note_error(&shared.errors.closed, format!("send: {e}"));
        return;
    }
    while !shared.stop.load(Ordering::Relaxed) {
        let received = match tokio::time::timeout(Duration::from_millis(200), ws.recv()).await {
            Err(_) => continue,
            Ok(None) => {
                shared.note_error(
                    &shared.errors.closed,
                    format!("server closed the connection ({})", ws.close_code()),
                );
                break;
            }
            Ok(Some(Err(e))) => {
                shared.note_error(&shared.errors.protocol, e.to_string());
                break;
            }
            Ok(Some(Ok(received))) => received,
        };
        if !received.is_data() {
            continue;
        }
        let Some(sent_at) = sent.pop_front() else {
            shared.note_error(
                &shared.errors.mismatch,
                "an echo arrived with nothing in flight".into(),
            );
            break;
        };
        if received != message {
            shared.note_error(
                &shared.errors.mismatch,
                format!(
                    "echo differs: {} bytes back for {} sent",
                    received.len(),
                    message.len()
                ),
            );
            break;
        }
        shared.progress.fetch_add(1, Ordering::Relaxed);
        if shared.measuring.load(Ordering::Relaxed) {
            let _ = local.record(sent_at.elapsed().as_micros().max(1) as u64);
            local_echoes += 1;
        }
        if ws.feed(message.clone()).is_err() {
            break;
        }
        sent.push_back(Instant::now());
        if let Err(e) = ws.flush().await {
            shared.note_error(&shared.errors.closed, format!("send: {e}"));
            break;
        }
    }
    shared.echoes.fetch_add(local_echoes, Ordering::Relaxed);
    let _ = shared
        .histogram
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .add(&local);
    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
}

/// Prints the report; `compressed` connections negotiated permessage-deflate.
fn report(args: &BenchArgs, shared: &Shared, connected: usize, compressed: usize, elapsed: f64) {
    let h = shared.histogram.lock().unwrap_or_else(|p| p.into_inner());
    let echoes = shared.echoes.load(Ordering::Relaxed);
    let rate = echoes as f64 / elapsed.max(1e-9);
    let mb = rate * args.size as f64 / 1e6;
    let latency = Percentiles::of(&h);
    let url = &args.urls[0];
    let e = &shared.errors;
    let (connect, mismatch, closed, protocol) = (
        e.connect.load(Ordering::Relaxed),
        e.mismatch.load(Ordering::Relaxed),
        e.closed.load(Ordering::Relaxed),
        e.protocol.load(Ordering::Relaxed),
    );
    let status = if e.total() == 0 && echoes > 0 {
        "OK"
    } else {
        "ERRORS"
    };
    if args.json {
        println!(
            "{{\"url\":{:?},\"status\":\"{status}\",\"connections\":{connected},\"size\":{},\"inflight\":{},\"text\":{},\"compress\":{},\"compression_negotiated\":{compressed},\
             \"seconds\":{elapsed:.3},\"messages\":{echoes},\"msgs_per_s\":{rate:.1},\"MB_per_s\":{mb:.3},\
             \"latency_us\":{},\
             \"errors\":{{\"connect\":{connect},\"mismatch\":{mismatch},\"closed\":{closed},\"protocol\":{protocol}}}}}",
            url,
            args.size,
            args.inflight,
            args.text,
            args.compress,
            latency.json(),
        );
        return;
    }
    println!("duplex bench {url}");
    println!(
        "  {connected} connections x {} B {} ({} in flight each){}, {elapsed:.1} s measured",
        args.size,
        if args.text { "text" } else { "binary" },
        args.inflight,
        match (args.compress, compressed) {
            (false, _) => String::new(),
            (true, 0) => ", compression offered but NOT negotiated".to_string(),
            (true, n) if n == connected => ", permessage-deflate negotiated".to_string(),
            (true, n) => format!(", permessage-deflate negotiated on {n} of {connected}"),
        }
    );
    println!("  messages/s   {rate:>12.0}");
    println!("  MB/s         {mb:>12.2}");
    println!("  latency µs   {latency}");
    if e.total() == 0 && echoes == 0 {
        println!("  ERRORS       no echo came back");
    } else if e.total() == 0 {
        println!("  errors       none");
    } else {
        println!(
            "  ERRORS       connect {connect}, mismatch {mismatch}, closed {closed}, protocol {protocol} — figures above come from a run with errors"
        );
    }
}

//! What the echo and the fan-out modes share: the latency histogram and
//! its figures, the progress bar, and opening the connections.

use std::sync::{Arc, Mutex};

use duplex::{ClientBuilder, ClientSocket};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::Semaphore;

/// The first error of a run, kept word for word for its report; later
/// ones are only counted (by the caller).
#[derive(Default)]
pub(crate) struct FirstError(Mutex<Option<String>>);

impl FirstError {
    /// Keeps `what` if no error came before it.
    pub(crate) fn note(&self, what: String) {
        let mut first = self.0.lock().unwrap_or_else(|p| p.into_inner());
        first.get_or_insert(what);
    }

    /// The first error, if any.
    pub(crate) fn get(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// A latency histogram in µs: 1 µs to 60 s, three significant digits.
pub(crate) fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// The latency figures every bench report gives, in µs.
pub(crate) struct Percentiles {
    p50: u64,
    p90: u64,
    p99: u64,
    p99_9: u64,
    max: u64,
    mean: f64,
}

impl Percentiles {
    /// The figures of `h`.
    pub(crate) fn of(h: &Histogram<u64>) -> Percentiles {
        let q = |p: f64| h.value_at_quantile(p);
        Percentiles {
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p99_9: q(0.999),
            max: h.max(),
            mean: (h.mean() * 10.0).round() / 10.0,
        }
    }

    /// The `latency_us` object of the JSON reports.
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "p50": self.p50,
            "p90": self.p90,
            "p99": self.p99,
            "p99_9": self.p99_9,
            "max": self.max,
            "mean": self.mean,
        })
    }
}

/// The latency line of the text reports.
impl std::fmt::Display for Percentiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
            self.p50, self.p90, self.p99, self.p99_9, self.max
        )
    }
}

/// The progress bar of a run of `seconds` (hidden with `hidden`), in
/// tenths of a second; callers set its position and message.
pub(crate) fn progress_bar(hidden: bool, seconds: f64) -> Result<ProgressBar, String> {
    if hidden {
        return Ok(ProgressBar::hidden());
    }
    let bar = ProgressBar::new((seconds * 10.0).ceil() as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:30}] {elapsed_precise} {msg}")
            .map_err(|e| e.to_string())?
            .progress_chars("=> "),
    );
    Ok(bar)
}

/// Opens a connection with each builder, 64 handshakes at a time; the
/// results are in the builders' order.
pub(crate) async fn open_all(builders: Vec<ClientBuilder>) -> Vec<Result<ClientSocket, String>> {
    let limit = Arc::new(Semaphore::new(64));
    let opening: Vec<_> = builders
        .into_iter()
        .map(|builder| {
            let limit = limit.clone();
            tokio::spawn(async move {
                let _permit = limit.acquire().await;
                builder.connect().await
            })
        })
        .collect();
    let mut sockets = Vec::with_capacity(opening.len());
    for task in opening {
        sockets.push(match task.await {
            Ok(Ok(ws)) => Ok(ws),
            Ok(Err(e)) => Err(format!("connect: {e}")),
            Err(e) => Err(format!("connect task: {e}")),
        });
    }
    sockets
}

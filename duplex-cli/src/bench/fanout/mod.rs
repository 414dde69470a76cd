//! `duplex bench --fanout URL...`: rooms of members publishing to each
//! other through a relay (`duplex serve`'s `/chat/<room>`, on one node or
//! several), every delivery checked.
//!
//! Member `k` of room `r` connects to URL `(r + k) mod U` (U URLs: the
//! nodes of a cluster), with the room's name put into the URL. The first
//! `--publishers` members of each room also publish, open loop: their
//! messages are paced by the clock at `--rate` publishes/s in all, not by
//! the deliveries. Before publishing, the first member on each URL of each
//! room (its prober) sends a probe until every member of the room has
//! heard from every prober: then every member has joined on every node,
//! and no publish races a join. Each message carries its sender, a
//! sequence number and the send time ([`wire`]); each member checks every
//! delivery ([`tally`]); the report adds them up ([`report`]).

mod member;
mod report;
mod tally;
mod wire;

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::watch;

use super::args::{seconds, BenchArgs};
use super::common::{latency_histogram, open_all, progress_bar, FirstError};
use tally::Counts;
use wire::Wire;

/// What every member knows about the run, fixed before it starts.
pub struct Plan {
    rooms: usize,
    members: usize,
    /// Publishers per room: members `0..publishers` of each room.
    publishers: usize,
    /// Probers per room: members `0..probers` (one per URL).
    probers: usize,
    /// Whether the probers probe (not with `--settle`).
    probe: bool,
    /// Publishes per second of one publisher.
    rate_each: f64,
    /// How long the publishers publish: the warm-up and the measured time.
    warmup: Duration,
    measured: Duration,
    /// The sequence numbers a publisher can reach; above is foreign.
    max_seq: u32,
    /// The bench's clock: every timestamp is nanoseconds since this.
    base: Instant,
    wire: Wire,
}

impl Plan {
    /// Nanoseconds on the bench's clock.
    fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    /// The time a publisher publishes.
    fn publishing(&self) -> Duration {
        self.warmup + self.measured
    }

    /// The measured window on the bench's clock, for publishing from `t0`.
    fn window(&self, t0: Instant) -> (u64, u64) {
        let from = (t0 + self.warmup).saturating_duration_since(self.base);
        let to = from + self.measured;
        (from.as_nanos() as u64, to.as_nanos() as u64)
    }
}

/// The stage of the run, told to every member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Probers probe; nobody publishes.
    Joining,
    /// Publishers publish on their schedule, which starts at `t0`.
    Publishing {
        /// The start of every publisher's schedule.
        t0: Instant,
    },
    /// Members close their connections and hand in their counts.
    Closing,
}

/// Counters the members update as they go, for the progress bar and for
/// knowing when every delivery is in.
#[derive(Default)]
pub struct Live {
    /// Distinct deliveries so far.
    delivered: AtomicU64,
    /// (member, prober) pairs where the member heard the prober.
    joined: AtomicU64,
    /// Violations so far (duplicates, reordering, echoes, strays).
    violations: AtomicU64,
    /// Publishes sent so far.
    published: AtomicU64,
    /// Publishers past their last publish (or gone).
    publishers_done: AtomicU64,
    /// The furthest a publisher fell behind its schedule, in µs.
    max_lag_us: AtomicU64,
    /// Own echoes so far (shown when the join fails).
    own_echoes: AtomicU64,
    /// The latencies of the measured window, in µs.
    histogram: Mutex<Option<Histogram<u64>>>,
    /// The first disconnect's reason.
    first_error: FirstError,
}

impl Live {
    /// Keeps the first disconnect's reason.
    fn note_error(&self, what: String) {
        self.first_error.note(what);
    }

    /// Adds latencies (µs) to the run's histogram.
    fn record(&self, samples: &[u64]) {
        let mut h = self.histogram.lock().unwrap_or_else(|p| p.into_inner());
        let h = h.get_or_insert_with(latency_histogram);
        for &us in samples {
            h.saturating_record(us);
        }
    }
}

/// How the members were known to have joined, and how long it took.
pub struct Joined {
    method: &'static str,
    seconds: f64,
}

/// The name of room `r`'s URL from a URL template.
fn room_url(template: &str, room: &str) -> String {
    if template.contains("{room}") {
        template.replace("{room}", room)
    } else if template.ends_with('/') {
        format!("{template}{room}")
    } else {
        template.to_string()
    }
}

/// A random id for this run (std's hasher keys are random per process).
fn run_id() -> u32 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.finish() as u32
}

/// Runs the fan-out bench.
pub async fn run(args: &BenchArgs) -> Result<(), String> {
    let fan = &args.fan;
    let (warmup, measured) = args.phases()?;
    let drain = seconds("--drain", fan.drain)?;
    let join_timeout = seconds("--join-timeout", fan.join_timeout)?;
    let settle = fan.settle.map(|s| seconds("--settle", s)).transpose()?;
    if fan.rooms == 0 || fan.members < 2 {
        return Err("--fanout needs at least 1 room of at least 2 members".into());
    }
    if fan.publishers == 0 || fan.publishers > fan.members {
        return Err("--publishers must be between 1 and --members".into());
    }
    if args.size < wire::HEADER {
        return Err(format!(
            "--size {} is below the {} B header of a fan-out message",
            args.size,
            wire::HEADER
        ));
    }
    let members = fan.rooms * fan.members;
    let rate_each = fan.rate / (fan.rooms * fan.publishers) as f64;
    let per_publisher = (rate_each * (warmup + measured).as_secs_f64()).ceil() + 1.0;
    if per_publisher > f64::from(u32::MAX / 2) || members > (u32::MAX / 2) as usize {
        return Err("the run is too long or too large for the message format".into());
    }
    let plan = Arc::new(Plan {
        rooms: fan.rooms,
        members: fan.members,
        publishers: fan.publishers,
        probers: fan.members.min(args.urls.len()),
        probe: settle.is_none(),
        rate_each,
        warmup,
        measured,
        max_seq: per_publisher as u32,
        base: Instant::now(),
        wire: Wire::new(run_id(), args.size),
    });
    let live = Arc::new(Live::default());
    let bar = progress_bar(args.quiet || args.json, (warmup + measured).as_secs_f64())?;

    // Connect every member, then start them all.
    bar.set_message(format!("connecting {members} members"));
    let builders = (0..members)
        .map(|m| {
            let (room, k) = (m / fan.members, m % fan.members);
            let template = &args.urls[(room + k) % args.urls.len()];
            args.client(&room_url(template, &format!("{}{room}", fan.room_prefix)))
        })
        .collect::<Result<_, _>>()?;
    let mut sockets = Vec::with_capacity(members);
    let mut failed = Vec::new();
    for opened in open_all(builders).await {
        match opened {
            Ok(ws) => sockets.push(ws),
            Err(e) => failed.push(e),
        }
    }
    if let Some(first) = failed.first() {
        return Err(format!(
            "{} of {members} members could not connect; first: {first}",
            failed.len()
        ));
    }
    let (phase, watching) = watch::channel(Phase::Joining);
    let tasks: Vec<_> = sockets
        .into_iter()
        .enumerate()
        .map(|(me, ws)| {
            let member = member::Member::new(me, plan.clone(), live.clone());
            tokio::spawn(member.run(ws, watching.clone()))
        })
        .collect();

    // Make sure every member has joined before anyone publishes.
    bar.set_message("joining");
    let joined = match settle {
        Some(wait) => {
            tokio::time::sleep(wait).await;
            Joined {
                method: "settle",
                seconds: wait.as_secs_f64(),
            }
        }
        None => {
            let start = Instant::now();
            let pairs = (plan.rooms * plan.probers * (plan.members - 1)) as u64;
            while live.joined.load(Ordering::Relaxed) < pairs {
                if start.elapsed() >= join_timeout {
                    phase.send_replace(Phase::Closing);
                    return Err(join_failure(&live, pairs, join_timeout));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Joined {
                method: "probe",
                seconds: start.elapsed().as_secs_f64(),
            }
        }
    };

    // Publish, showing the rates as they go.
    let t0 = Instant::now() + Duration::from_millis(10);
    phase.send_replace(Phase::Publishing { t0 });
    let end = t0 + plan.publishing();
    let mut last = (Instant::now(), 0u64, 0u64);
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (published, delivered) = (
            live.published.load(Ordering::Relaxed),
            live.delivered.load(Ordering::Relaxed),
        );
        let span = last.0.elapsed().as_secs_f64().max(1e-9);
        let stage = if Instant::now() < t0 + warmup {
            "warming up"
        } else {
            "measuring"
        };
        bar.set_position((t0.elapsed().as_secs_f64() * 10.0) as u64);
        bar.set_message(format!(
            "{stage}: {:.0} publishes/s, {:.0} deliveries/s, violations {}",
            (published - last.1) as f64 / span,
            (delivered - last.2) as f64 / span,
            live.violations.load(Ordering::Relaxed)
        ));
        last = (Instant::now(), published, delivered);
    }

    // Wait for the last publishes, then for their deliveries.
    bar.set_message("draining");
    let deadline = end + drain;
    let publishers = (plan.rooms * plan.publishers) as u64;
    while live.publishers_done.load(Ordering::Relaxed) < publishers && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let expected = live.published.load(Ordering::Relaxed) * (plan.members as u64 - 1);
    while live.delivered.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    phase.send_replace(Phase::Closing);
    bar.finish_and_clear();

    let mut counts = Counts::default();
    for task in tasks {
        match tokio::time::timeout(Duration::from_secs(10), task).await {
            Ok(Ok(member)) => counts += member,
            Ok(Err(e)) => live.note_error(format!("member task: {e}")),
            Err(_) => live.note_error("a member did not finish closing".into()),
        }
    }
    let histogram = live
        .histogram
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
        .unwrap_or_else(latency_histogram);
    let first_error = live.first_error.get();
    let run = report::Run {
        args,
        plan: &plan,
        counts,
        histogram,
        joined,
        max_lag_us: live.max_lag_us.load(Ordering::Relaxed),
        first_error,
    };
    run.print();
    run.verdict()
}

/// The one line for members that did not all hear every prober in time.
fn join_failure(live: &Live, pairs: u64, limit: Duration) -> String {
    let echoes = live.own_echoes.load(Ordering::Relaxed);
    let hint = if echoes > 0 {
        format!(", and {echoes} probe(s) came back to their own sender: is it an echo endpoint?")
    } else {
        String::new()
    };
    format!(
        "the members did not all join within {:.1} s: {} of {pairs} (member, prober) pairs heard a probe{hint} (the URLs must relay each message to the room's other members, like /chat/<room>; --settle skips the probes)",
        limit.as_secs_f64(),
        live.joined.load(Ordering::Relaxed),
    )
}

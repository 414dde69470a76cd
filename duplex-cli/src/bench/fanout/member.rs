//! One member of a room: a connection that receives and checks every
//! delivery and, for a publisher or prober, sends on its schedule.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use duplex::{ClientSocket, Message};
use tokio::sync::watch;

use super::tally::{Counts, Outcome, Tally};
use super::wire::Header;
use super::{Live, Phase, Plan};

/// How often a prober repeats its probe while the room is joining.
const PROBE_EVERY: Duration = Duration::from_millis(100);

/// Latencies kept before they are added to the shared histogram.
const SAMPLE_BATCH: usize = 512;

/// A publisher's place in its schedule.
struct Schedule {
    /// Its share of the interval, so that the publishers take turns
    /// instead of publishing at the same instant.
    offset: f64,
    /// The sequence number of its next publish.
    next: u32,
    /// Past its last publish.
    done: bool,
}

/// A member and what it has seen.
pub struct Member {
    me: usize,
    plan: Arc<Plan>,
    live: Arc<Live>,
    tally: Tally,
    schedule: Option<Schedule>,
    /// The next probe's time and round, for a prober.
    probe: Option<(Instant, u32)>,
    /// The measured window, once publishing has started.
    window: Option<(u64, u64)>,
    samples: Vec<u64>,
}

impl Member {
    /// Member `me` (`me / members` is its room).
    pub fn new(me: usize, plan: Arc<Plan>, live: Arc<Live>) -> Member {
        let k = me % plan.members;
        let schedule = (k < plan.publishers).then(|| {
            let index = (me / plan.members) * plan.publishers + k;
            Schedule {
                offset: index as f64 / (plan.rooms * plan.publishers) as f64,
                next: 0,
                done: false,
            }
        });
        Member {
            me,
            tally: Tally::new(&plan, me),
            probe: (plan.probe && k < plan.probers).then(|| (Instant::now(), 0)),
            schedule,
            plan,
            live,
            window: None,
            samples: Vec::with_capacity(SAMPLE_BATCH),
        }
    }

    /// Runs the member on `ws` until the bench closes (or the connection
    /// ends); returns its counts.
    pub async fn run(mut self, mut ws: ClientSocket, mut phase: watch::Receiver<Phase>) -> Counts {
        let mut open = true;
        loop {
            let current = *phase.borrow_and_update();
            let wake = match current {
                Phase::Closing => break,
                Phase::Joining => self.probe.map(|(at, _)| at),
                Phase::Publishing { t0 } => {
                    self.window.get_or_insert_with(|| self.plan.window(t0));
                    self.probe = None;
                    self.next_publish(t0)
                }
            };
            let sleep = tokio::time::sleep_until(wake.unwrap_or_else(Instant::now).into());
            tokio::select! {
                biased;
                changed = phase.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
                // Before receiving: a busy inbox must not hold publishes
                // back (a late batch sends everything that is due).
                () = sleep, if wake.is_some() => {
                    if let Err(e) = self.send(&mut ws, &phase).await {
                        self.disconnected(format!("send: {e}"));
                        open = false;
                        break;
                    }
                }
                item = ws.recv() => {
                    if let Err(reason) = self.received(&mut ws, item) {
                        self.disconnected(reason);
                        open = false;
                        break;
                    }
                }
            }
        }
        self.live.record(&self.samples);
        self.finish_publishing();
        if open {
            let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
        }
        self.tally.counts
    }

    /// When the next publish is due, `None` after the last one.
    fn next_publish(&mut self, t0: Instant) -> Option<Instant> {
        let schedule = self.schedule.as_ref()?;
        if schedule.done {
            return None;
        }
        let due = t0
            + Duration::from_secs_f64(
                (f64::from(schedule.next) + schedule.offset) / self.plan.rate_each,
            );
        if due >= t0 + self.plan.publishing() {
            self.finish_publishing();
            return None;
        }
        Some(due)
    }

    /// Marks this publisher as past its last publish (once).
    fn finish_publishing(&mut self) {
        if let Some(schedule) = self.schedule.as_mut().filter(|s| !s.done) {
            schedule.done = true;
            self.live.publishers_done.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Sends what is due: a probe, or every publish due by now.
    async fn send(
        &mut self,
        ws: &mut ClientSocket,
        phase: &watch::Receiver<Phase>,
    ) -> duplex::Result<()> {
        let now = Instant::now();
        let sent_ns = self.plan.now_ns();
        let sender = self.me as u32;
        let current = *phase.borrow();
        match current {
            Phase::Joining => {
                let Some((_, round)) = self.probe else {
                    return Ok(());
                };
                self.probe = Some((now + PROBE_EVERY, round + 1));
                let header = Header {
                    sender,
                    probe: true,
                    seq: round,
                    sent_ns,
                };
                ws.send(Message::binary(self.plan.wire.encode(header)))
                    .await
            }
            Phase::Publishing { t0 } => {
                let mut sent = 0u64;
                let mut lag = Duration::ZERO;
                while let Some(due) = self.next_publish(t0).filter(|due| *due <= now) {
                    lag = lag.max(now - due);
                    let schedule = self.schedule.as_mut().expect("a publisher");
                    let header = Header {
                        sender,
                        probe: false,
                        seq: schedule.next,
                        sent_ns,
                    };
                    schedule.next += 1;
                    ws.feed(Message::binary(self.plan.wire.encode(header)))?;
                    sent += 1;
                }
                ws.flush().await?;
                let counts = &mut self.tally.counts;
                counts.published += sent;
                if self
                    .window
                    .is_some_and(|(from, to)| (from..to).contains(&sent_ns))
                {
                    counts.published_measured += sent;
                }
                self.live.published.fetch_add(sent, Ordering::Relaxed);
                let lag_us = lag.as_micros() as u64;
                self.live.max_lag_us.fetch_max(lag_us, Ordering::Relaxed);
                Ok(())
            }
            Phase::Closing => Ok(()),
        }
    }

    /// Checks a received message and every other one already buffered;
    /// `Err` with a reason when the connection is over.
    fn received(
        &mut self,
        ws: &mut ClientSocket,
        item: Option<duplex::Result<Message>>,
    ) -> Result<(), String> {
        let received_ns = self.plan.now_ns();
        let echoes = self.tally.counts.own_echoes;
        let mut batch = Batch::default();
        match item {
            None => return Err(format!("the server closed a member ({})", ws.close_code())),
            Some(Err(e)) => return Err(e.to_string()),
            Some(Ok(Message::Binary(data))) => self.take(&data, false, received_ns, &mut batch),
            Some(Ok(Message::Text(text))) => {
                self.take(text.as_bytes(), true, received_ns, &mut batch)
            }
            Some(Ok(_)) => {}
        }
        let lent = ws.lend_buffered(|message, _| {
            self.take(
                message.as_bytes(),
                message.is_text(),
                received_ns,
                &mut batch,
            )
        });
        batch.own_echoes = self.tally.counts.own_echoes - echoes;
        batch.apply(&self.live);
        lent.map(|_| ()).map_err(|e| e.to_string())
    }

    /// Checks one message, noting what the shared counters must learn.
    fn take(&mut self, data: &[u8], text: bool, received_ns: u64, batch: &mut Batch) {
        let outcome = self.tally.take(
            &self.plan,
            &self.plan.wire,
            data,
            text,
            received_ns,
            self.window,
        );
        match outcome {
            Outcome::Delivered { latency, late } => {
                batch.delivered += 1;
                batch.violations += u64::from(late);
                if let Some(us) = latency {
                    self.samples.push(us);
                    if self.samples.len() >= SAMPLE_BATCH {
                        self.live.record(&self.samples);
                        self.samples.clear();
                    }
                }
            }
            Outcome::Joined => batch.joined += 1,
            Outcome::Nothing => {}
            Outcome::Violation => batch.violations += 1,
        }
    }

    /// Counts a connection that ended before the bench closed it.
    fn disconnected(&mut self, reason: String) {
        self.tally.counts.disconnects += 1;
        self.live.note_error(reason);
    }
}

/// What one batch of received messages adds to the shared counters.
#[derive(Default)]
struct Batch {
    delivered: u64,
    joined: u64,
    violations: u64,
    own_echoes: u64,
}

impl Batch {
    fn apply(&self, live: &Live) {
        for (counter, n) in [
            (&live.delivered, self.delivered),
            (&live.joined, self.joined),
            (&live.violations, self.violations),
            (&live.own_echoes, self.own_echoes),
        ] {
            if n > 0 {
                counter.fetch_add(n, Ordering::Relaxed);
            }
        }
    }
}

//! The fan-out report: the figures of a run, as text or JSON, and the
//! verdict that decides the exit code.

use hdrhistogram::Histogram;
use serde_json::json;

use super::tally::Counts;
use super::{Joined, Plan};
use crate::bench::args::BenchArgs;
use crate::bench::common::Percentiles;

/// Falling further behind the schedule than this earns a warning: the
/// bench itself, not the server, may then be what limits the figures.
const LAG_WARNING_US: u64 = 10_000;

/// A finished run.
pub struct Run<'a> {
    pub args: &'a BenchArgs,
    pub plan: &'a Plan,
    pub counts: Counts,
    /// Latencies of the measured window, µs.
    pub histogram: Histogram<u64>,
    pub joined: Joined,
    /// The furthest a publisher fell behind its schedule, µs.
    pub max_lag_us: u64,
    /// The first disconnect's reason.
    pub first_error: Option<String>,
}

impl Run<'_> {
    /// Deliveries the relay owed: each publish to every other member.
    fn expected(&self) -> u64 {
        self.counts.published * (self.plan.members as u64 - 1)
    }

    fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.counts.delivered)
    }

    /// Per second of the measured window.
    fn per_second(&self, n: u64) -> f64 {
        n as f64 / self.plan.measured.as_secs_f64().max(1e-9)
    }

    fn latency(&self) -> Option<Percentiles> {
        (!self.histogram.is_empty()).then(|| Percentiles::of(&self.histogram))
    }

    /// Why the run failed, in one line; `None` if it passed.
    pub fn failure(&self) -> Option<String> {
        let c = &self.counts;
        let expected = self.expected();
        if c.delivered == 0 {
            return Some(format!(
                "nothing was delivered: {} publishes sent, {expected} deliveries expected{}",
                c.published,
                self.problems(false)
            ));
        }
        if c.violations() > 0 {
            return Some(format!(
                "fan-out check failed:{} (of {expected} expected deliveries)",
                self.problems(true)
            ));
        }
        if (self.lost() > 0 || c.disconnects > 0) && !self.args.fan.allow_loss {
            return Some(format!(
                "fan-out check failed: {} of {expected} deliveries lost, {} connection(s) dropped{} (--allow-loss accepts loss)",
                self.lost(),
                c.disconnects,
                self.first_error
                    .as_ref()
                    .map(|e| format!(", first: {e}"))
                    .unwrap_or_default()
            ));
        }
        None
    }

    /// The non-zero problem counts, as ", 3 lost, 2 duplicates"; with
    /// `lead`, the first without its comma.
    fn problems(&self, lead: bool) -> String {
        let c = &self.counts;
        let all = [
            (self.lost(), "lost"),
            (c.duplicates, "duplicated"),
            (c.out_of_order, "out of order"),
            (c.own_echoes, "own echoes"),
            (c.wrong_room, "from another room"),
            (c.foreign, "foreign"),
            (c.corrupt, "corrupted"),
            (c.disconnects, "connections dropped"),
        ];
        let parts: Vec<String> = all
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("{n} {what}"))
            .collect();
        if parts.is_empty() {
            return String::new();
        }
        format!("{}{}", if lead { " " } else { ", " }, parts.join(", "))
    }

    /// Prints the report (text, or JSON with `--json`).
    pub fn print(&self) {
        if self.args.json {
            println!("{}", self.json());
        } else {
            self.text();
        }
    }

    /// Exits non-zero (an `Err`) when [`Run::failure`] says so.
    pub fn verdict(&self) -> Result<(), String> {
        self.failure().map_or(Ok(()), Err)
    }

    /// The JSON report (fields documented in the README).
    pub fn json(&self) -> serde_json::Value {
        let (a, p, c) = (self.args, self.plan, &self.counts);
        let failure = self.failure();
        json!({
            "mode": "fanout",
            "urls": a.urls,
            "status": if failure.is_some() { "FAILED" } else { "OK" },
            "failure": failure,
            "rooms": p.rooms,
            "members": p.members,
            "publishers": p.publishers,
            "connections": p.rooms * p.members,
            "rate": a.fan.rate,
            "size": a.size,
            "compress": a.compress,
            "warmup_s": p.warmup.as_secs_f64(),
            "seconds": p.measured.as_secs_f64(),
            "join": { "method": self.joined.method, "seconds": self.joined.seconds },
            "publishes": c.published,
            "publishes_measured": c.published_measured,
            "publishes_per_s": self.per_second(c.published_measured),
            "deliveries_expected": self.expected(),
            "deliveries": c.delivered,
            "deliveries_measured": c.delivered_measured,
            "deliveries_per_s": self.per_second(c.delivered_measured),
            "lost": self.lost(),
            "duplicates": c.duplicates,
            "out_of_order": c.out_of_order,
            "own_echoes": c.own_echoes,
            "wrong_room": c.wrong_room,
            "foreign": c.foreign,
            "corrupt": c.corrupt,
            "disconnects": c.disconnects,
            "latency_us": self.latency().map(|l| l.json()),
            "send_lag_max_us": self.max_lag_us,
        })
    }

    fn text(&self) {
        let (a, p, c) = (self.args, self.plan, &self.counts);
        println!("duplex bench --fanout {}", a.urls.join(" "));
        println!(
            "  {} room(s) of {} members, {} publishing in each; {} publishes/s, {} B{}; {:.1} s measured after {:.1} s warm-up",
            p.rooms,
            p.members,
            p.publishers,
            a.fan.rate,
            a.size,
            if a.compress { ", compression offered" } else { "" },
            p.measured.as_secs_f64(),
            p.warmup.as_secs_f64(),
        );
        println!(
            "  joined         by {} in {:.2} s",
            self.joined.method, self.joined.seconds
        );
        println!(
            "  publishes/s    {:>10.0}   ({} sent in all, at most {:.1} ms behind schedule)",
            self.per_second(c.published_measured),
            c.published,
            self.max_lag_us as f64 / 1000.0
        );
        println!(
            "  deliveries/s   {:>10.0}",
            self.per_second(c.delivered_measured)
        );
        match self.latency() {
            Some(latency) => println!("  latency µs     {latency}"),
            None => println!("  latency µs     none measured"),
        }
        println!(
            "  deliveries     {} of {} expected{}",
            c.delivered,
            self.expected(),
            match self.problems(false) {
                problems if problems.is_empty() =>
                    ", none lost, duplicated, reordered or echoed".into(),
                problems => problems,
            }
        );
        if self.max_lag_us > LAG_WARNING_US {
            println!(
                "  warning        the publishers fell up to {:.1} ms behind their schedule: the bench may be the limit here",
                self.max_lag_us as f64 / 1000.0
            );
        }
        if let Some(failure) = self.failure() {
            println!("  FAILED         {failure}");
        }
    }
}

//! `duplex bench --fanout` on the built binary: against `duplex serve`'s
//! `/chat/<room>` every delivery arrives once and in order, over one URL
//! and over two; against relays that break the contract (an echo, a sink,
//! one that drops, duplicates and reorders) it counts exactly what went
//! wrong and exits non-zero with one line.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use duplex::{Handler, Message, Server, ServerSocket, Session, UpgradeRequest};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_duplex");
/// The bound of one waiting step.
const STEP: Duration = Duration::from_secs(15);

/// `duplex serve --listen 127.0.0.1:0`, with its address.
fn serve() -> (common::Process, String) {
    let mut command = Command::new(BIN);
    command.args(["serve", "--listen", "127.0.0.1:0"]);
    common::start_serve(command, STEP)
}

/// Runs `duplex bench --fanout --json --quiet ARGS`, bounded by a minute.
fn bench(args: &[&str]) -> Output {
    let mut child = Command::new(BIN)
        .args(["bench", "--fanout", "--json", "--quiet"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start duplex bench");
    let limit = Duration::from_secs(60);
    if common::wait_for_exit(&mut child, limit).is_none() {
        let _ = child.kill();
        panic!("duplex bench did not finish within {limit:?}");
    }
    child.wait_with_output().expect("bench output")
}

/// The JSON report of a run.
fn report(output: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}): stdout {stdout:?}, stderr {:?}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// The one line on stderr of a failed run, which must mention `needle`.
fn failure_line(output: &Output, needle: &str) -> String {
    assert!(!output.status.success(), "the run should have failed");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr, got {stderr:?}");
    assert!(lines[0].starts_with("duplex: "), "{stderr:?}");
    assert!(lines[0].contains(needle), "{stderr:?} lacks {needle:?}");
    lines[0].to_string()
}

fn count(report: &Value, field: &str) -> u64 {
    report[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} is not a count in {report}"))
}

/// Every delivery arrived once, in order, at everyone but its sender, and
/// the latency figures are there.
fn assert_complete(output: &Output, publishes: u64, members: u64) {
    let report = report(output);
    assert!(
        output.status.success(),
        "{report}; stderr {:?}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(report["status"], "OK", "{report}");
    assert_eq!(report["join"]["method"], "probe");
    let published = count(&report, "publishes");
    assert!(
        (publishes * 9 / 10..=publishes + 2).contains(&published),
        "{published} publishes for about {publishes}: {report}"
    );
    assert_eq!(
        count(&report, "deliveries_expected"),
        published * (members - 1)
    );
    assert_eq!(
        count(&report, "deliveries"),
        count(&report, "deliveries_expected")
    );
    for field in [
        "lost",
        "duplicates",
        "out_of_order",
        "own_echoes",
        "wrong_room",
        "foreign",
        "corrupt",
        "disconnects",
    ] {
        assert_eq!(count(&report, field), 0, "{field}: {report}");
    }
    assert!(count(&report, "deliveries_measured") > 0, "{report}");
    assert!(report["deliveries_per_s"].as_f64().unwrap() > 0.0);
    let latency = &report["latency_us"];
    for p in ["p50", "p90", "p99", "p99_9", "max"] {
        assert!(latency[p].as_u64().unwrap_or(0) >= 1, "{p}: {report}");
    }
    assert!(latency["p50"].as_u64() <= latency["max"].as_u64());
}

#[test]
fn every_delivery_arrives_once_in_order_over_one_url() {
    let (_serve, addr) = serve();
    let output = bench(&[
        &format!("ws://{addr}/chat/"),
        "--rooms",
        "2",
        "--members",
        "5",
        "--rate",
        "200/s",
        "-d",
        "1",
        "--warmup",
        "0.5",
    ]);
    // 200/s for 1.5 s.
    assert_complete(&output, 300, 5);
    let report = report(&output);
    assert_eq!(count(&report, "connections"), 10);
    assert_eq!(count(&report, "publishers"), 1);
}

#[test]
fn every_member_publishing_over_two_urls() {
    let (_serve, addr) = serve();
    // Two URLs of one server (as if two nodes), one of them a template.
    let output = bench(&[
        &format!("ws://{addr}/chat/"),
        &format!("ws://{addr}/chat/{{room}}"),
        "--rooms",
        "3",
        "--members",
        "4",
        "--publishers",
        "4",
        "--rate",
        "240",
        "-d",
        "1",
        "--warmup",
        "0.5",
        "--size",
        "100",
    ]);
    assert_complete(&output, 360, 4);
    assert_eq!(count(&report(&output), "size"), 100);
}

#[test]
fn an_echo_endpoint_fails_the_join_and_counts_own_echoes() {
    let (_serve, addr) = serve();
    let echo = format!("ws://{addr}/echo");
    // Probing: nobody hears another member's probe, probes come back.
    let output = bench(&[&echo, "--members", "3", "--join-timeout", "1"]);
    failure_line(&output, "echo endpoint");

    // Without probes the publishes themselves come back to their senders.
    let output = short_bench(&[&echo, "--members", "3", "--publishers", "3", "--rate", "60"]);
    failure_line(&output, "own echoes");
    let report = report(&output);
    assert_eq!(report["status"], "FAILED");
    assert_eq!(count(&report, "deliveries"), 0);
    assert_eq!(count(&report, "own_echoes"), count(&report, "publishes"));
    assert!(count(&report, "own_echoes") > 0);
}

/// [`bench`] with `args` and a half-second run without warm-up and with
/// short settle and drain times: enough for the checks of a failing run.
fn short_bench(args: &[&str]) -> std::process::Output {
    let timing = [
        "-d", "0.5", "--warmup", "0", "--settle", "0.2", "--drain", "0.3",
    ];
    bench(&[args, &timing[..]].concat())
}

/// Reads everything and relays nothing.
async fn sink(mut ws: ServerSocket, _request: UpgradeRequest) {
    while let Some(Ok(_)) = ws.recv().await {}
}

#[test]
fn a_relay_that_delivers_nothing_fails() {
    let server = common::lib_server(Server::new().route("/sink/{room}", sink), STEP);
    let sink_url = format!("ws://{}/sink/", server.addr);
    let output = short_bench(&[&sink_url, "--members", "3", "--rate", "50"]);
    failure_line(&output, "nothing was delivered");
    let report = report(&output);
    assert!(count(&report, "publishes") > 0);
    assert_eq!(
        count(&report, "lost"),
        count(&report, "deliveries_expected")
    );
}

/// A room relay with faults at given places in each sender's stream of
/// messages (counted from 0, probes included).
struct FaultyRelay {
    room: String,
    received: u64,
    drop: &'static [u64],
    duplicate: &'static [u64],
    /// This one is held back and relayed after the next.
    swap: Option<u64>,
    held: Option<Message>,
}

impl FaultyRelay {
    fn new(request: &UpgradeRequest, faults: bool) -> FaultyRelay {
        FaultyRelay {
            room: request.param("room").unwrap_or_default().to_string(),
            received: 0,
            drop: &[30],
            duplicate: if faults { &[40] } else { &[] },
            swap: faults.then_some(50),
            held: None,
        }
    }
}

impl Handler for FaultyRelay {
    async fn on_open(&mut self, session: &Session) {
        session.join(&self.room);
    }

    async fn on_message(&mut self, session: &Session, message: Message) {
        let n = self.received;
        self.received += 1;
        if self.drop.contains(&n) {
            return;
        }
        if self.swap == Some(n) {
            self.held = Some(message);
            return;
        }
        session.publish(&self.room, &message);
        if self.duplicate.contains(&n) {
            session.publish(&self.room, &message);
        }
        if let Some(held) = self.held.take() {
            session.publish(&self.room, &held);
        }
    }
}

/// One room of 4 with one publisher sending about 150 messages through a
/// faulty relay.
fn faulty_run(path: &str, extra: &[&str]) -> Output {
    let server = common::lib_server(
        Server::new()
            .handler("/faulty/{room}", |r: &UpgradeRequest| {
                FaultyRelay::new(r, true)
            })
            .handler("/lossy/{room}", |r: &UpgradeRequest| {
                FaultyRelay::new(r, false)
            }),
        STEP,
    );
    let url = format!("ws://{}/{path}/", server.addr);
    let mut args = vec![
        url.as_str(),
        "--members",
        "4",
        "--rate",
        "100",
        "-d",
        "1",
        "--warmup",
        "0.5",
        "--drain",
        "0.5",
    ];
    args.extend_from_slice(extra);
    bench(&args)
}

#[test]
fn loss_duplicates_and_reordering_are_counted_exactly() {
    let output = faulty_run("faulty", &["--allow-loss"]);
    // Each fault reaches the 3 other members.
    let line = failure_line(&output, "out of order");
    assert!(
        line.contains("3 lost") && line.contains("3 duplicated"),
        "{line}"
    );
    let report = report(&output);
    assert_eq!(count(&report, "lost"), 3, "{report}");
    assert_eq!(count(&report, "duplicates"), 3, "{report}");
    assert_eq!(count(&report, "out_of_order"), 3, "{report}");
    assert_eq!(count(&report, "own_echoes"), 0, "{report}");
    assert_eq!(
        count(&report, "deliveries") + 3,
        count(&report, "deliveries_expected")
    );
}

#[test]
fn loss_alone_fails_unless_allowed() {
    let output = faulty_run("lossy", &[]);
    failure_line(&output, "3 of");
    assert_eq!(count(&report(&output), "lost"), 3);

    let output = faulty_run("lossy", &["--allow-loss"]);
    let report = report(&output);
    assert!(output.status.success(), "{report}");
    assert_eq!(count(&report, "lost"), 3, "{report}");
    assert_eq!(report["status"], "OK");
}

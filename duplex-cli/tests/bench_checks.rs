//! `duplex bench` tells a real echo from nothing: it fails (exit 1, a
//! clear message) when nothing comes back or the server does not echo,
//! says whether permessage-deflate was negotiated, and takes `--ca`.

mod common;

use std::time::Duration;

use common::cli_run::{run, serve, Certs};
use duplex::{Server, ServerSocket, UpgradeRequest};

const STEP: Duration = Duration::from_secs(40);
const SHORT: [&str; 6] = ["-c", "2", "-d", "0.5", "--warmup", "0.2"];

fn bench(url: &str, extra: &[&str]) -> common::cli_run::Run {
    let mut args = vec!["bench", url, "--quiet"];
    args.extend_from_slice(&SHORT);
    args.extend_from_slice(extra);
    run(&args, "", STEP)
}

/// Answers every message with something else.
async fn not_an_echo(mut ws: ServerSocket, _req: UpgradeRequest) {
    while let Some(Ok(message)) = ws.recv().await {
        if message.is_data() {
            let _ = ws.send("something else").await;
        }
    }
}

#[test]
fn bench_passes_on_an_echo_and_reports_negotiated_compression() {
    let (_serve, addr) = serve(&[]);
    let url = format!("ws://{addr}/echo");
    let out = bench(&url, &["--json", "--compress", "--text"]);
    out.assert_ok();
    let json = &out.json_lines()[0];
    assert_eq!(json["status"], "OK");
    assert_eq!(json["compression_negotiated"], 2);
    assert!(json["messages"].as_u64().unwrap() > 0, "{json}");

    let out = bench(&url, &["--compress", "--text"]);
    out.assert_ok();
    assert!(
        out.stdout.contains("permessage-deflate negotiated"),
        "{out:#?}"
    );
    assert!(out.stdout.contains("errors       none"), "{out:#?}");

    let out = bench(&url, &["--json"]);
    out.assert_ok();
    assert_eq!(out.json_lines()[0]["compression_negotiated"], 0);
}

/// Reads everything, answers nothing.
async fn silent(mut ws: ServerSocket, _req: UpgradeRequest) {
    while let Some(Ok(_)) = ws.recv().await {}
}

#[test]
fn bench_fails_when_nothing_comes_back() {
    let server = common::lib_server(Server::new().route("/silent", silent), STEP);
    let out = bench(&format!("ws://{}/silent", server.addr), &[]);
    assert_eq!(out.status.code(), Some(1), "{out:#?}");
    assert!(out.stderr.contains("nothing came back"), "{out:#?}");
    assert!(!out.stdout.contains("errors       none"), "{out:#?}");
}

#[test]
fn bench_fails_when_the_server_does_not_echo() {
    let server = common::lib_server(Server::new().route("/other", not_an_echo), STEP);
    let out = bench(&format!("ws://{}/other", server.addr), &[]);
    assert_eq!(out.status.code(), Some(1), "{out:#?}");
    assert!(out.stderr.contains("does not echo"), "{out:#?}");
}

#[test]
fn bench_takes_ca_for_wss() {
    let certs = Certs::new("bench-ca");
    let (_serve, addr) = serve(&[
        "--tls-cert",
        &certs.file("cert.pem"),
        "--tls-key",
        &certs.file("key.pem"),
    ]);
    let url = format!("wss://{addr}/echo");
    let out = bench(&url, &["--ca", &certs.file("ca.pem"), "--json"]);
    out.assert_ok();
    assert_eq!(out.json_lines()[0]["status"], "OK");
    // Without it the certificate is refused.
    let out = bench(&url, &[]);
    assert_eq!(out.status.code(), Some(1), "{out:#?}");
}

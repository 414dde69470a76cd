//! The failures of `duplex connect` say what is wrong and what to do, in
//! one line with exit 1: a missing scheme, `wss://` to a plain server,
//! certificate problems (with `--ca` / `--insecure`), a refusal with its
//! body; redirects are followed (and shown with `-v`) up to a limit;
//! `--timeout` covers TCP, TLS and the handshake; `--reconnect` gives up
//! at once on permanent errors and fails when it never connected.

mod common;

use std::time::{Duration, Instant};

use common::cli_run::{response, run, serve, Certs, HttpStub};

const STEP: Duration = Duration::from_secs(20);

#[test]
fn a_missing_scheme_says_ws_or_wss_is_needed() {
    let out = run(&["connect", "127.0.0.1:9/echo"], "", STEP);
    let line = out.assert_fails_with("ws://");
    assert!(line.contains("wss://"), "{line}");
    assert!(line.contains("e.g. ws://127.0.0.1:9/echo"), "{line}");
}

#[test]
fn wss_to_a_plain_server_says_so() {
    let (_serve, addr) = serve(&[]);
    let out = run(&["connect", &format!("wss://{addr}/echo")], "", STEP);
    let line = out.assert_fails_with("plain ws:// server");
    assert!(!line.contains("InvalidContentType"), "{line}");
}

#[test]
fn certificate_problems_say_to_use_ca_or_insecure() {
    let certs = Certs::new("connect-certs");
    let (_serve, addr) = serve(&[
        "--tls-cert",
        &certs.file("cert.pem"),
        "--tls-key",
        &certs.file("key.pem"),
    ]);
    let url = format!("wss://{addr}/echo");
    // An issuer nobody trusts.
    let out = run(&["connect", &url], "", STEP);
    let line = out.assert_fails_with("--ca CERT.pem");
    assert!(line.contains("--insecure"), "{line}");
    assert!(line.contains("not trusted"), "{line}");
    assert!(!line.contains("Other("), "{line}");
    // With the CA: it works.
    let out = run(
        &["connect", &url, "--ca", &certs.file("ca.pem")],
        "s\n",
        STEP,
    );
    out.assert_ok();
    assert_eq!(out.lines(), ["s"]);
    // With --insecure: it works, with a warning.
    let out = run(&["connect", &url, "--insecure"], "i\n", STEP);
    out.assert_ok();
    assert_eq!(out.lines(), ["i"]);
    assert!(out.stderr.contains("--insecure"), "{out:#?}");

    // A server presenting the CA certificate itself: rustls says
    // `CaUsedAsEndEntity`; the user reads what that means.
    let (_ca_serve, ca_addr) = serve(&[
        "--tls-cert",
        &certs.file("ca.pem"),
        "--tls-key",
        &certs.file("ca-key.pem"),
    ]);
    let out = run(
        &[
            "connect",
            &format!("wss://{ca_addr}/echo"),
            "--ca",
            &certs.file("ca.pem"),
        ],
        "",
        STEP,
    );
    let line = out.assert_fails_with("is a CA certificate, not a server certificate");
    assert!(line.contains("--insecure"), "{line}");
    assert!(!line.contains("CaUsedAsEndEntity"), "{line}");
}

#[test]
fn a_refusal_shows_the_servers_body() {
    let stub = HttpStub::start(|_| {
        Some(response(
            "403 Forbidden",
            &["Content-Type: text/plain"],
            "token expired\nplease log in again\n",
        ))
    });
    let out = run(&["connect", &format!("ws://{}/x", stub.addr)], "", STEP);
    let line = out.assert_fails_with("HTTP 403");
    assert!(
        line.ends_with(": token expired please log in again"),
        "{line}"
    );
}

#[test]
fn redirects_are_followed_up_to_the_limit_and_shown_with_v() {
    let (_serve, addr) = serve(&[]);
    let target = format!("ws://{addr}/echo");
    let location = format!("Location: {target}");
    let hop = HttpStub::start(move |_| Some(response("302 Found", &[&location], "")));
    let hop_url = format!("ws://{}/start", hop.addr);
    let out = run(&["connect", "-v", &hop_url], "r\n", STEP);
    out.assert_ok();
    assert_eq!(out.lines(), ["r"]);
    assert!(
        out.stderr
            .lines()
            .any(|l| l == format!("* redirected (302) to {target}")),
        "{out:#?}"
    );
    assert!(out.stderr.contains("< HTTP/1.1 302 Found"), "{out:#?}");

    // Without following: the redirect is the error.
    let out = run(&["connect", "--max-redirects", "0", &hop_url], "", STEP);
    out.assert_fails_with("HTTP 302");

    // A loop (a relative Location): given up after the limit.
    let looping = HttpStub::start(|_| {
        Some(response(
            "307 Temporary Redirect",
            &["Location: /again"],
            "",
        ))
    });
    let out = run(&["connect", &format!("ws://{}/", looping.addr)], "", STEP);
    out.assert_fails_with("more than 5 redirects");
    assert_eq!(looping.count(), 6, "the first request and 5 redirects");
}

#[test]
fn timeout_covers_the_handshake_and_tls() {
    // Accepts, reads the request, never answers.
    let silent = HttpStub::start(|_| None);
    for scheme in ["ws", "wss"] {
        let started = Instant::now();
        let out = run(
            &[
                "connect",
                "--timeout",
                "0.5",
                &format!("{scheme}://{}/", silent.addr),
            ],
            "",
            STEP,
        );
        out.assert_fails_with("timed out");
        // Well below the 10 s handshake limit that applied before.
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "{scheme}: {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn reconnect_gives_up_at_once_on_permanent_errors() {
    let refusing = HttpStub::start(|_| Some(response("403 Forbidden", &[], "no")));
    let out = run(
        &[
            "connect",
            "--reconnect",
            &format!("ws://{}/", refusing.addr),
        ],
        "",
        STEP,
    );
    assert_eq!(out.status.code(), Some(1), "{out:#?}");
    assert!(out.stderr.contains("not retrying"), "{out:#?}");
    assert_eq!(refusing.count(), 1, "a permanent error is not retried");

    // A bad URL too.
    let out = run(&["connect", "--reconnect", "localhost/x"], "", STEP);
    assert_eq!(out.status.code(), Some(1), "{out:#?}");
    assert!(out.stderr.contains("not retrying"), "{out:#?}");

    // 503 is worth retrying: it is, until --max-attempts (a queued line
    // keeps the client trying through the close grace).
    let busy = HttpStub::start(|_| Some(response("503 Service Unavailable", &[], "")));
    let out = run(
        &[
            "connect",
            "--reconnect",
            "--max-attempts",
            "2",
            "--max-backoff",
            "0.1",
            &format!("ws://{}/", busy.addr),
        ],
        "x\n",
        STEP,
    );
    assert_eq!(out.status.code(), Some(1), "{out:#?}");
    assert!(out.stderr.contains("never connected"), "{out:#?}");
    assert_eq!(busy.count(), 2, "{out:#?}");
}

#[test]
fn reconnect_fails_when_it_never_connected() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // The end of stdin at once: the close grace runs out, never connected.
    let out = run(
        &[
            "connect",
            "--reconnect",
            "--close-grace",
            "0.5",
            &format!("ws://127.0.0.1:{port}/"),
        ],
        "",
        STEP,
    );
    assert_eq!(out.status.code(), Some(1), "{out:#?}");
    assert!(out.stderr.contains("never connected"), "{out:#?}");
}

//! The proxy environment variables, as `duplex connect` and `duplex
//! bench` subprocesses see them (the environment is process-wide, so each
//! case gets a process of its own): the order of `wss_proxy`/`ws_proxy`,
//! `https_proxy`/`http_proxy` and `all_proxy`, lower case over upper case,
//! `no_proxy`, loopback never proxied, `--proxy` / `--no-proxy`, and bench
//! using a proxy only when told.
//!
//! Targets: a proxied target is named `duplex-target.invalid`, which is
//! never resolved here (the test proxies get the name and tunnel to
//! 127.0.0.1). A target that must go direct yet not look like loopback is
//! `0.0.0.0`, which Linux connects to this machine: no lookup, no traffic
//! leaves it.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::certs::TestCerts;
use common::connect_proxy::ConnectProxy;
use common::echo_target::echo_target;
use common::socks_server::{SocksServer, SocksTarget};

const BIN: &str = env!("CARGO_BIN_EXE_duplex");
const TARGET_NAME: &str = "duplex-target.invalid";
const LIMIT: Duration = Duration::from_secs(30);

/// Every variable the client reads, removed from the child's environment
/// so that the machine's own settings never leak into a case.
const PROXY_VARS: &[&str] = &[
    "no_proxy",
    "NO_PROXY",
    "wss_proxy",
    "WSS_PROXY",
    "ws_proxy",
    "WS_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "http_proxy",
    "HTTP_PROXY",
    "all_proxy",
    "ALL_PROXY",
];

struct Outcome {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Runs `duplex ARGS` with only `vars` among the proxy variables, `hello`
/// on stdin.
fn run(args: &[&str], vars: &[(&str, &str)]) -> Outcome {
    let mut command = Command::new(BIN);
    command.args(args);
    for var in PROXY_VARS {
        command.env_remove(var);
    }
    command.envs(vars.iter().copied());
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start duplex");
    child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    let stdout = common::lines_of(child.stdout.take().unwrap());
    let stderr = common::lines_of(child.stderr.take().unwrap());
    let status = common::wait_for_exit(&mut child, LIMIT);
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("duplex {args:?} still running after {LIMIT:?}");
    };
    // The pipes close with the process: the readers end.
    let collect = |rx: std::sync::mpsc::Receiver<String>| {
        let mut lines = Vec::new();
        while let Ok(line) = rx.recv_timeout(Duration::from_secs(5)) {
            lines.push(line);
        }
        lines.join("\n")
    };
    Outcome {
        success: status.success(),
        stdout: collect(stdout),
        stderr: collect(stderr),
    }
}

/// `duplex connect URL EXTRA...` that must echo `hello` and exit 0.
fn connect_ok(url: &str, extra: &[&str], vars: &[(&str, &str)]) {
    let mut args = vec!["connect", url];
    args.extend_from_slice(extra);
    let out = run(&args, vars);
    assert!(
        out.success && out.stdout == "hello",
        "duplex connect {url} {extra:?} with {vars:?}: stdout {:?}, stderr {:?}",
        out.stdout,
        out.stderr
    );
}

#[test]
fn ws_proxy_then_http_proxy_then_all_proxy_for_ws() {
    let target = echo_target(None);
    let port = target.addr.port();
    let url = format!("ws://{TARGET_NAME}:{port}/echo");
    let (a, b) = (ConnectProxy::start(), ConnectProxy::start());
    let socks = SocksServer::start();
    let expected = vec![format!("{TARGET_NAME}:{port}")];

    connect_ok(
        &url,
        &[],
        &[("ws_proxy", &a.url()), ("http_proxy", &b.url())],
    );
    assert_eq!((a.targets(), b.targets()), (expected.clone(), vec![]));

    // No ws_proxy: http_proxy; the lower-case one over HTTP_PROXY; the
    // wss variables never apply to ws://.
    connect_ok(
        &url,
        &[],
        &[
            ("HTTP_PROXY", &a.url()),
            ("http_proxy", &b.url()),
            ("wss_proxy", &a.url()),
        ],
    );
    assert_eq!((a.targets().len(), b.targets()), (1, expected.clone()));

    // Nothing else: all_proxy (here SOCKS5 with remote resolution).
    connect_ok(&url, &[], &[("ALL_PROXY", &socks.url("socks5h"))]);
    let requests = socks.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].target, SocksTarget::Domain(TARGET_NAME.into()));
    assert_eq!((a.targets().len(), b.targets().len()), (1, 1));
}

#[test]
fn wss_proxy_then_https_proxy_for_wss_with_tls_end_to_end() {
    let certs = TestCerts::for_names(&[TARGET_NAME]);
    let target = echo_target(Some(&certs));
    let port = target.addr.port();
    let url = format!("wss://{TARGET_NAME}:{port}/echo");
    let ca = certs.file("ca.pem").display().to_string();
    let (a, b, c) = (
        ConnectProxy::start(),
        ConnectProxy::start(),
        ConnectProxy::start(),
    );
    let expected = vec![format!("{TARGET_NAME}:{port}")];

    connect_ok(
        &url,
        &["--ca", &ca],
        &[("wss_proxy", &a.url()), ("https_proxy", &b.url())],
    );
    assert_eq!((a.targets(), b.targets()), (expected.clone(), vec![]));

    connect_ok(
        &url,
        &["--ca", &ca],
        &[
            ("https_proxy", &b.url()),
            ("HTTPS_PROXY", &c.url()),
            ("http_proxy", &c.url()),
            ("ws_proxy", &c.url()),
        ],
    );
    assert_eq!((b.targets(), c.targets()), (expected, vec![]));
}

#[test]
fn no_proxy_and_loopback_go_direct() {
    let target = echo_target(None);
    let port = target.addr.port();
    let proxy = ConnectProxy::start();
    let env = [("ws_proxy", proxy.url()), ("all_proxy", proxy.url())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    // Loopback targets are never proxied from the environment.
    for host in ["127.0.0.1", "localhost"] {
        connect_ok(&format!("ws://{host}:{port}/echo"), &[], &env);
    }
    assert_eq!(proxy.targets(), Vec::<String>::new());

    // no_proxy names the target (with or without its port): direct.
    let direct = format!("ws://0.0.0.0:{port}/echo");
    for list in [
        "0.0.0.0".to_string(),
        format!("example.org, 0.0.0.0:{port}"),
        "0.0.0.0/8".into(),
    ] {
        let mut vars = env.clone();
        vars.push(("no_proxy", &list));
        connect_ok(&direct, &[], &vars);
    }
    let mut vars = env.clone();
    vars.push(("NO_PROXY", "*"));
    connect_ok(&direct, &[], &vars);
    assert_eq!(proxy.targets(), Vec::<String>::new());

    // An entry for another port, or another name: proxied.
    let mut vars = env.clone();
    vars.push(("no_proxy", "0.0.0.0:1,example.org"));
    connect_ok(&direct, &[], &vars);
    assert_eq!(proxy.targets(), vec![format!("0.0.0.0:{port}")]);
}

#[test]
fn the_flags_win_over_the_environment() {
    let target = echo_target(None);
    let port = target.addr.port();
    let (env_proxy, flag_proxy) = (ConnectProxy::start(), ConnectProxy::start());
    let env = [("ws_proxy", env_proxy.url().clone())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    connect_ok(&format!("ws://0.0.0.0:{port}/echo"), &["--no-proxy"], &env);
    assert_eq!(env_proxy.targets(), Vec::<String>::new());

    // An explicit proxy applies to loopback targets too.
    connect_ok(
        &format!("ws://127.0.0.1:{port}/echo"),
        &["--proxy", &flag_proxy.url()],
        &env,
    );
    assert_eq!(flag_proxy.targets(), vec![format!("127.0.0.1:{port}")]);
    assert_eq!(env_proxy.targets(), Vec::<String>::new());

    let out = run(
        &[
            "connect",
            "ws://127.0.0.1:1/",
            "--proxy",
            "http://127.0.0.1:1",
            "--no-proxy",
        ],
        &[],
    );
    assert!(
        !out.success && out.stderr.contains("cannot be used with"),
        "{}",
        out.stderr
    );
}

#[test]
fn proxy_failures_exit_non_zero_naming_the_proxy() {
    let refusing = ConnectProxy::with_credentials("alice", "secret");
    let url = format!("ws://{TARGET_NAME}:9/echo");
    let out = run(&["connect", &url], &[("ws_proxy", &refusing.url())]);
    assert!(!out.success, "stdout {:?}", out.stdout);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {:?}", out.stderr);
    assert!(
        lines[0].contains(&refusing.url())
            && lines[0].contains("HTTP 407")
            && lines[0].contains("credentials"),
        "{}",
        lines[0]
    );
    // A proxy variable that is not a proxy URL: the variable is named.
    let out = run(
        &["connect", &url],
        &[("ws_proxy", "ftp://proxy.example:21")],
    );
    assert!(!out.success);
    assert!(
        out.stderr.contains("ws_proxy") && out.stderr.contains("ftp"),
        "{}",
        out.stderr
    );
}

#[test]
fn bench_uses_a_proxy_only_when_told() {
    let target = echo_target(None);
    let port = target.addr.port();
    let proxy = ConnectProxy::start();
    let url = format!("ws://0.0.0.0:{port}/echo");
    let bench = [
        "bench", &url, "-c", "2", "-d", "0.3", "--warmup", "0", "--quiet", "--json",
    ];
    let env = [("ws_proxy", proxy.url()), ("all_proxy", proxy.url())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let out = run(&bench, &env);
    assert!(out.success, "bench: {}", out.stderr);
    assert_eq!(
        proxy.targets(),
        Vec::<String>::new(),
        "bench ignores the environment"
    );

    let proxy_url = proxy.url();
    let mut with_flag = bench.to_vec();
    with_flag.extend_from_slice(&["--proxy", &proxy_url]);
    let out = run(&with_flag, &[]);
    assert!(out.success, "bench --proxy: {}", out.stderr);
    let targets = proxy.targets();
    assert!(!targets.is_empty(), "bench --proxy went through the proxy");
    assert!(
        targets.iter().all(|t| *t == format!("0.0.0.0:{port}")),
        "{targets:?}"
    );
}

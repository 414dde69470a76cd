//! The library client through real proxies from Debian: `tinyproxy`
//! (HTTP CONNECT, also with Basic credentials) and `microsocks`
//! (SOCKS5), for ws and wss. Without the binaries these skip loudly, and
//! fail in CI (see `common::real_proxy`).

mod common;

use std::time::Duration;

use common::certs::TestCerts;
use common::echo_target::echo_target;
use common::real_proxy::{Microsocks, Tinyproxy};
use duplex::{ClientBuilder, Error, Message};

const LIMIT: Duration = Duration::from_secs(20);

/// Connects with `builder`, sends a text and a binary message, expects
/// both back, closes.
async fn round_trip(builder: ClientBuilder, what: &str) {
    let mut ws = tokio::time::timeout(LIMIT, builder.connect())
        .await
        .unwrap_or_else(|_| panic!("{what}: connect timed out"))
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    ws.send("through a real proxy").await.unwrap();
    ws.send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    for expected in [
        Message::text("through a real proxy"),
        Message::binary(vec![0u8, 1, 2, 255]),
    ] {
        let reply = tokio::time::timeout(LIMIT, ws.recv())
            .await
            .unwrap_or_else(|_| panic!("{what}: echo timed out"))
            .expect("a reply")
            .expect("no error");
        assert_eq!(reply, expected, "{what}");
    }
    ws.close(None).await.unwrap();
}

fn wss(certs: &TestCerts, host: &str, port: u16) -> ClientBuilder {
    ClientBuilder::new(format!("wss://{host}:{port}/echo"))
        .add_root_certificates_pem(&certs.read("ca.pem"))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tinyproxy_ws_and_wss() {
    let certs = TestCerts::for_names(&["localhost", "127.0.0.1"]);
    let plain = echo_target(None);
    let tls = echo_target(Some(&certs));
    // One ConnectPort per proxy: one tinyproxy per target port.
    let Some(proxy_plain) = Tinyproxy::start(plain.addr.port(), None) else {
        return;
    };
    let Some(proxy_tls) = Tinyproxy::start(tls.addr.port(), None) else {
        return;
    };
    round_trip(
        ClientBuilder::new(format!("ws://127.0.0.1:{}/echo", plain.addr.port()))
            .proxy(proxy_plain.url()),
        "ws via tinyproxy",
    )
    .await;
    round_trip(
        wss(&certs, "localhost", tls.addr.port()).proxy(proxy_tls.url()),
        "wss via tinyproxy",
    )
    .await;
    // tinyproxy enforces its ConnectPort: another port is refused, and
    // the refusal names tinyproxy's status.
    let e = ClientBuilder::new(format!("ws://127.0.0.1:{}/echo", tls.addr.port()))
        .proxy(proxy_plain.url())
        .connect()
        .await
        .expect_err("tinyproxy refuses a port not in ConnectPort");
    assert!(
        matches!(&e, Error::Proxy(p) if p.status() == Some(403)),
        "{e:?}\n{}",
        proxy_plain.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tinyproxy_with_basic_credentials() {
    let target = echo_target(None);
    let Some(proxy) = Tinyproxy::start(target.addr.port(), Some(("alice", "s3cret"))) else {
        return;
    };
    let url = format!("ws://127.0.0.1:{}/echo", target.addr.port());
    for (proxy_url, sent) in [
        (proxy.url(), false),
        (proxy.url().replace("://", "://alice:wrong@"), true),
    ] {
        let e = ClientBuilder::new(&url)
            .proxy(proxy_url)
            .connect()
            .await
            .expect_err("tinyproxy wants credentials");
        let Error::Proxy(ref p) = e else {
            panic!("expected Error::Proxy, got {e:?}")
        };
        // Older tinyproxy releases (Debian 12's 1.11.1) say 401, fixed ones 407.
        assert!(matches!(p.status(), Some(401 | 407)), "{e}");
        assert_eq!(p.proxy(), proxy.url());
        let hint = if sent {
            "not accepted"
        } else {
            "wants credentials"
        };
        assert!(e.to_string().contains(hint), "{e}");
    }
    round_trip(
        ClientBuilder::new(&url).proxy(proxy.url().replace("://", "://alice:s3cret@")),
        "ws via tinyproxy with credentials",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn microsocks_ws_and_wss() {
    let certs = TestCerts::for_names(&["localhost", "127.0.0.1"]);
    let plain = echo_target(None);
    let tls = echo_target(Some(&certs));
    let Some(socks) = Microsocks::start() else {
        return;
    };
    for scheme in ["socks5", "socks5h"] {
        round_trip(
            ClientBuilder::new(format!("ws://localhost:{}/echo", plain.addr.port()))
                .proxy(socks.url(scheme)),
            &format!("ws via microsocks ({scheme})"),
        )
        .await;
        round_trip(
            wss(&certs, "localhost", tls.addr.port()).proxy(socks.url(scheme)),
            &format!("wss via microsocks ({scheme})"),
        )
        .await;
    }
}

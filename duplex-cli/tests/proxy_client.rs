//! The library client through proxies (`ClientBuilder::proxy`), against
//! the in-test HTTP CONNECT proxy and SOCKS5 server of `common`: ws and
//! wss (TLS end to end, checked against the target's name), Basic
//! credentials, refusals as typed errors, `socks5` sending an address and
//! `socks5h` the name.
//!
//! Target names like `duplex-target.invalid` are never resolved here: the
//! proxy gets the name, and the test proxies send every tunnel to
//! 127.0.0.1.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::certs::TestCerts;
use common::connect_proxy::ConnectProxy;
use common::echo_target::echo_target;
use common::socks_server::{SocksServer, SocksTarget};
use duplex::proxy::ProxyError;
use duplex::{ClientBuilder, Error, Message};

/// The name the TLS tests' certificate is for; it resolves nowhere.
const TARGET_NAME: &str = "duplex-target.invalid";

/// Generous for a loaded 2-core machine.
const LIMIT: Duration = Duration::from_secs(20);

/// Connects with `builder`, sends one text, expects it back, closes.
async fn round_trip(builder: ClientBuilder) {
    let mut ws = tokio::time::timeout(LIMIT, builder.connect())
        .await
        .expect("connect timed out")
        .expect("connect through the proxy");
    ws.send("through the tunnel").await.unwrap();
    let reply = tokio::time::timeout(LIMIT, ws.recv())
        .await
        .expect("echo timed out")
        .expect("a reply")
        .expect("no error");
    assert_eq!(reply, Message::text("through the tunnel"));
    ws.close(None).await.unwrap();
}

/// A builder for `wss://TARGET_NAME:port/echo` trusting `certs`.
fn wss(certs: &TestCerts, port: u16) -> ClientBuilder {
    ClientBuilder::new(format!("wss://{TARGET_NAME}:{port}/echo"))
        .add_root_certificates_pem(&certs.read("ca.pem"))
        .unwrap()
}

async fn connect_error(builder: ClientBuilder) -> Error {
    match tokio::time::timeout(LIMIT, builder.connect()).await {
        Ok(Ok(_)) => panic!("connected although the proxy should refuse"),
        Ok(Err(e)) => e,
        Err(_) => panic!("connect timed out"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_through_http_connect_with_basic_credentials() {
    let target = echo_target(None);
    let proxy = ConnectProxy::with_credentials("alice", "pa:ss wörd");
    let port = target.addr.port();
    // Percent-encoded in the URL, sent decoded.
    let url = proxy.url_with("alice", "pa%3Ass%20w%C3%B6rd");
    round_trip(ClientBuilder::new(format!("ws://127.0.0.1:{port}/echo")).proxy(url)).await;
    let requests = proxy.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].method, "CONNECT");
    assert_eq!(requests[0].target, format!("127.0.0.1:{port}"));
    let expected = base64::engine::general_purpose::STANDARD.encode("alice:pa:ss wörd");
    assert_eq!(requests[0].authorization, Some(format!("Basic {expected}")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_through_http_connect_checks_the_targets_certificate() {
    let certs = TestCerts::for_names(&[TARGET_NAME]);
    let target = echo_target(Some(&certs));
    let port = target.addr.port();
    let proxy = ConnectProxy::start();
    // The certificate is for the target's name, not the proxy's address:
    // TLS runs end to end with SNI and the check for TARGET_NAME.
    round_trip(wss(&certs, port).proxy(proxy.url())).await;
    assert_eq!(proxy.targets(), vec![format!("{TARGET_NAME}:{port}")]);
    // Another name through the same tunnel: the certificate does not fit.
    let other = ClientBuilder::new(format!("wss://other-name.invalid:{port}/echo"))
        .add_root_certificates_pem(&certs.read("ca.pem"))
        .unwrap()
        .proxy(proxy.url());
    let e = connect_error(other).await;
    assert!(
        matches!(e, Error::Tls(_)),
        "expected a TLS error, got {e:?}"
    );
    assert!(
        e.to_string().contains("certificate") || e.to_string().contains("name"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_407_says_whether_credentials_were_missing_or_wrong() {
    let target = echo_target(None);
    let proxy = ConnectProxy::with_credentials("alice", "secret");
    let url = format!("ws://127.0.0.1:{}/echo", target.addr.port());
    let e = connect_error(ClientBuilder::new(&url).proxy(proxy.url())).await;
    let Error::Proxy(ref proxy_error) = e else {
        panic!("expected Error::Proxy, got {e:?}")
    };
    assert_eq!(proxy_error.status(), Some(407));
    assert_eq!(proxy_error.proxy(), proxy.url());
    let text = e.to_string();
    assert!(
        text.contains(&proxy.url()) && text.contains("HTTP 407"),
        "{text}"
    );
    assert!(text.contains("wants credentials"), "{text}");

    let e = connect_error(ClientBuilder::new(&url).proxy(proxy.url_with("alice", "wrong"))).await;
    let text = e.to_string();
    assert!(
        matches!(&e, Error::Proxy(p) if p.status() == Some(407)),
        "{e:?}"
    );
    assert!(
        text.contains("not accepted") && !text.contains("wrong"),
        "{text}"
    );
    assert_eq!(proxy.requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_refusals_name_their_status() {
    for status in [403, 502] {
        let proxy = ConnectProxy::refusing(status);
        let e = connect_error(ClientBuilder::new("ws://127.0.0.1:9/echo").proxy(proxy.url())).await;
        match &e {
            Error::Proxy(ProxyError::Refused {
                status: got,
                proxy: name,
                ..
            }) => {
                assert_eq!((*got, name.as_str()), (status, proxy.url().as_str()));
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(e.to_string().contains(&format!("HTTP {status}")), "{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_and_unreachable_proxies_are_named() {
    let free = common::redis::free_port(false);
    let e = connect_error(
        ClientBuilder::new("ws://127.0.0.1:9/echo").proxy(format!("http://127.0.0.1:{free}")),
    )
    .await;
    assert!(
        matches!(&e, Error::Proxy(ProxyError::Unreachable { .. })),
        "{e:?}"
    );
    assert!(e.to_string().contains(&format!("127.0.0.1:{free}")), "{e}");
    let e = connect_error(
        ClientBuilder::new("ws://127.0.0.1:9/echo").proxy("https://u:secret@127.0.0.1:1"),
    )
    .await;
    assert!(matches!(&e, Error::Proxy(ProxyError::Url { .. })), "{e:?}");
    assert!(!e.to_string().contains("secret"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socks5h_sends_the_name_and_socks5_an_address() {
    let target = echo_target(None);
    let port = target.addr.port();
    let socks = SocksServer::start();
    // socks5h: the name goes to the proxy, unresolved.
    round_trip(
        ClientBuilder::new(format!("ws://{TARGET_NAME}:{port}/echo")).proxy(socks.url("socks5h")),
    )
    .await;
    // socks5: `localhost` resolved here; the proxy sees an address.
    round_trip(
        ClientBuilder::new(format!("ws://localhost:{port}/echo")).proxy(socks.url("socks5")),
    )
    .await;
    let requests = socks.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0].target, SocksTarget::Domain(TARGET_NAME.into()));
    assert_eq!(requests[0].port, port);
    match &requests[1].target {
        SocksTarget::Ip(ip) => assert!(ip.is_loopback(), "{ip}"),
        other => panic!("socks5 sent {other:?}, not an address"),
    }
    assert_eq!(requests[1].port, port);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_through_socks5h_and_socks_credentials() {
    let certs = TestCerts::for_names(&[TARGET_NAME]);
    let target = echo_target(Some(&certs));
    let port = target.addr.port();
    let socks = SocksServer::with_credentials("bob", "hunter2");
    let url = socks.url("socks5h").replace("://", "://bob:hunter2@");
    round_trip(wss(&certs, port).proxy(url)).await;
    let requests = socks.requests();
    assert_eq!(requests[0].target, SocksTarget::Domain(TARGET_NAME.into()));
    assert_eq!(requests[0].user.as_deref(), Some("bob"));
    // Wrong credentials: a SOCKS error naming the proxy.
    let wrong = socks.url("socks5h").replace("://", "://bob:nope@");
    let e = connect_error(wss(&certs, port).proxy(wrong)).await;
    assert!(
        matches!(&e, Error::Proxy(ProxyError::Socks { .. })),
        "{e:?}"
    );
    assert!(e.to_string().contains(&socks.url("socks5h")), "{e}");
}

//! Interoperability with real peers: Python `websockets` and Node `ws`
//! (the programs in `tests/peers/`).
//!
//! - our server ← their client batteries, compression on and off, ws and
//!   wss;
//! - our client → their echo servers: every size, fragmentation, ping,
//!   close codes, compression on and off, and wss with a custom root;
//! - TLS failures: unknown CA, wrong host name.
//!
//! Environment: `DUPLEX_PYTHON` (a python with `websockets`),
//! `DUPLEX_NODE_MODULES` (a `node_modules` with `ws`), `DUPLEX_PEERS_DIR`
//! (default `<workspace>/tests/peers`). Without them the tests look for
//! `<workspace>/.venv-test` and `tests/peers/node_modules`. A missing peer
//! skips its test with a loud message, or fails it when
//! `DUPLEX_REQUIRE_PEERS=1`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::peers::{Peer, PeerCmd};
use common::*;
use duplex::{ClientBuilder, CloseCode, CloseFrame, Config, Error, Message, Server};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;

/// The bound of one battery run or one peer check.
const PEER_RUN: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------
// Certificates

/// A test CA and, signed by it, a certificate for `names`; the files live
/// in a temporary directory removed on drop.
struct Certs {
    dir: PathBuf,
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

impl Certs {
    fn new(names: &[&str]) -> Certs {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "duplex test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, names[0].as_str());
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca).unwrap();
        let dir = std::env::temp_dir().join(format!(
            "duplex-interop-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let certs = Certs {
            dir,
            ca_pem: ca.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        };
        std::fs::write(certs.ca_file(), &certs.ca_pem).unwrap();
        std::fs::write(certs.cert_file(), &certs.cert_pem).unwrap();
        std::fs::write(certs.key_file(), &certs.key_pem).unwrap();
        certs
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    fn cert_file(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }
    fn key_file(&self) -> PathBuf {
        self.dir.join("key.pem")
    }

    fn server_config(&self) -> std::sync::Arc<rustls::ServerConfig> {
        duplex::tls::server_config(self.cert_pem.as_bytes(), self.key_pem.as_bytes())
            .expect("a TLS server configuration")
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------------------
// (a) our server ← their client batteries

/// Runs a peer's client battery against `url`; panics with its output when
/// it fails.
async fn run_battery(peer: &PeerCmd, url: &str, compression: &str, ca: Option<&Path>) {
    let mut cmd = peer.command("battery");
    cmd.arg(url).args(["--compression", compression]);
    if let Some(ca) = ca {
        cmd.arg("--ca").arg(ca);
    }
    let what = format!(
        "{:?} battery against {url} (compression {compression})",
        peer.peer
    );
    let output = within(PEER_RUN, &what, cmd.output())
        .await
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(summary.starts_with("summary:"), "{what}: {stdout}");
    eprintln!("{what}: {summary}");
}

async fn our_server_against_battery(peer: Peer) {
    let Some(cmd) = PeerCmd::find(peer).await else {
        return;
    };
    // Compression: the server accepts it; the battery offers it or not.
    let running = Running::start(Server::new().route("/echo", echo)).await;
    let url = running.url("/echo");
    run_battery(&cmd, &url, "on", None).await;
    run_battery(&cmd, &url, "off", None).await;
    running.wait_idle(STEP).await;
    running.stop().await;

    // A server with compression off and a battery that does not offer it.
    let server = Server::new()
        .config(Config {
            deflate: None,
            ..Config::default()
        })
        .route("/echo", echo);
    let running = Running::start(server).await;
    run_battery(&cmd, &running.url("/echo"), "off", None).await;
    running.stop().await;
}

async fn our_tls_server_against_battery(peer: Peer) {
    let Some(cmd) = PeerCmd::find(peer).await else {
        return;
    };
    let certs = Certs::new(&["localhost", "127.0.0.1"]);
    let server = Server::new()
        .tls(certs.server_config())
        .route("/echo", echo);
    let running = Running::start(server).await;
    let url = format!("wss://127.0.0.1:{}/echo", running.addr.port());
    run_battery(&cmd, &url, "on", Some(&certs.ca_file())).await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_server_with_python_client_battery() {
    our_server_against_battery(Peer::Python).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_server_with_node_client_battery() {
    our_server_against_battery(Peer::Node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_wss_server_with_python_client_battery() {
    our_tls_server_against_battery(Peer::Python).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_wss_server_with_node_client_battery() {
    our_tls_server_against_battery(Peer::Node).await;
}

// ---------------------------------------------------------------------------
// (b) our client → their echo servers

/// A peer echo server, stopped on drop.
struct PeerServer {
    child: Child,
    port: u16,
}

impl PeerServer {
    async fn start(cmd: &PeerCmd, compression: &str, tls: Option<&Certs>) -> PeerServer {
        let mut command = cmd.command("echo_server");
        command.args(["--port", "0", "--compression", compression]);
        if let Some(certs) = tls {
            command
                .arg("--tls-cert")
                .arg(certs.cert_file())
                .arg("--tls-key")
                .arg(certs.key_file());
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the peer echo server");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = within(
            STEP,
            "the peer server's `listening PORT` line",
            lines.next_line(),
        )
        .await
        .expect("read the peer server's stdout")
        .expect("the peer server printed nothing");
        let port = line
            .strip_prefix("listening ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        // Keep draining stdout so the peer never blocks on it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        PeerServer { child, port }
    }

    async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = within(STEP, "the peer server to exit", self.child.wait()).await;
    }
}

const SIZES: [usize; 7] = [0, 1, 125, 126, 65535, 65536, 16 << 20];

/// Every check of our client against an echo server at `url`.
async fn client_checks(url: &str, config: Config, expect_compressed: bool, what: &str) {
    let builder = ClientBuilder::new(url).config(config.clone());
    let mut ws = builder
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{what}: connect: {e}"));
    assert_eq!(
        ws.is_compressed(),
        expect_compressed,
        "{what}: compression negotiated"
    );
    for (i, size) in SIZES.into_iter().enumerate() {
        for message in [
            Message::text(text_of(size, i as u64)),
            Message::binary(binary_of(size, i as u64)),
        ] {
            ws.send(message.clone()).await.unwrap();
            let back = ws.recv().await.expect("an echo").unwrap();
            assert!(
                back == message,
                "{what}: a {} message of {size} bytes came back different ({} bytes)",
                if matches!(message, Message::Text(_)) {
                    "text"
                } else {
                    "binary"
                },
                back.len()
            );
        }
    }
    // Ping: the peer answers with a pong carrying the same payload.
    ws.send(Message::Ping("are you there?".into()))
        .await
        .unwrap();
    assert_eq!(
        ws.recv().await.unwrap().unwrap(),
        Message::Pong("are you there?".into()),
        "{what}: pong"
    );
    // A normal close: the peer echoes 1000.
    ws.close(None).await.unwrap();
    assert_eq!(ws.close_code(), CloseCode::Normal, "{what}: close 1000");
    assert!(ws.recv().await.is_none());

    // Fragmented messages (frames of at most 1000 bytes).
    let fragmenting = ClientBuilder::new(url).config(Config {
        max_send_frame_size: Some(1000),
        ..config
    });
    let mut ws = fragmenting.connect().await.unwrap();
    for message in [
        Message::text(text_of(10_000, 42)),
        Message::binary(binary_of(5_555, 43)),
    ] {
        ws.send(message.clone()).await.unwrap();
        assert!(
            ws.recv().await.unwrap().unwrap() == message,
            "{what}: a fragmented message came back different"
        );
    }
    // Close with an application code and a reason: echoed back.
    ws.close(Some(CloseFrame::new(CloseCode::Other(4000), "custom ✓")))
        .await
        .unwrap();
    assert_eq!(
        ws.close_code(),
        CloseCode::Other(4000),
        "{what}: close 4000"
    );
}

async fn our_client_against_peer_server(peer: Peer) {
    let Some(cmd) = PeerCmd::find(peer).await else {
        return;
    };
    for (server_compression, client_offers, expect) in [
        ("on", true, true),
        ("on", false, false),
        ("off", true, false),
    ] {
        let server = PeerServer::start(&cmd, server_compression, None).await;
        let url = format!("ws://127.0.0.1:{}/", server.port);
        let what = format!(
            "{peer:?} echo server (compression {server_compression}, client offers: {client_offers})"
        );
        let config = Config {
            deflate: if client_offers {
                Config::default().deflate
            } else {
                None
            },
            ..Config::default()
        };
        within(PEER_RUN, &what, client_checks(&url, config, expect, &what)).await;
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_with_python_echo_server() {
    our_client_against_peer_server(Peer::Python).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_with_node_echo_server() {
    our_client_against_peer_server(Peer::Node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_with_python_wss_echo_server() {
    let Some(cmd) = PeerCmd::find(Peer::Python).await else {
        return;
    };
    let certs = Certs::new(&["localhost", "127.0.0.1"]);
    let server = PeerServer::start(&cmd, "on", Some(&certs)).await;
    within(PEER_RUN, "wss echo", async {
        let builder = ClientBuilder::new(format!("wss://127.0.0.1:{}/", server.port))
            .add_root_certificates_pem(certs.ca_pem.as_bytes())
            .unwrap();
        let mut ws = builder.connect().await.expect("wss connect");
        assert!(ws.is_compressed());
        for message in [
            Message::text("hello over TLS ✓"),
            Message::binary(binary_of(70_000, 1)),
            Message::text(text_of(1 << 20, 2)),
        ] {
            ws.send(message.clone()).await.unwrap();
            assert!(ws.recv().await.unwrap().unwrap() == message);
        }
        ws.close(None).await.unwrap();
        assert_eq!(ws.close_code(), CloseCode::Normal);

        // By host name too (the certificate names localhost).
        let builder = ClientBuilder::new(format!("wss://localhost:{}/", server.port))
            .add_root_certificates_pem(certs.ca_pem.as_bytes())
            .unwrap();
        let mut ws = builder.connect().await.expect("wss connect by name");
        ws.send("by name").await.unwrap();
        assert_eq!(ws.recv().await.unwrap().unwrap(), Message::text("by name"));
        ws.close(None).await.unwrap();
    })
    .await;
    server.stop().await;
}

// ---------------------------------------------------------------------------
// (c) TLS failures

#[tokio::test]
async fn tls_with_an_unknown_ca_fails_clearly() {
    let certs = Certs::new(&["localhost", "127.0.0.1"]);
    let server = Server::new()
        .tls(certs.server_config())
        .route("/echo", echo);
    let running = Running::start(server).await;
    let url = format!("wss://127.0.0.1:{}/echo", running.addr.port());
    // No extra root: the test CA is unknown.
    match within(STEP, "connect", duplex::connect(&url)).await {
        Err(Error::Tls(why)) => {
            let lower = why.to_string().to_lowercase();
            assert!(
                lower.contains("unknownissuer")
                    || lower.contains("unknown issuer")
                    || lower.contains("certificate"),
                "the error does not say what is wrong: {why:?}"
            );
            eprintln!("unknown CA: {}", Error::Tls(why));
        }
        other => panic!("expected Error::Tls, got {other:?}"),
    }
    // Another CA than the server's.
    let other = Certs::new(&["localhost"]);
    let result = ClientBuilder::new(&url)
        .add_root_certificates_pem(other.ca_pem.as_bytes())
        .unwrap()
        .connect()
        .await;
    assert!(
        matches!(result, Err(Error::Tls(_))),
        "expected Error::Tls, got {result:?}"
    );
    // The right CA works.
    let mut ws = ClientBuilder::new(&url)
        .add_root_certificates_pem(certs.ca_pem.as_bytes())
        .unwrap()
        .connect()
        .await
        .expect("the right CA is accepted");
    ws.send("ok").await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::text("ok"));
    ws.close(None).await.unwrap();
    running.stop().await;
}

#[tokio::test]
async fn tls_with_a_wrong_host_name_fails_clearly() {
    let certs = Certs::new(&["example.test"]);
    let server = Server::new()
        .tls(certs.server_config())
        .route("/echo", echo);
    let running = Running::start(server).await;
    let url = format!("wss://localhost:{}/echo", running.addr.port());
    let result = within(
        STEP,
        "connect",
        ClientBuilder::new(&url)
            .add_root_certificates_pem(certs.ca_pem.as_bytes())
            .unwrap()
            .connect(),
    )
    .await;
    match result {
        Err(Error::Tls(why)) => {
            let lower = why.to_string().to_lowercase();
            assert!(
                lower.contains("notvalidforname")
                    || lower.contains("not valid for name")
                    || lower.contains("name"),
                "the error does not say the name is wrong: {why:?}"
            );
            eprintln!("wrong name: {}", Error::Tls(why));
        }
        other => panic!("expected Error::Tls, got {other:?}"),
    }
    running.stop().await;
}

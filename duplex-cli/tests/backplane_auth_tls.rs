//! The backplane's connection settings against a real `redis-server`: a
//! password in the URL, and `rediss://` (TLS) with the server's CA given
//! by `--redis-ca`. In each case two nodes chat across Redis; with a wrong
//! password or an unknown CA the node says `down` and its local members
//! still chat.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::chat::ChatClient;
use common::node::Node;
use common::redis::{free_port, RedisServer};
use common::traffic::blocking;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

const STEP: Duration = Duration::from_secs(15);

/// Two members on `a` and one on `b` each send 50 messages; each member
/// gets all of the others' in order. `cross`: whether b's member is
/// expected to hear a's (false when a is cut off from Redis).
async fn chat(a: &Node, b: &Node, room: &str, cross: bool) {
    let base = |n: &Node| format!("ws://{}", n.addr());
    let mut a1 = ChatClient::join(&base(a), 0, room, "a1").await;
    let mut a2 = ChatClient::join(&base(a), 0, room, "a2").await;
    let mut b1 = ChatClient::join(&base(b), 1, room, "b1").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for client in [&mut a1, &mut a2, &mut b1] {
        client.send_numbered(50).await;
    }
    assert!(
        a2.wait_until(STEP, |i| i.count_from("a1") == 50).await,
        "local delivery on a"
    );
    if cross {
        assert!(
            b1.wait_until(STEP, |i| i.count_from("a1") == 50
                && i.count_from("a2") == 50)
                .await
        );
        assert!(a1.wait_until(STEP, |i| i.count_from("b1") == 50).await);
    } else {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(b1.inbox(|i| i.count_from("a1")), 0);
    }
    let members: Vec<String> = ["a1", "a2", "b1"].iter().map(|s| s.to_string()).collect();
    for client in [&a1, &a2, &b1] {
        client.assert_clean(&members);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_in_the_url_is_used() {
    let Some(redis) = blocking(RedisServer::start) else {
        return;
    };
    redis.command(&["CONFIG", "SET", "requirepass", "s3cret"]);
    let url = format!("redis://:s3cret@{}", redis.addr());
    let (a, b, wrong) = blocking(|| {
        let a = Node::start(&url, "a", &[]);
        let b = Node::start(&url, "b", &[]);
        let wrong = Node::start(&format!("redis://:nope@{}", redis.addr()), "w", &[]);
        a.wait_status("up", STEP);
        b.wait_status("up", STEP);
        (a, b, wrong)
    });
    chat(&a, &b, "pw", true).await;
    // A wrong password: down, and local delivery is unaffected.
    assert_eq!(blocking(|| wrong.stats()).status, "down");
    chat(&wrong, &b, "pw2", false).await;
}

/// A CA and a certificate for 127.0.0.1 and localhost, written to files.
struct Certs {
    dir: PathBuf,
}

impl Certs {
    fn new() -> Certs {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "duplex redis test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca).unwrap();
        let dir = std::env::temp_dir().join(format!("duplex-redis-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
        Certs { dir }
    }

    fn file(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_with_the_servers_ca() {
    let certs = Certs::new();
    let tls_port = free_port(false).to_string();
    let (cert, key, ca) = (
        certs.file("cert.pem"),
        certs.file("key.pem"),
        certs.file("ca.pem"),
    );
    let extra = [
        "--tls-port",
        &tls_port,
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "--tls-ca-cert-file",
        &ca,
        "--tls-auth-clients",
        "no",
    ];
    let Some(_redis) = blocking(|| RedisServer::start_with(&extra, false)) else {
        return;
    };
    let url = format!("rediss://localhost:{tls_port}");
    let (a, b, untrusted) = blocking(|| {
        let a = Node::start(&url, "a", &["--redis-ca", &ca]);
        let b = Node::start(&url, "b", &["--redis-ca", &ca]);
        // Without the CA the certificate is not trusted: down.
        let untrusted = Node::start(&url, "u", &[]);
        a.wait_status("up", STEP);
        b.wait_status("up", STEP);
        (a, b, untrusted)
    });
    chat(&a, &b, "tls", true).await;
    assert_eq!(blocking(|| untrusted.stats()).status, "down");
}

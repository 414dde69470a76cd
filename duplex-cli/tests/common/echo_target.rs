//! The target of the proxy tests: a library echo server on 127.0.0.1,
//! over TLS with a test certificate when asked.
#![allow(dead_code)]

use std::time::Duration;

use duplex::Server;

use super::certs::TestCerts;
use super::{lib_server, LibServer};

/// An echo server at `/echo` (same type back), `wss://` with `certs`.
pub fn echo_target(certs: Option<&TestCerts>) -> LibServer {
    let mut server = Server::new().route("/echo", |mut ws, _req| async move {
        while let Some(Ok(message)) = ws.recv().await {
            if message.is_data() && ws.send(message).await.is_err() {
                break;
            }
        }
    });
    if let Some(certs) = certs {
        let config = duplex::tls::server_config(&certs.read("cert.pem"), &certs.read("key.pem"))
            .expect("test TLS config");
        server = server.tls(config);
    }
    lib_server(server, Duration::from_secs(10))
}

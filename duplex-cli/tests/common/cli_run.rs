//! Running the `duplex` binary in the client-mode tests (connect, listen,
//! bench): the binary's path, one run with its whole output, a plain and
//! a TLS `duplex serve`, test certificates, and a tiny HTTP server that
//! answers upgrade requests with canned responses (refusals, redirects,
//! silence) and records what it was sent.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{wait_for_exit, Process};

/// The `duplex` binary: `DUPLEX_BIN` when set (to test an installed one),
/// else the one cargo built for these tests.
pub fn bin() -> String {
    std::env::var("DUPLEX_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_duplex").to_string())
}

/// A finished run of `duplex`.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The stdout lines.
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    /// Each stdout line parsed as JSON.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
            .collect()
    }

    /// Asserts exit status 0.
    pub fn assert_ok(&self) -> &Run {
        assert!(self.status.success(), "expected success: {self:#?}");
        self
    }

    /// Asserts a failure (exit 1) with one stderr line containing
    /// `needle`; returns that line.
    pub fn assert_fails_with(&self, needle: &str) -> String {
        assert_eq!(self.status.code(), Some(1), "expected exit 1: {self:#?}");
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "expected one stderr line: {self:#?}");
        assert!(
            lines[0].contains(needle),
            "stderr {:?} does not contain {needle:?}",
            lines[0]
        );
        lines[0].to_string()
    }
}

/// Runs `duplex ARGS` with `input` on stdin, closed after it; waits at
/// most `limit` for the exit (the process is killed if it overruns).
pub fn run(args: &[&str], input: &str, limit: Duration) -> Run {
    let mut child = Command::new(bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start duplex");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_string();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = wait_for_exit(&mut child, limit);
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "duplex {args:?} did not exit within {limit:?}; stderr: {}",
            err.join().unwrap()
        );
    };
    let _ = writer.join();
    Run {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// A `duplex serve` on a free port, with `extra` arguments; its address.
pub fn serve(extra: &[&str]) -> (Process, String) {
    let mut command = Command::new(bin());
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra);
    let (process, line_addr) = start_serve_any(command);
    (process, line_addr)
}

/// Like `start_serve`, accepting a `wss://` listening line too.
fn start_serve_any(mut command: Command) -> (Process, String) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start duplex serve");
    let stdout = super::lines_of(child.stdout.take().unwrap());
    let stderr = super::lines_of(child.stderr.take().unwrap());
    let process = Process { child, stderr };
    let line = stdout
        .recv_timeout(Duration::from_secs(20))
        .expect("a listening line");
    let addr = line
        .strip_prefix("listening on ws://")
        .or_else(|| line.strip_prefix("listening on wss://"))
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    (process, addr)
}

/// Test certificates in a temporary directory: `ca.pem` (a CA),
/// `cert.pem`/`key.pem` (a server certificate for localhost and 127.0.0.1
/// signed by it), `ca-key.pem` (the CA's key, to serve the CA certificate
/// itself as a server's, which a client must refuse).
pub struct Certs {
    pub dir: PathBuf,
}

impl Certs {
    pub fn new(tag: &str) -> Certs {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
            KeyUsagePurpose,
        };
        let mut ca_params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "duplex test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate().unwrap();
        let ca_key_pem = ca_key.serialize_pem();
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
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
        let dir = std::env::temp_dir().join(format!("duplex-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.join("ca-key.pem"), ca_key_pem).unwrap();
        std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
        Certs { dir }
    }

    /// The path of one of the files.
    pub fn file(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// How the stub answers one request head: bytes to write before closing,
/// or `None` to stay silent (the connection is held open).
pub type Answer = Arc<dyn Fn(&str) -> Option<Vec<u8>> + Send + Sync>;

/// A tiny HTTP server on a thread: reads each request head, answers it
/// with [`Answer`], and records the heads. Stops when dropped.
pub struct HttpStub {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl HttpStub {
    pub fn start(answer: impl Fn(&str) -> Option<Vec<u8>> + Send + Sync + 'static) -> HttpStub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let answer: Answer = Arc::new(answer);
        let (recorded, stopping) = (requests.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut held: Vec<TcpStream> = Vec::new();
            while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
                match listener.accept() {
                    Ok((tcp, _)) => {
                        tcp.set_nonblocking(false).unwrap();
                        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                        let head = read_head(&tcp);
                        recorded.lock().unwrap().push(head.clone());
                        match answer(&head) {
                            Some(bytes) => {
                                let mut tcp = tcp;
                                let _ = tcp.write_all(&bytes);
                                let _ = tcp.shutdown(std::net::Shutdown::Write);
                                held.push(tcp);
                            }
                            None => held.push(tcp),
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        HttpStub {
            addr,
            requests,
            stop,
        }
    }

    /// How many requests arrived.
    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

impl Drop for HttpStub {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The request head (up to the blank line), or what arrived before the
/// peer stopped sending.
fn read_head(tcp: &TcpStream) -> String {
    let mut reader = BufReader::new(tcp);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let end = line == "\r\n";
                head.push_str(&line);
                if end {
                    break;
                }
            }
        }
    }
    head
}

/// An HTTP response with `status`, extra header lines and `body`.
pub fn response(status: &str, headers: &[&str], body: &str) -> Vec<u8> {
    let mut text = format!("HTTP/1.1 {status}\r\n");
    for header in headers {
        text.push_str(header);
        text.push_str("\r\n");
    }
    text.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    text.into_bytes()
}

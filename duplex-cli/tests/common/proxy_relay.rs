//! What the in-test proxies share: an accept loop on a thread (stopped
//! when dropped), reading a byte-counted piece of a socket, and relaying
//! bytes both ways. Every tunnel goes to 127.0.0.1, whatever name the
//! client asked for: tests never reach anywhere else.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// A listener on a free port of 127.0.0.1 whose connections each get a
/// thread running `handle`.
pub struct AcceptLoop {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl AcceptLoop {
    pub fn start(handle: impl Fn(TcpStream) + Send + Sync + 'static) -> AcceptLoop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let handle = Arc::new(handle);
        let thread = std::thread::spawn({
            let stop = stop.clone();
            move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let handle = handle.clone();
                    std::thread::spawn(move || {
                        // A client that goes silent does not hold a thread forever.
                        let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
                        handle(stream)
                    });
                }
            }
        });
        AcceptLoop {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for AcceptLoop {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept call up.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads up to and including `\r\n\r\n`, byte by byte, at most `limit`
/// bytes.
pub fn read_head(stream: &mut TcpStream, limit: usize) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= limit || stream.read_exact(&mut byte).is_err() {
            return None;
        }
        head.push(byte[0]);
    }
    Some(head)
}

/// Connects to 127.0.0.1:`port`: the only place a test tunnel goes.
pub fn connect_local(port: u16) -> std::io::Result<TcpStream> {
    TcpStream::connect(("127.0.0.1", port))
}

/// Copies bytes both ways until both sides are done.
pub fn relay(client: TcpStream, target: TcpStream) {
    let _ = client.set_read_timeout(None);
    let (Ok(client2), Ok(target2)) = (client.try_clone(), target.try_clone()) else {
        return;
    };
    let up = std::thread::spawn(move || copy(client, target));
    copy(target2, client2);
    let _ = up.join();
}

fn copy(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

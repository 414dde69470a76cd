//! Frames that only claim to be huge: a length of 2^62 is refused with
//! 1009 at once, and frames claiming 60 MiB that never arrive do not make
//! the server reserve that memory (the resident set stays put).

mod common;

use std::net::SocketAddr;

use common::battery::frames::huge_length;
use common::battery::*;
use common::*;

/// A frame just under the limit that never arrives: the server must not
/// reserve its claimed size up front either.
async fn claimed_but_never_sent(addr: SocketAddr) {
    let before = rss_bytes();
    let mut clients = Vec::new();
    for _ in 0..8 {
        let mut client = RawClient::open(addr, "/echo").await;
        let mut bytes = frame_header(0x82, 60 << 20, Some([1, 2, 3, 4]));
        bytes.extend_from_slice(&[0u8; 100]);
        client.send(&bytes).await;
        clients.push(client);
    }
    // Make sure the server has read the headers: a ping on a fresh
    // connection is answered after the earlier connections were accepted.
    let mut probe = RawClient::open(addr, "/echo").await;
    probe.send(&masked(0x89, b"probe")).await;
    let pong = within(STEP, "pong", probe.read_frame()).await.unwrap();
    assert_eq!((pong.opcode, pong.payload.as_slice()), (0xA, &b"probe"[..]));
    let grown = rss_bytes().saturating_sub(before);
    assert!(
        grown < 8 << 20,
        "RSS grew by {} KiB for 8 frames claiming 60 MiB each",
        grown >> 10
    );
    drop(clients);
}

#[tokio::test]
async fn huge_claimed_lengths_are_not_allocated() {
    let running = Running::start(server()).await;
    huge_length(running.addr).await;
    claimed_but_never_sent(running.addr).await;
    assert_still_serving_then_stop(running).await;
}

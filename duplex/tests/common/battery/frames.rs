//! Frame cases after a good handshake: bad frames and the close code each
//! must get, invalid UTF-8 caught before its message is complete, and a
//! frame header claiming 2^62 bytes.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{named, Case, CLOSE_BOUND};
use crate::common::{
    apply_mask, close_payload, frame, frame_header, masked, rss_bytes, RawClient, STEP,
};

struct FrameCase {
    name: String,
    frames: Vec<Vec<u8>>,
    code: u16,
}

fn fc(name: impl Into<String>, frames: Vec<Vec<u8>>, code: u16) -> FrameCase {
    FrameCase {
        name: name.into(),
        frames,
        code,
    }
}

fn frame_cases() -> Vec<FrameCase> {
    let mut cases = vec![
        fc("unmasked frame", vec![frame(0x81, b"hello", None)], 1002),
        fc("reserved opcode 3", vec![masked(0x83, b"x")], 1002),
        fc("reserved opcode 0xB", vec![masked(0x8B, b"")], 1002),
        fc("RSV2 set", vec![masked(0xA1, b"x")], 1002),
        fc("RSV3 set", vec![masked(0x91, b"x")], 1002),
        fc("RSV1 without compression", vec![masked(0xC1, b"x")], 1002),
        fc(
            "ping with a 126-byte payload",
            vec![masked(0x89, &[b'p'; 126])],
            1002,
        ),
        fc("fragmented ping", vec![masked(0x09, b"p")], 1002),
        fc(
            "continuation without a start",
            vec![masked(0x80, b"x")],
            1002,
        ),
        fc(
            "new text frame inside a fragmented message",
            vec![masked(0x01, b"part"), masked(0x81, b"new")],
            1002,
        ),
        fc(
            "new binary frame inside a fragmented message",
            vec![masked(0x02, b"part"), masked(0x82, b"new")],
            1002,
        ),
        fc("invalid UTF-8 text", vec![masked(0x81, b"abc\xff")], 1007),
        fc(
            "surrogate in UTF-8 text",
            vec![masked(0x81, b"\xed\xa0\x80")],
            1007,
        ),
        fc("1-byte close payload", vec![masked(0x88, &[0x03])], 1002),
        fc(
            "close reason invalid UTF-8",
            vec![masked(0x88, &close_payload(1000, b"bye \xff"))],
            1007,
        ),
        fc(
            "64-bit length with the top bit set",
            vec![frame_header(0x82, 1 << 63, Some([1, 2, 3, 4]))],
            1002,
        ),
    ];
    for code in [0u16, 999, 1004, 1005, 1006, 1016, 2999, 5000] {
        cases.push(fc(
            format!("close code {code}"),
            vec![masked(0x88, &close_payload(code, b""))],
            1002,
        ));
    }
    cases
}

async fn check_frame_case(addr: SocketAddr, case: FrameCase) {
    let mut client = RawClient::open(addr, "/echo").await;
    for f in &case.frames {
        client.send_lenient(f).await;
    }
    let (close, before) = client.expect_close(STEP).await;
    assert_eq!(
        close.close_code(),
        case.code,
        "wrong close code (reason {:?})",
        close.close_reason()
    );
    assert!(
        before.is_empty(),
        "unexpected frames before the close: {before:?}"
    );
    client.expect_eof(CLOSE_BOUND).await;
}

pub fn frame_battery(addr: SocketAddr) -> Vec<Case> {
    frame_cases()
        .into_iter()
        .map(|case| named(format!("frame {}", case.name), check_frame_case(addr, case)))
        .collect()
}

/// Invalid UTF-8 split over two fragments fails as soon as the bad byte
/// arrives: the close comes before the final fragment is sent.
pub async fn utf8_across_fragments(addr: SocketAddr) {
    let mut client = RawClient::open(addr, "/echo").await;
    // "ab" + the lead byte of a 2-byte sequence ...
    client.send(&masked(0x01, b"ab\xce")).await;
    // ... then a byte that cannot continue it, in a non-final fragment.
    client.send(&masked(0x00, b"\x28cd")).await;
    let (close, before) = client.expect_close(STEP).await;
    assert_eq!(
        close.close_code(),
        1007,
        "reason {:?}",
        close.close_reason()
    );
    assert!(before.is_empty(), "unexpected frames: {before:?}");
    client.expect_eof(CLOSE_BOUND).await;
    // The final fragment was never needed; sending it now must not matter.
    client.send_lenient(&masked(0x80, b"end")).await;
}

/// Invalid UTF-8 inside one frame fails before the frame is complete.
pub async fn utf8_inside_an_unfinished_frame(addr: SocketAddr) {
    let mut client = RawClient::open(addr, "/echo").await;
    let key = [9, 8, 7, 6];
    let mut bytes = frame_header(0x81, 1000, Some(key));
    let start = bytes.len();
    bytes.extend_from_slice(b"ok\xff");
    apply_mask(&mut bytes[start..], key);
    client.send(&bytes).await;
    let (close, _) = client.expect_close(STEP).await;
    assert_eq!(
        close.close_code(),
        1007,
        "reason {:?}",
        close.close_reason()
    );
    client.expect_eof(CLOSE_BOUND).await;
}

/// A frame claiming 2^62 bytes is refused with 1009 at once, without
/// allocating what the header claims.
pub async fn huge_length(addr: SocketAddr) {
    let before = rss_bytes();
    let mut client = RawClient::open(addr, "/echo").await;
    let mut bytes = frame_header(0x82, 1 << 62, Some([1, 2, 3, 4]));
    bytes.extend_from_slice(&[0u8; 1024]);
    let start = Instant::now();
    client.send_lenient(&bytes).await;
    let (close, _) = client.expect_close(Duration::from_secs(1)).await;
    let waited = start.elapsed();
    assert_eq!(
        close.close_code(),
        1009,
        "reason {:?}",
        close.close_reason()
    );
    assert!(waited < Duration::from_secs(1), "the close took {waited:?}");
    client.expect_eof(CLOSE_BOUND).await;
    let grown = rss_bytes().saturating_sub(before);
    assert!(
        grown < 4 << 20,
        "RSS grew by {} KiB on a frame that only claimed to be huge",
        grown >> 10
    );
}

/// The two invalid UTF-8 cases of [`utf8_across_fragments`] and
/// [`utf8_inside_an_unfinished_frame`].
pub fn utf8_cases(addr: SocketAddr) -> Vec<Case> {
    vec![
        named("UTF-8 across fragments", utf8_across_fragments(addr)),
        named(
            "UTF-8 inside an unfinished frame",
            utf8_inside_an_unfinished_frame(addr),
        ),
    ]
}

/// The cases that are not a fixed list of frames.
pub fn special_cases(addr: SocketAddr) -> Vec<Case> {
    let mut cases = utf8_cases(addr);
    cases.push(named("huge length", huge_length(addr)));
    cases
}

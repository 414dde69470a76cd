//! The permessage-deflate decompressor under a size limit, on arbitrary
//! compressed messages.
//!
//! Input: a flags byte (bit 0: the peer resets its compressor after each
//! message, so ours resets too), a byte picking the limit, two bytes
//! seeding the frame splits and one bounding them (see [`Cuts`]), then the
//! messages, each as a two-byte little-endian length and its bytes.
//!
//! Checked, message after message on the same three decompressors: the
//! output never grows past the limit + 1 bytes; cutting a message into
//! frames (empty ones included) changes nothing, neither the output nor
//! the error; and the limit only cuts: a message that inflates to N bytes
//! without a limit gives the same bytes when N is within the limit and
//! `TooBig` when not, and a message that is invalid without a limit is an
//! error under one too.

use bytes::BytesMut;
use duplex_proto::deflate::{DeflateConfig, DeflateError, DeflateParams, PerMessageDeflate};
use duplex_proto::Role;

use super::input::{Cuts, Input};

/// The limits, around the sizes where the decompressor changes its steps
/// (its first output chunk of 256 bytes, its 32 KiB chunks and window).
const LIMITS: [usize; 10] = [
    0,
    1,
    5,
    255,
    256,
    1000,
    (32 << 10) - 1,
    32 << 10,
    100_000,
    1 << 20,
];
/// "No limit": more than any input here can inflate to.
const UNLIMITED: usize = 1 << 30;

/// A decompressor's result, with the error's kind only (zlib's message
/// text is not part of the contract).
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Ok(Vec<u8>),
    TooBig,
    Corrupt,
}

fn decompress(codec: &mut PerMessageDeflate, frames: &[&[u8]], limit: usize) -> Outcome {
    let mut out = BytesMut::new();
    let last = frames.len().saturating_sub(1);
    // A message has at least one frame, which may be empty.
    let frames: &[&[u8]] = if frames.is_empty() { &[&[]] } else { frames };
    for (i, frame) in frames.iter().enumerate() {
        let result = codec.decompress(frame, i == last, &mut out, limit);
        assert!(
            out.len() <= limit.saturating_add(1),
            "{} bytes out under a limit of {limit}",
            out.len()
        );
        match result {
            Ok(()) => {}
            Err(DeflateError::TooBig) => return Outcome::TooBig,
            Err(DeflateError::Corrupt(_)) => return Outcome::Corrupt,
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    Outcome::Ok(out.to_vec())
}

/// The harness.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.byte();
    let limit = LIMITS[usize::from(input.byte()) % LIMITS.len()];
    let mut cuts = Cuts::new(input.u16(), input.byte(), true);
    // The peer's no-context-takeover: we receive as a client, so the
    // server's flag.
    let params = DeflateParams {
        server_no_context_takeover: flags & 1 != 0,
        ..DeflateParams::default()
    };
    let codec = || PerMessageDeflate::new(Role::Client, params, &DeflateConfig::default());
    let (mut whole, mut split, mut unlimited) = (codec(), codec(), codec());
    while !input.is_empty() {
        let len = usize::from(input.u16());
        let message = input.bytes(len);
        let outcome = decompress(&mut whole, &[message], limit);
        let frames = cuts.split(message);
        assert_eq!(
            decompress(&mut split, &frames, limit),
            outcome,
            "split into {} frames",
            frames.len()
        );
        match decompress(&mut unlimited, &[message], UNLIMITED) {
            Outcome::Ok(full) if full.len() <= limit => assert_eq!(outcome, Outcome::Ok(full)),
            Outcome::Ok(_) => assert_eq!(outcome, Outcome::TooBig),
            Outcome::Corrupt => assert!(!matches!(outcome, Outcome::Ok(_)), "{outcome:?}"),
            Outcome::TooBig => unreachable!("over {UNLIMITED} bytes"),
        }
        // After an error the contexts part ways; the next message would
        // compare different histories.
        if !matches!(outcome, Outcome::Ok(_)) {
            return;
        }
    }
}

//! Unit tests of `permessage-deflate`, by topic, with the helpers they
//! share.

use bytes::BytesMut;

use super::*;
pub(super) use crate::role::Role;

mod codec_tests;
mod negotiation_tests;
mod reference_inflate;
mod round_trip_tests;

// ---- helpers ----------------------------------------------------------

fn params(snct: bool, cnct: bool, sbits: u8, cbits: u8) -> DeflateParams {
    DeflateParams {
        server_no_context_takeover: snct,
        client_no_context_takeover: cnct,
        server_max_window_bits: sbits,
        client_max_window_bits: cbits,
    }
}

fn pair(p: DeflateParams, level: u32) -> (PerMessageDeflate, PerMessageDeflate) {
    let config = DeflateConfig {
        compression_level: level,
        min_size: 0,
        ..DeflateConfig::default()
    };
    (
        PerMessageDeflate::new(Role::Server, p, &config),
        PerMessageDeflate::new(Role::Client, p, &config),
    )
}

fn compress(codec: &mut PerMessageDeflate, payload: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    codec.compress(payload, &mut out);
    out.to_vec()
}

fn decompress(codec: &mut PerMessageDeflate, frames: &[&[u8]]) -> Result<Vec<u8>, DeflateError> {
    let mut out = BytesMut::new();
    for (i, frame) in frames.iter().enumerate() {
        codec.decompress(frame, i + 1 == frames.len(), &mut out, 1 << 24)?;
    }
    Ok(out.to_vec())
}

fn receiver(peer_no_context_takeover: bool) -> PerMessageDeflate {
    // A client whose server resets (or not) after each message.
    pair(params(peer_no_context_takeover, false, 15, 15), 6).1
}

const HELLO: [u8; 7] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];

/// Compresses every message with `tx` and decompresses it with `rx`,
/// splitting the compressed payload into frames of `frame` bytes.
fn round_trip(
    tx: &mut PerMessageDeflate,
    rx: &mut PerMessageDeflate,
    messages: &[Vec<u8>],
    frame: usize,
) {
    let mut wire = BytesMut::new();
    let mut out = BytesMut::new();
    for message in messages {
        wire.clear();
        out.clear();
        tx.compress(message, &mut wire);
        let frames: Vec<&[u8]> = if wire.is_empty() {
            vec![&[]]
        } else {
            wire.chunks(frame).collect()
        };
        for (i, chunk) in frames.iter().enumerate() {
            rx.decompress(chunk, i + 1 == frames.len(), &mut out, message.len())
                .unwrap();
        }
        assert_eq!(&out[..], &message[..]);
    }
}

/// Data of various compressibility from a seed: runs, repeats and noise.
fn sample(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut data = Vec::with_capacity(len);
    while data.len() < len {
        let r = next();
        let run = (r >> 8) as usize % 300 + 1;
        match r % 3 {
            0 => data.extend(std::iter::repeat_n(r as u8, run)),
            1 if !data.is_empty() => {
                let from = (r >> 20) as usize % data.len();
                let n = run.min(data.len() - from);
                data.extend_from_within(from..from + n);
            }
            _ => data.extend((0..run).map(|_| next() as u8)),
        }
    }
    data.truncate(len);
    data
}

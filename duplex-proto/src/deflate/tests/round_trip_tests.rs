//! Round trips over every window and takeover setting, the compression
//! ratio, and 8-bit windows checked with the reference decoder.

use super::reference_inflate;
use super::*;
use crate::deflate::codec::TAIL;

// ---- round trips ------------------------------------------------------

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    #[test]
    fn round_trip_all_windows(
        seed: u64,
        lens in proptest::collection::vec(0usize..200 * 1024, 1..4),
        server_bits in 8u8..=15,
        client_bits in 8u8..=15,
        server_reset: bool,
        client_reset: bool,
        level in 0u32..=9,
        frame in 1usize..70_000,
    ) {
        let p = params(server_reset, client_reset, server_bits, client_bits);
        let messages: Vec<Vec<u8>> = lens
            .iter()
            .enumerate()
            .map(|(i, &len)| sample(seed.wrapping_add(i as u64), len))
            .collect();
        let (mut server, mut client) = pair(p, level);
        // Server to client and client to server, on the same codecs.
        round_trip(&mut server, &mut client, &messages, frame);
        round_trip(&mut client, &mut server, &messages, frame);
        round_trip(&mut server, &mut client, &messages, frame);
    }

    #[test]
    fn small_messages_round_trip(
        messages in proptest::collection::vec(proptest::collection::vec(0u8..4, 0..64), 1..20),
        reset: bool,
    ) {
        let (mut server, mut client) = pair(params(reset, reset, 15, 15), 3);
        round_trip(&mut server, &mut client, &messages, 3);
        round_trip(&mut client, &mut server, &messages, 1);
    }

    #[test]
    fn garbage_never_panics(
        frames in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64), 1..4),
        reset: bool,
        limit in 0usize..4096,
    ) {
        let mut rx = receiver(reset);
        let mut out = BytesMut::new();
        for (i, frame) in frames.iter().enumerate() {
            if rx.decompress(frame, i + 1 == frames.len(), &mut out, limit).is_err() {
                break;
            }
            proptest::prop_assert!(out.len() <= limit);
        }
        proptest::prop_assert!(out.len() <= limit + 1);
        // Whatever happened, a fresh message still decodes.
        let mut rx = receiver(true);
        proptest::prop_assert_eq!(decompress(&mut rx, &[&HELLO]).unwrap(), b"Hello".to_vec());
    }
}

#[test]
fn ratio_sanity() {
    let text =
        "{\"type\":\"chat\",\"room\":\"general\",\"user\":\"alice\",\"text\":\"hello there\"}"
            .repeat(50);
    let (mut server, mut client) = pair(params(false, false, 15, 15), 3);
    let wire = compress(&mut server, text.as_bytes());
    assert!(
        wire.len() < text.len() / 10,
        "{} -> {}",
        text.len(),
        wire.len()
    );
    assert_eq!(decompress(&mut client, &[&wire]).unwrap(), text.as_bytes());
}

// ---- 8-bit windows ----------------------------------------------------
#[test]
fn window_8_streams_stay_within_256_bytes() {
    // An agreed window of 8 is compressed with zlib's 9; every distance
    // must still fit a 256-byte window, across messages too.
    for level in [1, 2, 3, 4, 6, 9] {
        let (mut server, _) = pair(params(false, false, 8, 15), level);
        let mut stream = Vec::new();
        let mut expected = Vec::new();
        for seed in 0..8 {
            let message = sample(seed, 20_000);
            stream.extend_from_slice(&compress(&mut server, &message));
            stream.extend_from_slice(&TAIL);
            expected.extend_from_slice(&message);
        }
        let (decoded, max_dist) = reference_inflate::inflate(&stream).expect("valid deflate");
        assert_eq!(decoded, expected);
        assert!(max_dist > 100, "level {level}: the data should use matches");
        assert!(
            max_dist <= 256,
            "level {level}: distance {max_dist} exceeds an 8-bit window"
        );
    }
    // And for comparison, a 15-bit window does reach further.
    let (mut server, _) = pair(params(false, false, 15, 15), 6);
    let mut stream = compress(&mut server, &sample(1, 20_000));
    stream.extend_from_slice(&TAIL);
    assert!(reference_inflate::inflate(&stream).unwrap().1 > 256);
}

//! The codec: the RFC 7692 §7.2.3 examples, invalid data, size limits and
//! the lazily created zlib states.

use super::*;
use crate::deflate::codec::{write_stored, DECOMPRESS_CHUNK};
use crate::deflate::pool;

// ---- RFC 7692 §7.2.3 examples -----------------------------------------

#[test]
fn rfc_hello_compresses_to_the_example() {
    for level in 1..=9 {
        let (mut server, _) = pair(params(false, false, 15, 15), level);
        assert_eq!(compress(&mut server, b"Hello"), HELLO, "level {level}");
    }
}

#[test]
fn rfc_hello_decompresses_whole_and_fragmented() {
    let mut rx = receiver(false);
    assert_eq!(decompress(&mut rx, &[&HELLO]).unwrap(), b"Hello");
    // §7.2.3.1: the same message split over two frames.
    assert_eq!(
        decompress(&mut rx, &[&HELLO[..3], &HELLO[3..]]).unwrap(),
        b"Hello"
    );
    // Split at every point, including empty frames.
    for cut in 0..=HELLO.len() {
        let mut rx = receiver(true);
        let frames: [&[u8]; 3] = [&HELLO[..cut], &[], &HELLO[cut..]];
        assert_eq!(decompress(&mut rx, &frames).unwrap(), b"Hello", "cut {cut}");
    }
}

#[test]
fn rfc_sharing_the_window() {
    // §7.2.3.2: with context takeover the second "Hello" is a match.
    let second = [0xf2, 0x00, 0x11, 0x00, 0x00];
    for level in 1..=9 {
        let (mut server, mut client) = pair(params(false, false, 15, 15), level);
        assert_eq!(compress(&mut server, b"Hello"), HELLO);
        let shared = compress(&mut server, b"Hello");
        if level >= 2 {
            assert_eq!(shared, second, "level {level}");
        } else {
            // zlib-rs's level 1 writes the same match in its own way.
            assert!(shared.len() <= second.len(), "level 1: {shared:02x?}");
        }
        assert_eq!(decompress(&mut client, &[&HELLO]).unwrap(), b"Hello");
        assert_eq!(decompress(&mut client, &[&shared]).unwrap(), b"Hello");
    }
    let mut rx = receiver(false);
    assert_eq!(decompress(&mut rx, &[&HELLO]).unwrap(), b"Hello");
    assert_eq!(decompress(&mut rx, &[&second]).unwrap(), b"Hello");

    // Without context takeover both messages are the same.
    let (mut server, mut client) = pair(params(true, false, 15, 15), 6);
    assert_eq!(compress(&mut server, b"Hello"), HELLO);
    assert_eq!(compress(&mut server, b"Hello"), HELLO);
    assert_eq!(decompress(&mut client, &[&HELLO]).unwrap(), b"Hello");
    assert_eq!(decompress(&mut client, &[&HELLO]).unwrap(), b"Hello");
    // ...and a receiver that resets cannot decode the shared form.
    let mut rx = receiver(true);
    decompress(&mut rx, &[&HELLO]).unwrap();
    assert!(matches!(
        decompress(&mut rx, &[&second]),
        Err(DeflateError::Corrupt(_))
    ));
}

#[test]
fn rfc_no_compression_block() {
    // §7.2.3.3: a stored block, then the start of the flush block.
    let stored = [
        0x00, 0x05, 0x00, 0xfa, 0xff, b'H', b'e', b'l', b'l', b'o', 0x00,
    ];
    let mut rx = receiver(false);
    assert_eq!(decompress(&mut rx, &[&stored]).unwrap(), b"Hello");
    assert_eq!(
        decompress(&mut rx, &[&[0xf2, 0x00, 0x11, 0x00, 0x00]]).unwrap(),
        b"Hello"
    );
}

#[test]
fn rfc_bfinal_block() {
    // §7.2.3.4: a final block, then the header byte of an empty block.
    let bfinal = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
    let mut rx = receiver(false);
    assert_eq!(decompress(&mut rx, &[&bfinal]).unwrap(), b"Hello");
    // The stream goes on, and with context takeover still sees "Hello".
    assert_eq!(
        decompress(&mut rx, &[&[0xf2, 0x00, 0x11, 0x00, 0x00]]).unwrap(),
        b"Hello"
    );
    assert_eq!(
        decompress(&mut rx, &[&bfinal[..3], &bfinal[3..]]).unwrap(),
        b"Hello"
    );
    assert_eq!(decompress(&mut rx, &[&HELLO]).unwrap(), b"Hello");

    // A message that ends right after the final block (no trailing 00).
    let mut rx = receiver(false);
    assert_eq!(decompress(&mut rx, &[&bfinal[..7]]).unwrap(), b"Hello");
    assert_eq!(
        decompress(&mut rx, &[&[0xf2, 0x00, 0x11, 0x00, 0x00]]).unwrap(),
        b"Hello"
    );
    assert_eq!(decompress(&mut rx, &[&HELLO]).unwrap(), b"Hello");
}

#[test]
fn rfc_two_blocks_in_one_message() {
    // §7.2.3.5: "He" flushed, then "llo".
    let two = [
        0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
    ];
    let mut rx = receiver(false);
    assert_eq!(decompress(&mut rx, &[&two]).unwrap(), b"Hello");
    assert_eq!(
        decompress(&mut rx, &[&two[..5], &two[5..9], &two[9..]]).unwrap(),
        b"Hello"
    );
}

#[test]
fn rfc_empty_message_and_fragment() {
    // §7.2.3.6: an empty message is the single byte 00, with and
    // without context takeover, at the start and after other messages.
    for reset in [false, true] {
        let (mut server, mut client) = pair(params(reset, false, 15, 15), 6);
        assert_eq!(compress(&mut server, b""), [0x00]);
        assert_eq!(compress(&mut server, b""), [0x00]);
        let hello = compress(&mut server, b"Hello");
        assert_eq!(compress(&mut server, b""), [0x00]);
        assert_eq!(decompress(&mut client, &[&[0x00]]).unwrap(), b"");
        assert_eq!(decompress(&mut client, &[&[0x00]]).unwrap(), b"");
        assert_eq!(decompress(&mut client, &[&hello]).unwrap(), b"Hello");
        assert_eq!(decompress(&mut client, &[&[0x00]]).unwrap(), b"");
        // An empty final fragment after a non-empty one.
        let hello = compress(&mut server, b"Hello");
        assert_eq!(decompress(&mut client, &[&hello, &[]]).unwrap(), b"Hello");
    }
}

#[test]
fn corrupt_data_is_an_error() {
    for bad in [
        &[0xff, 0xff, 0xff][..],
        &[0x07],
        &[0x00, 0x05, 0x00, 0x00, 0x00],
    ] {
        let mut rx = receiver(false);
        assert!(
            matches!(decompress(&mut rx, &[bad]), Err(DeflateError::Corrupt(_))),
            "{bad:02x?}"
        );
        // The codec stays usable for a fresh stream.
        assert_eq!(decompress(&mut rx, &[&HELLO]).unwrap(), b"Hello");
    }
    // Data after a final block that does not form blocks itself.
    let mut rx = receiver(false);
    let junk = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0xff, 0xff];
    assert!(decompress(&mut rx, &[&junk]).is_err());
    assert_eq!(
        DeflateError::Corrupt("x".into()).to_string(),
        "invalid compressed data: x"
    );
    assert_eq!(
        DeflateError::TooBig.to_string(),
        "decompressed message exceeds the size limit"
    );
}

#[test]
fn stored_fallback_decodes() {
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    for data in [&payload[..], b"", b"x"] {
        let mut out = BytesMut::new();
        write_stored(data, &mut out);
        let mut rx = receiver(false);
        assert_eq!(decompress(&mut rx, &[&out]).unwrap(), data);
    }
}

// ---- limits -----------------------------------------------------------

#[test]
fn deflate_bomb_stops_at_the_limit() {
    let zeros = vec![0u8; 64 << 20];
    let (mut server, _) = pair(params(false, false, 15, 15), 9);
    let bomb = compress(&mut server, &zeros);
    assert!(bomb.len() < 128 << 10, "bomb is {} bytes", bomb.len());

    let limit = 1 << 20;
    let mut client = receiver(false);
    let mut out = BytesMut::new();
    // Fed in 1 KiB frames, the limit trips long before the end.
    let frames: Vec<&[u8]> = bomb.chunks(1024).collect();
    let mut failed_at = None;
    for (i, frame) in frames.iter().enumerate() {
        match client.decompress(frame, i + 1 == frames.len(), &mut out, limit) {
            Ok(()) => assert!(out.len() <= limit),
            Err(e) => {
                assert_eq!(e, DeflateError::TooBig);
                failed_at = Some(i);
                break;
            }
        }
    }
    let failed_at = failed_at.expect("the bomb must be refused");
    assert!(
        failed_at < frames.len() / 16,
        "failed at frame {failed_at} of {}",
        frames.len()
    );
    assert!(out.len() <= limit + 1);
    assert!(
        out.capacity() <= 2 * limit + 2 * DECOMPRESS_CHUNK,
        "capacity {}",
        out.capacity()
    );

    // In one piece: the same, and the output never passes limit + 1.
    let mut client = receiver(false);
    let mut out = BytesMut::new();
    assert_eq!(
        client.decompress(&bomb, true, &mut out, limit),
        Err(DeflateError::TooBig)
    );
    assert!(out.len() <= limit + 1);
    assert!(out.capacity() <= 2 * limit + 2 * DECOMPRESS_CHUNK);
}

#[test]
fn limit_is_inclusive_and_counts_existing_output() {
    let data = vec![b'a'; 1000];
    let (mut server, _) = pair(params(true, true, 15, 15), 6);
    let wire = compress(&mut server, &data);
    let mut rx = receiver(true);
    let mut out = BytesMut::new();
    rx.decompress(&wire, true, &mut out, 1000).unwrap();
    assert_eq!(out.len(), 1000);

    let mut out = BytesMut::new();
    assert_eq!(
        rx.decompress(&wire, true, &mut out, 999),
        Err(DeflateError::TooBig)
    );

    // Output of earlier frames counts.
    let mut out = BytesMut::from(&[1u8; 10][..]);
    assert_eq!(
        rx.decompress(&wire, true, &mut out, 1009),
        Err(DeflateError::TooBig)
    );
    let mut out = BytesMut::from(&[1u8; 10][..]);
    rx.decompress(&wire, true, &mut out, 1010).unwrap();
    assert_eq!(&out[10..], &data[..]);
    // An empty message fits a zero limit.
    let mut out = BytesMut::new();
    rx.decompress(&[0x00], true, &mut out, 0).unwrap();
    assert!(out.is_empty());
}

#[test]
fn invalid_data_past_the_limit_is_too_big_however_the_frames_are_cut() {
    // Found by the inflate fuzz target: a literal, then a stored block
    // with lengths that do not match. Whole, zlib reported the bad block in
    // the call that went over a limit of 0 and the message was Corrupt;
    // cut into one-byte frames it was TooBig.
    let data = [0xf2, 0x07, 0x00, 0x0f, 0x3a, 0xc9, 0x07, 0x00];
    let under = |frames: &[&[u8]], limit: usize| {
        let mut rx = receiver(true);
        let mut out = BytesMut::new();
        for (i, frame) in frames.iter().enumerate() {
            rx.decompress(frame, i + 1 == frames.len(), &mut out, limit)?;
        }
        Ok(out)
    };
    let bytes: Vec<&[u8]> = data.chunks(1).collect();
    for frames in [&[&data[..]][..], &bytes[..]] {
        assert_eq!(under(frames, 0), Err(DeflateError::TooBig));
        assert!(matches!(under(frames, 1000), Err(DeflateError::Corrupt(_))));
    }
}

#[test]
fn should_compress_uses_min_size() {
    let config = DeflateConfig::default();
    let codec = PerMessageDeflate::new(Role::Server, DeflateParams::default(), &config);
    assert!(!codec.should_compress(config.min_size - 1));
    assert!(codec.should_compress(config.min_size));
    let config = DeflateConfig {
        min_size: 0,
        ..config
    };
    let codec = PerMessageDeflate::new(Role::Server, DeflateParams::default(), &config);
    assert!(codec.should_compress(0));
}

#[test]
fn kept_states_are_created_lazily_and_reused() {
    // Context takeover both ways: each side keeps what it has used.
    let (mut server, mut client) = pair(params(false, false, 12, 10), 6);
    assert!(server.compressor.is_none() && server.decompressor.is_none());
    let wire = compress(&mut server, b"some text, some text");
    assert!(server.compressor.is_some() && server.decompressor.is_none());
    assert_eq!(
        decompress(&mut client, &[&wire]).unwrap(),
        b"some text, some text"
    );
    assert!(client.compressor.is_none() && client.decompressor.is_some());
}

#[test]
fn states_without_context_takeover_are_lent_per_message() {
    // Each test runs on its own thread, so the pool starts empty.
    assert_eq!(pool::idle_counts(), (0, 0));
    let (mut server, mut client) = pair(params(true, true, 15, 15), 6);
    let wire = compress(&mut server, b"some text, some text");
    assert!(server.compressor.is_none(), "given back after the message");
    assert_eq!(pool::idle_counts(), (1, 0));

    // A fragmented message holds its decompressor until the last frame.
    let mut out = BytesMut::new();
    client
        .decompress(&wire[..4], false, &mut out, 1 << 20)
        .unwrap();
    assert!(client.decompressor.is_some());
    client
        .decompress(&wire[4..], true, &mut out, 1 << 20)
        .unwrap();
    assert_eq!(&out[..], b"some text, some text");
    assert!(client.decompressor.is_none());
    assert_eq!(pool::idle_counts(), (1, 1));

    // The client's compressor comes from the same pool as the server's
    // (same settings): still one idle compressor afterwards.
    let wire = compress(&mut client, b"reply, reply, reply");
    assert_eq!(pool::idle_counts(), (1, 1));
    assert_eq!(
        decompress(&mut server, &[&wire]).unwrap(),
        b"reply, reply, reply"
    );
    assert!(server.decompressor.is_none());

    // A corrupt message gives the lent decompressor back too, reset: the
    // next message decodes.
    let mut out = BytesMut::new();
    assert!(server
        .decompress(&[0xff; 8], true, &mut out, 1 << 20)
        .is_err());
    assert!(server.decompressor.is_none());
    assert_eq!(
        decompress(&mut server, &[&wire]).unwrap(),
        b"reply, reply, reply"
    );
}

#[test]
fn many_messages_in_progress_borrow_at_most_what_they_need() {
    // Ten connections, each mid-way through a fragmented message, borrow
    // ten decompressors; afterwards the pool keeps only a few.
    let (mut server, _) = pair(params(true, true, 15, 15), 6);
    let wire = compress(&mut server, b"0123456789 0123456789 0123456789");
    let mut receivers: Vec<_> = (0..10)
        .map(|_| pair(params(true, true, 15, 15), 6).1)
        .collect();
    let mut outs: Vec<BytesMut> = (0..10).map(|_| BytesMut::new()).collect();
    for (rx, out) in receivers.iter_mut().zip(&mut outs) {
        rx.decompress(&wire[..3], false, out, 1 << 20).unwrap();
    }
    for (rx, out) in receivers.iter_mut().zip(&mut outs) {
        rx.decompress(&wire[3..], true, out, 1 << 20).unwrap();
        assert_eq!(&out[..], b"0123456789 0123456789 0123456789");
    }
    let (_, idle_decompressors) = pool::idle_counts();
    assert!(
        (1..=4).contains(&idle_decompressors),
        "{idle_decompressors}"
    );
}

#[test]
fn memory_level_is_validated_and_used() {
    for mem_level in [0, 10] {
        let config = DeflateConfig {
            mem_level,
            ..DeflateConfig::default()
        };
        assert!(config.validate().is_err(), "{mem_level}");
    }
    for mem_level in 1..=9 {
        let config = DeflateConfig {
            mem_level,
            min_size: 0,
            memory: DeflateMemory::PerConnection,
            ..DeflateConfig::default()
        };
        let mut server = PerMessageDeflate::new(Role::Server, params(false, false, 9, 15), &config);
        let mut client = PerMessageDeflate::new(Role::Client, params(false, false, 9, 15), &config);
        let text = b"memory level memory level memory level".repeat(50);
        for _ in 0..3 {
            let wire = compress(&mut server, &text);
            assert!(wire.len() < text.len() / 4, "level {mem_level}");
            assert_eq!(decompress(&mut client, &[&wire]).unwrap(), text);
        }
    }
}

#[test]
fn incompressible_messages_are_sent_as_stored_blocks() {
    // Random bytes: with fixed Huffman codes they would grow by ~5%.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let random: Vec<u8> = (0..300_000)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect();
    for context_takeover in [false, true] {
        let p = params(!context_takeover, !context_takeover, 15, 15);
        let (mut server, mut client) = pair(p, 1);
        for round in 0..3 {
            let wire = compress(&mut server, &random);
            // At most the stored-block overhead: 5 bytes per 64 KiB, and 1.
            assert!(
                wire.len() <= random.len() + 5 * 5 + 1,
                "{} bytes",
                wire.len()
            );
            assert_eq!(decompress(&mut client, &[&wire]).unwrap(), random);
            // Compressible messages around it still compress, and with
            // context takeover they may refer back across the stored one.
            let text = b"compressible text, compressible text, compressible text";
            let wire = compress(&mut server, text);
            assert!(wire.len() < text.len(), "round {round}");
            assert_eq!(decompress(&mut client, &[&wire]).unwrap(), text);
        }
    }
}
